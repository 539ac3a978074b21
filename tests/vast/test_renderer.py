"""Renderer network, conditioning, training, checkpoints and quality functions (tiny, CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vastbench.errors import VastbenchError
from vastbench.vast.conditioning import (FILL, MeshRasterizer, SynthTalkRasterizer, condition, erase_mask,
                                         eroded_background, mouth_masks, target_background)
from vastbench.vast.renderer import PatchDiscriminator, Renderer, RendererConfig, generator_loss, make_config
from vastbench.vast.renderer_quality import flicker, psnr
from vastbench.vast.renderer_train import (IdentityData, RendererClip, SequenceSampler, load_renderer,
                                           load_state, render_sequence, save_renderer, train_renderer)

S = 32


def tiny_config(**over) -> RendererConfig:
    base = dict(size=S, base_channels=8, ppg_hidden=16, ppg_channels=8, lstm_channels=8, disc_channels=8,
                disc_layers=2, seq_len=4, batch_size=2, steps=20, sample_every=1000, ckpt_every=1000,
                time_budget_s=0.0, lr_g=2e-3, lr_d=1e-3, adv_start=0)
    return make_config("quick", **{**base, **over})


def tiny_identity(n_clips: int = 3, T: int = 12, seed: int = 0) -> IdentityData:
    """A disc whose radius follows the 'speech': grey disc in the mesh image, a skin-coloured one in the frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    bg = np.zeros((S, S, 3), np.uint8)
    bg[...] = (40, 90, 160)
    erase = (xx - 16) ** 2 + (yy - 16) ** 2 <= 12 ** 2
    clips = []
    for k in range(n_clips):
        radius = 4 + 6 * np.abs(np.sin(np.arange(T) / 3.0 + k))
        disc = (xx[None] - 16) ** 2 + (yy[None] - 16) ** 2 <= radius[:, None, None] ** 2   # (T, S, S)
        frames = np.broadcast_to(bg, (T, S, S, 3)).copy()
        frames[disc] = (200, 150, 120)
        mesh = np.zeros((T, S, S, 3), np.uint8)
        mesh[disc] = 190
        ppg = rng.dirichlet(np.ones(40), size=(T, 4)).astype(np.float32)
        mouth = disc & (yy[None] > 16)
        clips.append(RendererClip(f"c{k}", frames, mesh, mouth, ppg, disc))
    return IdentityData("id00", eroded_background(bg, erase), erase, clips, "given")


# ----------------------------------------------------------------------------- network
@pytest.mark.parametrize("T", [1, 7, 16, 40])
def test_variable_lengths_and_chunking(T):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = Renderer(cfg).eval()
    cond = torch.rand(2, T, 6, S, S) * 2 - 1
    ppg = torch.rand(2, T, 4, 40)
    with torch.no_grad():
        whole, _ = model(cond, ppg)
        parts, state = [], None
        for s in range(0, T, 5):  # chunks of 5 carrying the LSTM state
            y, state = model(cond[:, s:s + 5], ppg[:, s:s + 5], state)
            parts.append(y)
    assert whole.shape == (2, T, 3, S, S)
    assert whole.abs().max() <= 1.0
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=0)


def test_render_sequence_any_chunk_and_batch():
    torch.manual_seed(0)
    data = tiny_identity(T=23)
    model = Renderer(tiny_config()).eval()
    clip = data.clips[0]
    a = render_sequence(model, data.background, clip.mesh_images, clip.ppg, chunk=64)
    b = render_sequence(model, data.background, clip.mesh_images, clip.ppg.reshape(-1, 40), chunk=6)
    assert a.shape == (23, S, S, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float reassociation may flip a rounding
    both = render_sequence(model, data.background, np.stack([clip.mesh_images] * 2), np.stack([clip.ppg] * 2))
    assert both.shape == (2, 23, S, S, 3)
    assert np.abs(both[1].astype(int) - a.astype(int)).max() <= 1
    with pytest.raises(VastbenchError, match="need 92 PPG frames"):
        render_sequence(model, data.background, clip.mesh_images, clip.ppg[:-1])


def test_no_ppg_ablation():
    torch.manual_seed(0)
    model = Renderer(tiny_config(use_ppg=False)).eval()
    assert not hasattr(model, "ppg_mlp")
    y, _ = model(torch.zeros(1, 3, 6, S, S))
    assert y.shape == (1, 3, 3, S, S)
    with pytest.raises(VastbenchError, match="PPG must be"):
        Renderer(tiny_config())(torch.zeros(1, 3, 6, S, S))


def test_bad_inputs_are_one_line_errors():
    model = Renderer(tiny_config())
    with pytest.raises(VastbenchError, match="trained for 32x32"):
        model(torch.zeros(1, 2, 6, 40, 40), torch.zeros(1, 2, 4, 40))
    with pytest.raises(VastbenchError, match="multiple of 8"):
        tiny_config(size=30)
    with pytest.raises(VastbenchError, match="did you mean|unknown renderer config"):
        RendererConfig.from_dict({"sise": 32})


def test_discriminator_is_patchwise():
    cfg = tiny_config()
    scores = PatchDiscriminator(cfg)(torch.zeros(3, 6, S, S), torch.zeros(3, 3, S, S))
    assert scores.shape[:2] == (3, 1) and scores.shape[-1] > 1


# ----------------------------------------------------------------------------- training
def test_training_reduces_the_loss(tmp_path):
    torch.manual_seed(0)
    data = tiny_identity()
    cfg = tiny_config()
    batch = SequenceSampler(data, cfg.seq_len, seed=123).batch(4)
    model = Renderer(cfg)
    with torch.no_grad():
        before = float(generator_loss(model, None, batch, adversarial=False)[1]["l1"])
    path = train_renderer(cfg, data, tmp_path, steps=20, seed=0, progress=False)
    trained, _ = load_renderer(path)
    with torch.no_grad():
        after = float(generator_loss(trained, None, batch, adversarial=False)[1]["l1"])
    assert after < 0.7 * before, (before, after)
    assert (tmp_path / "losses.csv").read_text().count("\n") == 21
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert list((tmp_path / "samples").glob("step_*.png"))  # the last step always writes a grid


def test_checkpoint_reload_gives_identical_frames(tmp_path):
    torch.manual_seed(1)
    data = tiny_identity(T=9)
    model = Renderer(tiny_config()).eval()
    path = save_renderer(tmp_path / "r.pt", model, data.background, data.erase, step=7)
    again, bg = load_renderer(path)
    clip = data.clips[1]
    np.testing.assert_array_equal(bg, data.background)
    np.testing.assert_array_equal(render_sequence(model, data.background, clip.mesh_images, clip.ppg),
                                  render_sequence(again, bg, clip.mesh_images, clip.ppg))
    assert load_state(path)["step"] == 7


def test_resume_equals_uninterrupted(tmp_path):
    data = tiny_identity()
    cfg = tiny_config(ckpt_every=3)
    straight = train_renderer(cfg, data, tmp_path / "a", steps=6, seed=0, progress=False)
    train_renderer(cfg, data, tmp_path / "b", steps=3, seed=0, progress=False)
    resumed = train_renderer(cfg, data, tmp_path / "b", steps=6, seed=0, progress=False)
    a, b = load_state(straight)["model"], load_state(resumed)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    with pytest.raises(VastbenchError, match="different renderer config"):
        train_renderer(cfg.replace(mouth_weight=9.0), data, tmp_path / "b", steps=7, seed=0, progress=False)


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VastbenchError, match="cannot be read"):
        load_renderer(bad)
    with pytest.raises(VastbenchError, match="does not exist"):
        load_renderer(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- conditioning
def test_condition_layout_and_range():
    bg = np.full((S, S, 3), 255, np.uint8)
    mesh = np.zeros((5, S, S, 3), np.uint8)
    c = condition(bg, mesh)
    assert c.shape == (5, 6, S, S)
    assert torch.all(c[:, :3] == 1.0) and torch.all(c[:, 3:] == -1.0)
    assert condition(bg, np.zeros((2, 5, S, S, 3), np.uint8)).shape == (2, 5, 6, S, S)


def test_eroded_background_hides_every_mouth_and_jaw_pixel():
    """Erase region from 'training' frames; no face or mouth pixel of other frames (jaw wide open,
    head moving) may survive in the background."""
    rast = SynthTalkRasterizer("id03", 48)
    assert isinstance(rast, MeshRasterizer)
    rng = np.random.default_rng(0)

    def draw(n):
        expr = rng.uniform(0, 1, (n, 11))
        pose = np.clip(rng.normal(0, [0.045, 0.07, 0.06, 0.035, 0.035, 0.0], (n, 6)), -0.3, 0.3)
        return expr, pose

    train = rast.rasterize(*draw(40))
    expr, pose = draw(20)
    expr[:5, 0] = 1.2                                  # jaw wider open than any training frame
    held = rast.rasterize(expr, pose)
    frame = np.full((48, 48, 3), 77, np.uint8)
    bg, erase = target_background(frame, train.face_masks)
    mouths = mouth_masks(held.landmarks2d, 48, dilate_frac=0.0)
    assert not (held.face_masks & ~erase).any()
    assert not (mouths & ~erase).any()
    assert np.all(bg[mouths.any(0)] == FILL)
    assert np.all(bg[~erase] == 77)
    assert erase.mean() < 0.75                         # hair, shoulders, backdrop remain


def test_erase_mask_grows_downward():
    m = np.zeros((40, 40), bool)
    m[10:20, 15:25] = True
    e = erase_mask(m, dilate_frac=0.0, chin_frac=0.1)
    assert e[23, 20] and not e[9, 20] and not e[20, 14]


# ----------------------------------------------------------------------------- quality
def test_quality_functions_closed_form():
    a = np.zeros((3, 8, 8, 3), np.uint8)
    b = a + 10
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 100))
    gt = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 10, 30)])
    assert flicker(gt, gt) == 0.0
    static = np.repeat(gt[:1], 3, axis=0)
    assert flicker(static, gt) == pytest.approx(15.0)  # mean |gt diff| = (10 + 20) / 2


def test_prepare_identity_from_manifest_clips(tmp_path):
    """SynthTalk-layout clips on disk -> frames, meshes, one-hot PPG (no recognizer), background."""
    from vastbench import media
    from vastbench.data.manifest import Clip
    from vastbench.vast.renderer_train import prepare_identity

    size, T = 48, 6
    rast = SynthTalkRasterizer("id01", size)
    rng = np.random.default_rng(0)
    clips = []
    for k in range(2):
        expr = rng.uniform(0, 1, (T, 11))
        pose = np.zeros((T, 6))
        mesh = rast.rasterize(expr, pose)
        rel = {"video": f"v{k}.mp4", "audio": f"a{k}.wav", "features": f"f{k}.npz"}
        media.write_video(tmp_path / rel["video"], mesh.mesh_images, 25)
        media.write_wav(tmp_path / rel["audio"], np.zeros(T * 640, np.float32))
        np.savez(tmp_path / rel["features"], expression=expr, pose=pose, phones=np.array(["sil", "aa"]),
                 phone_start=np.array([0.0, 0.1], np.float32), phone_end=np.array([0.1, 0.2], np.float32))
        clips.append(Clip(f"id01_x_{k:02d}", "train", "id01", "x", "synthtalk", rel, T, 25.0, T / 25, root=tmp_path))
    data = prepare_identity(clips, size=size, recognizer=None)
    assert data.n_frames == 2 * T and data.ppg_source == "phones"
    clip = data.clips[0]
    assert clip.frames.shape == clip.mesh_images.shape == (T, size, size, 3)
    assert clip.ppg.shape == (T, 4, 40) and np.allclose(clip.ppg.sum(-1), 1.0)
    assert np.all(data.background[clip.mouth.any(0)] == FILL)
    with pytest.raises(VastbenchError, match="one identity"):
        prepare_identity(clips + [Clip("id02_x", "train", "id02", "x", "synthtalk", clips[0].paths, T, 25.0, 0.24,
                                       root=tmp_path)], size=size, recognizer=None)
