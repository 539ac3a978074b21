"""The frozen SynthTalk SyncNet: pinned file, LSE through it on SynthTalk clips, the training recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vastbench import media
from vastbench.controls.controls import shift_audio
from vastbench.evalnets import syncnet_train as T
from vastbench.metrics import lse as L
from vastbench.metrics.syncnet import SyncNetModel, load_syncnet, official_keys

# Two test-split clips of different identities (the clips the network never trained on).
TEST_CLIPS = ["id01_emphatic_02", "id04_neutral_02"]


@pytest.fixture(scope="module")
def shipped():
    return load_syncnet(T.shipped_path())


def _tiny_cfg(**kw) -> T.SyncTrainConfig:
    base = dict(steps=3, clips_per_batch=2, windows_per_clip=2, vshift=3, audio_per_clip=4, warmup=1, lr=1e-4,
                crop_kinds=("centre",), audio_sources=("clip",), calib_windows=8, aux_only_until=0.0,
                aux_until=1.0, checkpoint_every=1, val_at=())
    return T.SyncTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_clips(synthtalk_quick):
    return T.prepare_clips(synthtalk_quick.split("train")[:3], _tiny_cfg())


@pytest.fixture(scope="module")
def tiny(tiny_clips):
    """Tiny clips with the stem of a calibrated random SyncNet cached (what `train` does first)."""
    cfg = _tiny_cfg()
    model = T.init_model(0)
    T.calibrate_stem(model, tiny_clips, cfg)
    T.cache_stem(model, tiny_clips, cfg)
    return tiny_clips, model, cfg


def test_shipped_file_is_pinned_fp16_official_layout():
    import vastbench.evalnets.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS, asset_path

    spec = ASSETS[T.ASSET_NAME]
    assert spec.shipped and spec.sha256 and spec.filename == T.FILENAME
    path = asset_path(T.ASSET_NAME)  # raises if the sha256 does not match the pin
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert sorted(state) == sorted(official_keys())
    assert {v.dtype for v in state.values()} == {torch.float16}
    model = load_syncnet(path)
    assert isinstance(model, SyncNetModel) and not model.training
    w = model.netcnnlip[0].weight
    assert w.dtype == torch.float32 and torch.equal(w, state["netcnnlip.0.weight"].float())
    # Re-serialising the loaded weights gives the same bytes: the pin depends on the weights alone.
    assert T.weights_bytes(model.state_dict()) == path.read_bytes()


def test_default_weights_are_the_shipped_synthtalk_syncnet(monkeypatch):
    from vastbench.assets_import import asset_report
    from vastbench.paths import cache_dir

    monkeypatch.delenv(L.ENV_WEIGHTS, raising=False)
    for name in (L.OFFICIAL_FILENAME, L.SYNTHTALK_FILENAME):
        assert not (cache_dir() / "assets" / name).exists()
    assert L.resolve_weights() == T.shipped_path()
    m = L.LSED()
    assert m.weights_kind == "synthtalk" and m.weights_label.startswith("SynthTalk SyncNet v1 (sha256 ")
    assert "not the official SyncNet" in m.footnote
    rows = {r["name"]: r for r in asset_report()}
    assert rows[T.ASSET_NAME]["verified"] and rows[T.ASSET_NAME]["state"] == "verified"
    assert "uses: SynthTalk SyncNet v1" in rows["syncnet-official"]["in_use"]


def test_lse_recovers_a_shift_and_ranks_ground_truth_first(synthtalk_quick, shipped):
    """Through the public LSE path (lse_result) and the evaluation's one-pass version, which must agree."""
    clip = synthtalk_quick[TEST_CLIPS[0]]
    video = media.read_video(clip.path("video"))
    gt = L.lse_result(video.frames, video.audio, model=shipped)
    late = L.lse_result(video.frames, shift_audio(video.audio, 3), model=shipped)
    control = L.lse_result(video.frames, shift_audio(video.audio, T.CONTROL_SHIFT), model=shipped)
    assert gt.offset == 0 and late.offset == -3  # official sign: audio delayed by k frames -> offset -k
    assert gt.lse_d < control.lse_d and gt.lse_c > control.lse_c
    item = T.EvalItem(clip.clip_id, "centre", L.face_crops(video.frames[:gt.n_windows + 5]), video.audio)
    fast = T.shift_results(shipped, item, [0, 3])
    assert fast[0] == gt and fast[3] == late


def test_lse_metric_crops_do_not_depend_on_other_metrics(synthtalk_quick, shipped):
    """The metric's crops follow its ``crops`` argument alone (version 1 used face-capture landmarks only
    when a capture metric had run on the sample first, so the suite's metric order changed LSE)."""
    from vastbench.data.requests import Request
    from vastbench.evalnets.face_capture import capture_sample
    from vastbench.metrics.base import EvalSample
    from vastbench.metrics.landmarks import MLMD

    clip = synthtalk_quick[TEST_CLIPS[1]]
    req = Request("r0", clip.identity, clip.clip_id, clip.clip_id, clip.clip_id, 0, clip.clip_id)

    def fresh() -> EvalSample:
        return EvalSample(request=req, generated=clip.path("video"), reference=clip.path("video"))

    alone = L.LSED()(fresh())
    after = fresh()
    MLMD()(after)
    assert L.LSED()(after) == alone
    video = media.read_video(clip.path("video"))
    landmarks = capture_sample(fresh(), "generated")["landmarks2d"]
    assert alone == pytest.approx(L.lse_result(video.frames, video.audio, landmarks=landmarks, model=shipped).lse_d,
                                  abs=1e-5)
    centre = L.LSED(crops="centre")
    assert centre(fresh()) == pytest.approx(L.lse_result(video.frames, video.audio, model=shipped).lse_d, abs=1e-5)
    assert "face-capture landmarks" in L.LSED().footnote and "centred" in centre.footnote
    assert L.LSED().describe()["crops"] == "face" and L.LSED.version == "2"
    with pytest.raises(Exception, match="crops must be"):
        L.LSED(crops="mouth")


def test_evaluation_with_face_capture_crops(synthtalk_quick, shipped):
    clips = [synthtalk_quick[TEST_CLIPS[1]]]
    report = T.evaluate_items(shipped, T.clip_items(clips, kinds=("landmarks",)), shifts=(-3, 2))
    assert report["items"] == 1 and report["offset_accuracy"] == 1.0
    assert report["gt_better_than_control"] == 1.0
    assert report["gt"]["lse_d"] < report["control"]["lse_d"] and report["gt"]["lse_c"] > report["control"]["lse_c"]


def test_cached_crops_are_the_lse_crops(synthtalk_quick):
    c = T.prepare_clip(synthtalk_quick.split("train")[0])
    video = media.read_video(synthtalk_quick[c.clip_id].path("video"))
    landmarks = np.load(synthtalk_quick[c.clip_id].path("features"))["landmarks2d"][:c.min_length]
    frames = video.frames[:c.min_length]
    assert np.array_equal(T.upsample(c.crops["landmarks"]), L.face_crops(frames, landmarks))
    assert np.array_equal(T.upsample(c.crops["centre"]), L.face_crops(frames))
    # Lip windows exactly as LSE's embed() builds them.
    model = T.init_model(0).eval()
    crops = L.face_crops(frames[:10], landmarks[:10])
    with torch.no_grad():
        ours = model.embed_lip(T.lip_windows(crops))   # embed() runs the folded inference tower
        im, cc = L.embed(model, crops, np.zeros((40, 13)), 6)
        assert torch.equal(ours, im)
        torch.testing.assert_close(im, model.forward_lip(T.lip_windows(crops)), rtol=1e-4, atol=1e-5)


def test_stem_then_head_is_the_whole_lip_tower(tiny):
    clips, model, cfg = tiny
    c = clips[0]
    x = T.lip_windows(T.upsample(c.crops["centre"][:8]))
    with torch.no_grad():
        whole = model.eval().forward_lip(x)
        split = T.head_lip(model, T.stem_of(model)(x))
        cached = T.head_lip(model, c.stem["centre"][:2].float())      # positions 0 and 2 (stride 2)
    torch.testing.assert_close(whole, split)
    torch.testing.assert_close(cached, whole[[0, 2]], atol=0.5, rtol=0.05)  # cached in bf16 / float16
    assert not any(p.requires_grad for p in T.stem_of(model).parameters())
    assert all(p.requires_grad for p in T.trainable_parameters(model))


def test_batches_are_a_function_of_seed_and_step(tiny):
    clips, _, cfg = tiny
    a, b, c = T.sample_batch(clips, cfg, 5), T.sample_batch(clips, cfg, 5), T.sample_batch(clips, cfg, 6)
    assert torch.equal(a.video, b.video) and torch.equal(a.a_pos, b.a_pos)
    assert not (torch.equal(a.v_pos, c.v_pos) and torch.equal(a.v_clip, c.v_clip))
    assert a.video.shape == (4, 256, 1, 13, 13) and a.audio.shape == (8, 1, 13, 20)
    assert a.v_mouth.shape == (4, 20) and len(a.a_mouth) == len(a.audio)
    assert (a.v_pos % cfg.video_stride == 0).all()
    # Every video window has exactly one positive (same clip, same window) among the audio windows.
    pos = (a.v_clip[:, None] == a.a_clip[None]) & (a.v_pos[:, None] == a.a_pos[None])
    assert pos.sum(1).tolist() == [1] * 4
    # Its audio MFCC and mouth targets are those of that window.
    i, j = 0, int(pos[0].nonzero()[0, 0])
    clip = clips[int(a.v_clip[0])]
    assert torch.equal(a.audio[j], clip.mfcc["clip"][int(a.v_pos[0])])
    assert torch.equal(a.v_mouth[i], a.a_mouth[j])


def test_one_training_step_reduces_the_loss(tiny):
    import copy

    clips, model0, cfg = tiny
    model = copy.deepcopy(model0)
    probes = T.make_probes(clips, cfg)
    opt = T.make_optimizer(model, probes, cfg)
    batch = T.sample_batch(clips, cfg, 0)

    def loss_now() -> float:
        model.train()
        with torch.no_grad():
            return float(T.batch_loss(model, probes, batch, cfg, 0)[0])

    before = loss_now()
    stats = T.train_step(model, probes, opt, batch, cfg, 0)
    after = loss_now()
    assert np.isfinite(stats["loss"]) and stats["aux_lip"] > 0 and stats["aux_aud"] > 0
    assert after < 0.95 * before
    assert all(torch.equal(p, q) for p, q in zip(T.stem_of(model).parameters(), T.stem_of(model0).parameters()))


def test_killed_training_resumes_bit_identically(tiny_clips, tmp_path):
    cfg = _tiny_cfg()
    full = T.train(tiny_clips, [], cfg, work_dir=tmp_path / "a")["state_dict"]
    T.train(tiny_clips, [], cfg, work_dir=tmp_path / "b", stop_after=2)  # "killed" after two steps
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 2
    resumed = T.train(tiny_clips, [], cfg, work_dir=tmp_path / "b")["state_dict"]
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    other = T.SyncTrainConfig(**{**cfg.__dict__, "seed": 1})
    with pytest.raises(Exception, match="another SyncNet recipe"):
        T.train(tiny_clips, [], other, work_dir=tmp_path / "b")


def test_saved_weights_are_deterministic_and_load(tmp_path):
    state = T.init_model(3).state_dict()
    p1 = T.save_weights(state, tmp_path / "x" / "syncnet_synthtalk_a.pt")
    p2 = T.save_weights(state, tmp_path / "y" / "other_name.pt")
    assert p1.read_bytes() == p2.read_bytes()
    model = load_syncnet(p2)
    assert torch.equal(model.netfcaud[0].weight, state["netfcaud.0.weight"].half().float())
    assert L.describe_weights(p1)[0] == "synthtalk" and L.describe_weights(p2)[0] == "custom"
