"""The wav2lip_style baseline: audio windows, networks, training, checkpoints, inference, the Generator.

Tiny widths and a few steps on a handful of SynthTalk quick clips: these tests check shapes, lengths,
determinism and plumbing, not quality (``python -m baselines.wav2lip_style.sanity`` measures that).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vastbench import media
from vastbench.controls.controls import n_frames_for
from vastbench.data.manifest import Manifest
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext

from baselines.wav2lip_style import audio as A
from baselines.wav2lip_style.data import ExpertSampler, GeneratorSampler, load_train_data, mouth_boxes
from baselines.wav2lip_style.infer import lipsync_frames, ping_pong
from baselines.wav2lip_style.model import (SyncExpert, VisualDiscriminator, Wav2LipGenerator, make_config,
                                           pairwise_cosine_bce)
from baselines.wav2lip_style.train import (generator_step, load_generator, load_state, save_generator,
                                           train_expert, train_generator)

TINY = dict(n_mels=16, expert_channels=4, expert_dim=16, expert_batch=8, expert_windows_per_clip=4,
            channels=4, audio_dim=16, batch_size=2, disc_channels=4, expert_steps=3, steps=3,
            expert_time_budget_s=0.0, time_budget_s=0.0, sample_every=1000, ckpt_every=1000)


def tiny(**over):
    return make_config("quick", **{**TINY, **over})


@pytest.fixture(scope="module")
def clips(synthtalk_quick):
    train = sorted(synthtalk_quick.split("train"), key=lambda c: c.clip_id)
    return [train[0], train[17], train[40], train[77]]     # four identities


@pytest.fixture(scope="module")
def data(clips):
    return load_train_data(clips, TINY["n_mels"], 80)


@pytest.fixture(scope="module")
def expert_path(data, tmp_path_factory):
    return train_expert(tiny(), data, tmp_path_factory.mktemp("expert"), progress=False)


# ----------------------------------------------------------------------------- audio
@pytest.mark.parametrize("T", [1, 2, 7, 33])
def test_mel_windows_cover_every_frame_for_any_length(T):
    rng = np.random.default_rng(T)
    audio = rng.normal(0, 0.1, 640 * T - 100).astype(np.float32)     # a little short: zero-padded
    mel = A.log_mel(audio, T, 24)
    assert mel.shape == (4 * T, 24) and mel.dtype == np.float32
    assert mel.min() >= -4 and mel.max() <= 4
    win = A.frame_windows(audio, T, 24)
    assert win.shape == (T, 24, A.MEL_STEPS)
    # Frame t's window is centred on it: its middle 4 mel frames are frame t's own.
    np.testing.assert_array_equal(win[T // 2, :, 8:12], mel[4 * (T // 2): 4 * (T // 2) + 4].T)
    # Before the start of the clip there is only silence.
    assert np.all(win[0, :, :8] == A.SILENCE)


def test_silence_is_the_floor_and_wrong_rates_are_refused():
    assert np.all(A.log_mel(np.zeros(6400, np.float32), 10, 16) == A.SILENCE)
    with pytest.raises(VastbenchError, match="16 kHz"):
        A.log_mel(np.zeros(100), 1, 16, sample_rate=44_100)


def test_ping_pong_loops_without_jumps():
    np.testing.assert_array_equal(ping_pong(4, 10), [0, 1, 2, 3, 2, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(ping_pong(1, 3), [0, 0, 0])
    assert np.abs(np.diff(ping_pong(7, 100))).max() == 1


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("preset,size,skips", [("quick", 80, 0), ("quick", 80, 3), ("full", 256, 0)])
def test_network_shapes(preset, size, skips):
    small = dict(expert_channels=2, expert_dim=8, channels=2, audio_dim=8, disc_channels=2, res_blocks=0,
                 audio_skip_channels=skips)
    cfg = make_config(preset, **small)
    assert cfg.size == size
    gen, expert, disc = Wav2LipGenerator(cfg), SyncExpert(cfg), VisualDiscriminator(cfg)
    x = torch.rand(3, 6, size, size)
    mel = torch.randn(3, cfg.n_mels, A.MEL_STEPS)
    with torch.no_grad():
        y = gen(x, mel)
        sim = expert(torch.rand(3, 5, 3, size, size), mel)
        d = disc(torch.rand(3, 3, size, size))
    assert y.shape == (3, 3, size, size)
    assert sim.shape == (3,) and torch.all((sim >= 0) & (sim <= 1))
    assert d.shape == (3,)
    # The visible upper half passes through untouched; the lower half is the reference's plus a residual.
    h = size // 2
    assert torch.equal(y[:, :, :h], x[:, :3, :h])
    assert not torch.equal(y[:, :, h:], x[:, 3:, h:])


def test_generator_masks_the_lower_half_and_checks_its_input():
    target, ref = torch.rand(2, 3, 80, 80), torch.rand(2, 3, 80, 80)
    x = Wav2LipGenerator.inputs(target, ref)
    assert torch.all(x[:, :3, 40:] == 0) and torch.equal(x[:, :3, :40], target[:, :, :40])
    assert torch.equal(x[:, 3:], ref)
    with pytest.raises(VastbenchError, match="takes"):
        Wav2LipGenerator(tiny())(torch.rand(1, 6, 64, 64), torch.randn(1, 16, 20))


def test_config_errors_are_one_line_and_helpful():
    with pytest.raises(VastbenchError, match="did you mean 'quick'"):
        make_config("quik")
    with pytest.raises(VastbenchError, match="did you mean 'channels'"):
        make_config("quick", chanels=4)
    with pytest.raises(VastbenchError, match="multiple of expert_windows_per_clip"):
        make_config("quick", expert_batch=10, expert_windows_per_clip=4)


def test_pairwise_loss_rewards_matching_embeddings():
    starts = torch.tensor([[0, 5, 9], [1, 4, 8]])
    a = torch.nn.functional.normalize(torch.rand(6, 8), dim=1)
    matched, acc_matched = pairwise_cosine_bce(a, a, starts)
    shuffled, _ = pairwise_cosine_bce(a[[1, 2, 0, 4, 5, 3]], a, starts)
    assert float(matched) < float(shuffled)
    assert 0.0 <= acc_matched <= 1.0


# ----------------------------------------------------------------------------- data
def test_samplers_give_aligned_windows(data):
    assert data.size == 80 and len(data.clip_ids) == 4 and len(data.mouth_boxes) == len(data.frames)
    g = GeneratorSampler(data, 0).batch(3)
    assert g["target"].shape == (3, 5, 3, 80, 80) and g["reference"].shape == (3, 5, 3, 80, 80)
    assert g["frame_mel"].shape == (3, 5, 16, 20) and g["sync_mel"].shape == (3, 16, 20)
    assert g["mouth"].shape == (3, 5, 1, 80, 80) and 0 < float(g["mouth"].mean()) < 0.5
    assert not torch.equal(g["target"], g["reference"])          # the reference is another window
    # The expert's mel of a window is the generator's mel of its middle frame (both cover frames t..t+4).
    torch.testing.assert_close(g["sync_mel"], g["frame_mel"][:, 2])
    e = ExpertSampler(data, 0).batch(8, 4)
    assert e["faces"].shape == (8, 5, 3, 80, 80) and e["starts"].shape == (2, 4)
    assert all(len(set(row.tolist())) == 4 for row in e["starts"])


def test_mouth_boxes_follow_the_landmarks():
    lm = np.zeros((2, 68, 2), np.float32)
    lm[:, 48:68] = [[30, 50], [50, 60]] * 10
    box = mouth_boxes(lm, 3, 80)                       # one frame more than landmarks: the last repeats
    assert box.shape == (3, 4)
    y0, y1, x0, x1 = box[0]
    assert y0 < 50 and y1 > 60 and x0 < 30 and x1 > 50 and np.all(box[2] == box[1])


# ----------------------------------------------------------------------------- training
def test_one_step_reduces_the_generator_loss(data, expert_path):
    from baselines.wav2lip_style.train import load_expert

    cfg = tiny(sync_start=0, sync_ramp=0, mouth_weight=4.0)
    torch.manual_seed(0)
    gen, expert = Wav2LipGenerator(cfg), load_expert(expert_path)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-4)
    batch = GeneratorSampler(data, 3).batch(2)
    # A step reports the loss before its update: the second step's is the first one's result.
    first = generator_step(gen, expert, None, opt, None, batch, cfg, step=10)
    second = generator_step(gen, expert, None, opt, None, batch, cfg, step=10)
    assert second["loss"] < first["loss"] and second["l1"] < first["l1"]
    assert first["sync_w"] == cfg.sync_weight and np.isfinite(first["sync"])
    assert all(p.grad is None for p in expert.parameters())      # frozen: no gradients reach it


def test_the_discriminator_trains_beside_the_generator(data, expert_path):
    from baselines.wav2lip_style.train import load_expert

    cfg = tiny(disc_weight=0.07)
    torch.manual_seed(0)
    gen, disc = Wav2LipGenerator(cfg), VisualDiscriminator(cfg)
    opt, opt_d = torch.optim.Adam(gen.parameters(), 1e-4), torch.optim.Adam(disc.parameters(), 1e-4)
    before = [p.detach().clone() for p in disc.parameters()]
    row = generator_step(gen, load_expert(expert_path), disc, opt, opt_d, GeneratorSampler(data, 4).batch(2), cfg, 0)
    assert {"adv_g", "loss_d"} <= set(row) and row["sync_w"] < cfg.sync_weight     # the ramp starts low
    assert any(not torch.equal(a, p) for a, p in zip(before, disc.parameters()))


def test_one_step_reduces_the_expert_loss(data):
    cfg = tiny()
    torch.manual_seed(0)
    expert = SyncExpert(cfg)
    opt = torch.optim.Adam(expert.parameters(), lr=1e-3)
    b = ExpertSampler(data, 1).batch(8, 4)
    losses = []
    for _ in range(2):
        loss, _ = pairwise_cosine_bce(*expert.embed(b["faces"], b["mel"]), b["starts"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[1] < losses[0]


def test_checkpoint_reload_gives_identical_frames(data, clips, expert_path, tmp_path):
    cfg = tiny()
    path = train_generator(cfg, data, expert_path, tmp_path / "gen", progress=False)
    state = load_state(path, "generator")
    assert state["step"] == 3 and state["extra"]["expert_sha256"]
    for f in ("last.pt", "losses.csv", "curves.png"):
        assert (tmp_path / "gen" / f).is_file()
    assert (tmp_path / "gen" / "samples" / "step_000003.png").is_file()
    model = load_generator(path)
    again = save_generator(tmp_path / "copy.pt", model, step=3)
    frames = media.read_video(clips[0].path("video"), with_audio=False).frames[:9]
    audio = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
    a = lipsync_frames(model, frames, audio)
    b = lipsync_frames(load_generator(again), frames, audio, chunk=7)
    c = lipsync_frames(load_generator(again), frames, audio)
    d = lipsync_frames(load_generator(tmp_path / "gen" / "last.pt"), frames, audio)
    assert a.shape == (25, 80, 80, 3) and a.dtype == np.uint8
    assert np.array_equal(a, c) and np.array_equal(a, d)          # reloaded: the very same frames
    # Another chunking changes only the convolution algorithm's float rounding, never a frame's content.
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_resume_matches_an_uninterrupted_run(data, expert_path, tmp_path):
    cfg = tiny(steps=4)
    whole = load_state(train_generator(cfg, data, expert_path, tmp_path / "a", progress=False), "generator")
    train_generator(cfg, data, expert_path, tmp_path / "b", steps=2, progress=False)
    resumed = load_state(train_generator(cfg, data, expert_path, tmp_path / "b", progress=False), "generator")
    assert resumed["step"] == whole["step"] == 4
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    with pytest.raises(VastbenchError, match="different wav2lip_style config"):
        train_generator(tiny(steps=6, lr=5e-4), data, expert_path, tmp_path / "b", progress=False)


def test_bad_checkpoints_are_clear_errors(tmp_path, expert_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VastbenchError, match="cannot be read"):
        load_generator(bad)
    with pytest.raises(VastbenchError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    with pytest.raises(VastbenchError, match="not a generator"):
        load_generator(expert_path)


def test_frames_of_another_size_are_refused(clips, expert_path):
    with pytest.raises(VastbenchError, match="preset of that size"):
        load_train_data(clips[:1], 16, 256)
    with pytest.raises(VastbenchError, match="reference video must be"):
        lipsync_frames(Wav2LipGenerator(tiny()), np.zeros((3, 64, 64, 3), np.uint8), np.zeros(1600, np.float32))


# ----------------------------------------------------------------------------- the Generator
def test_generator_writes_the_driving_audio_length_with_audio(synthtalk_quick, clips, tmp_path):
    from vastbench.config import RequestsConfig
    from vastbench.data.requests import build_requests
    from vastbench.registry import GENERATORS

    ctx = GenContext(manifest=synthtalk_quick, cache_dir=tmp_path)
    gen = GENERATORS.get("wav2lip_style")("w2l", ctx, config={**TINY, "expert_steps": 2, "steps": 2})
    assert gen.cfg.size == 80 and gen.cfg.channels == 4
    gen.prepare(Manifest(clips, synthtalk_quick.path), tmp_path / "work")
    info = gen.describe()
    assert set(info["weights"]) == {"expert", "generator"}
    assert gen.needs_training(tmp_path / "work") is True      # training_jobs key on the full train split
    reqs = build_requests(synthtalk_quick, RequestsConfig(split="test", limit=2, seed=0))
    outs = gen.generate(reqs, tmp_path / "clips")
    assert all(o.ok for o in outs), [o.error for o in outs]
    for req, out in zip(reqs, outs):
        audio, sr = media.read_wav(synthtalk_quick[req.driving].path("audio"))
        video = media.read_video(out.path, require_audio=True)
        assert video.n_frames == n_frames_for(audio, sr)
        assert video.frames.shape[1:] == (80, 80, 3)
        assert abs(len(video.audio) / video.sample_rate - len(audio) / sr) < 0.05
    # A second prepare finds the cached training and does not retrain.
    mtime = (gen._paths["generator"]).stat().st_mtime_ns
    gen.prepare(Manifest(clips, synthtalk_quick.path), tmp_path / "work")
    assert gen._paths["generator"].stat().st_mtime_ns == mtime


def test_generator_arguments_are_checked(synthtalk_quick):
    from baselines.wav2lip_style.generator import Wav2LipStyle

    ctx = GenContext(manifest=synthtalk_quick)
    with pytest.raises(VastbenchError, match="works at 256 px"):
        Wav2LipStyle("w", ctx, preset="full")
    with pytest.raises(VastbenchError, match="did you mean 'steps'"):
        Wav2LipStyle("w", ctx, config={"step": 3})
    with pytest.raises(VastbenchError, match="has no argument 'variant'"):
        Wav2LipStyle("w", ctx, variant="x")


# ----------------------------------------------------------------------------- quick-preset additions
def test_the_expert_sees_only_its_crop():
    cfg = tiny(expert_crop=(0.5, 0.8, 0.2, 0.8), expert_pool=1)
    assert cfg.expert_rows() == (40, 64) and cfg.expert_cols() == (16, 64)
    expert = SyncExpert(cfg).eval()
    frames, mel = torch.rand(2, 5, 3, 80, 80), torch.randn(2, 16, A.MEL_STEPS)
    outside = frames.clone()
    outside[..., 64:, :] = 0.0
    outside[..., :16] = 1.0
    inside = frames.clone()
    inside[..., 50, 30] += 0.5
    with torch.no_grad():
        assert torch.equal(expert(frames, mel), expert(outside, mel))
        assert not torch.equal(expert(frames, mel), expert(inside, mel))
    with pytest.raises(VastbenchError, match="expert_crop"):
        tiny(expert_crop=(0.3, 0.8, 0.0, 1.0))        # the expert may not see the visible upper half
    with pytest.raises(VastbenchError, match="expert_pool"):
        tiny(expert_crop=(0.5, 0.8, 0.2, 0.8), expert_pool=5)


def test_paste_keeps_the_frame_outside_the_box():
    cfg = tiny(paste=(0.5, 0.85, 0.2, 0.8))
    torch.manual_seed(0)
    gen = Wav2LipGenerator(cfg)
    ref = np.random.default_rng(0).integers(0, 256, (6, 80, 80, 3), dtype=np.uint8)
    out = lipsync_frames(gen, ref, np.zeros(media.SAMPLE_RATE // 2, np.float32), media.SAMPLE_RATE)
    looped = ref[ping_pong(len(ref), len(out))]
    inside = np.zeros((80, 80), bool)
    inside[40:68, 16:64] = True
    assert np.array_equal(out[:, ~inside], looped[:, ~inside])
    assert not np.array_equal(out[:, 45:60, 25:55], looped[:, 45:60, 25:55])
    with pytest.raises(VastbenchError, match="paste"):
        tiny(paste=(0.5, 0.4, 0.0, 1.0))


def test_the_generator_audio_encoder_starts_from_the_expert(data, expert_path, tmp_path):
    from baselines.wav2lip_style.train import load_expert

    path = train_generator(tiny(audio_from_expert=True), data, expert_path, tmp_path / "g", steps=0, progress=False)
    gen, expert = load_generator(path), load_expert(expert_path)
    for (k, a), b in zip(gen.audio.state_dict().items(), expert.audio.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(VastbenchError, match="audio_from_expert"):
        train_generator(tiny(audio_from_expert=True, channels=2), data, expert_path, tmp_path / "h", steps=0,
                        progress=False)
