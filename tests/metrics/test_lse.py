"""LSE-D / LSE-C against a plain re-statement of syncnet_python's loops.

``official_lse`` below mirrors ``run_pipeline.crop_video`` and
``SyncNetInstance.evaluate`` line by line (one window at a time, one offset at a
time, python_speech_features for the MFCC); the library's batched pipeline must
give the same numbers on random weights saved in the official key layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from python_speech_features import mfcc as psf_mfcc
from scipy import signal

from vastbench.errors import VastbenchError
from vastbench.metrics import lse as L
from vastbench.metrics import syncnet as S

# the official crop smoothing on clips shorter than its 13-frame kernel
pytestmark = pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent:UserWarning")


# --------------------------------------------------------------------------- the official procedure, plainly
def official_crops(frames_rgb, boxes, cs=0.4):
    """crop_video: medfilt-smoothed boxes, pad 110, asymmetric crop, cv2.resize to 224 (BGR out)."""
    import cv2

    dets = {"x": [], "y": [], "s": []}
    for det in boxes:
        dets["s"].append(max((det[3] - det[1]), (det[2] - det[0])) / 2)
        dets["y"].append((det[1] + det[3]) / 2)
        dets["x"].append((det[0] + det[2]) / 2)
    for k in dets:
        dets[k] = signal.medfilt(dets[k], kernel_size=13)
    out = []
    for fidx, rgb in enumerate(frames_rgb):
        image = rgb[:, :, ::-1]  # cv2.imread gives BGR
        bs = dets["s"][fidx]
        bsi = int(bs * (1 + 2 * cs))
        frame = np.pad(image, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
        my = dets["y"][fidx] + bsi
        mx = dets["x"][fidx] + bsi
        face = frame[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
        out.append(cv2.resize(face, (224, 224)))
    return np.stack(out)


def calc_pdist(feat1, feat2, vshift=10):
    win_size = vshift * 2 + 1
    feat2p = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    dists = []
    for i in range(0, len(feat1)):
        dists.append(torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(win_size, 1), feat2p[i:i + win_size, :]))
    return dists


def official_lse(model, images_bgr, audio_int16, vshift=15):
    """SyncNetInstance.evaluate on decoded crops: one window per forward pass."""
    im = np.stack(list(images_bgr), axis=3)
    im = np.expand_dims(im, axis=0)
    im = np.transpose(im, (0, 3, 4, 1, 2))
    imtv = torch.from_numpy(im.astype(float)).float()
    mfcc = zip(*psf_mfcc(audio_int16, 16000))
    mfcc = np.stack([np.array(i) for i in mfcc])
    cc = np.expand_dims(np.expand_dims(mfcc, axis=0), axis=0)
    cct = torch.from_numpy(cc.astype(float)).float()
    min_length = min(len(images_bgr), int(np.floor(len(audio_int16) / 640)))
    lastframe = min_length - 5
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for vframe in range(0, lastframe):
            im_feat.append(model.forward_lip(imtv[:, :, vframe:vframe + 5, :, :]))
            cc_feat.append(model.forward_aud(cct[:, :, :, vframe * 4:vframe * 4 + 20]))
    im_feat, cc_feat = torch.cat(im_feat, 0), torch.cat(cc_feat, 0)
    dists = calc_pdist(im_feat, cc_feat, vshift=vshift)
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    offset = vshift - minidx
    conf = torch.median(mdist) - minval
    return float(minval), float(conf), int(offset)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return S.save_random_official_layout(tmp_path_factory.mktemp("syncnet") / "random_official.model", seed=3)


@pytest.fixture(scope="module")
def model(weights):
    torch.set_num_threads(1)
    return S.load_syncnet(weights)


def _clip(T=12, h=72, w=88, seed=0, audio_frames=None):
    """A moving textured 'face' with a mouth that opens with the audio envelope, plus landmarks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames, landmarks = [], []
    env = np.abs(np.sin(np.arange(T) * 0.7))
    for t in range(T):
        cx, cy = w / 2 + 3 * np.sin(t / 3), h / 2 + 2 * np.cos(t / 4)
        f = (40 + 20 * rng.random((h, w, 3))).astype(np.float64)
        face = ((xx - cx) / 22) ** 2 + ((yy - cy) / 28) ** 2 < 1
        f[face] = [200, 160, 140]
        mouth = ((xx - cx) / 9) ** 2 + ((yy - cy - 12) / (1 + 5 * env[t])) ** 2 < 1
        f[mouth] = [60, 10, 20]
        frames.append(f.astype(np.uint8))
        ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        landmarks.append(np.stack([cx + 20 * np.cos(ang), cy + 25 * np.sin(ang)], axis=1))
    n = 640 * (audio_frames if audio_frames is not None else T) + 123
    t = np.arange(n) / 16000
    envelope = np.pad(np.repeat(env, 640), (0, n), mode="edge")[:n].clip(0.05)
    audio = 0.3 * np.sin(2 * np.pi * 180 * t) * envelope + 0.01 * rng.standard_normal(n)
    return np.stack(frames), np.stack(landmarks), audio.astype(np.float32)


# --------------------------------------------------------------------------- tests
def test_architecture_has_the_official_layout():
    keys = S.official_keys()
    assert keys[0] == "netcnnaud.0.weight"
    assert "netcnnaud.18.weight" in keys and "netcnnlip.18.weight" in keys
    assert "netfcaud.3.weight" in keys and "netfclip.1.running_var" in keys
    m = S.SyncNetModel().eval()
    with torch.no_grad():
        assert m.forward_aud(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)
        assert m.forward_lip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 1024)


def test_folded_lip_tower_equals_forward_lip_and_follows_weight_changes(model):
    """The inference path (2-D, batch norm folded, channels-last) is the official tower's function."""
    g = torch.Generator().manual_seed(5)
    x = 255 * torch.rand(3, 3, 5, 224, 224, generator=g)
    with torch.no_grad():
        ref = model.forward_lip(x)
        fast = model.embed_lip(x)
    assert fast.shape == (3, 1024)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert S.folded_lip_tower(model) is S.folded_lip_tower(model)       # built once per weights
    m2 = S.SyncNetModel().eval()
    m2.load_state_dict(model.state_dict())
    with torch.no_grad():
        before = m2.embed_lip(x[:1])
        m2.netcnnlip[1].running_mean.add_(5.0)                             # an in-place change is seen
        after = m2.embed_lip(x[:1])
        torch.testing.assert_close(after, m2.forward_lip(x[:1]), rtol=1e-4, atol=1e-4 * float(after.abs().max()))
    assert not torch.allclose(before, after)
    m2.train()
    assert m2.embed_lip(x[:2]).requires_grad                           # training mode: the plain tower


def test_crops_match_crop_video_exactly():
    frames, landmarks, _ = _clip(T=15)
    landmarks[:, :, 0] += np.linspace(-30, 30, 15)[:, None]  # run off both edges: padding with 110
    boxes = L.boxes_from_landmarks(landmarks)
    ours = L.face_crops(frames, boxes=boxes)[:, :, :, ::-1]
    np.testing.assert_array_equal(ours, official_crops(frames, boxes))


@pytest.mark.parametrize("audio_frames", [None, 10])  # audio as long as the video, and shorter
def test_batched_equals_official_loops(model, weights, audio_frames):
    frames, landmarks, audio = _clip(T=12, audio_frames=audio_frames)
    pcm = L.int16_samples(audio)
    crops = official_crops(frames, L.boxes_from_landmarks(landmarks))
    ref_d, ref_c, ref_off = official_lse(model, crops, pcm)
    # the library loads the same file itself, batches everything and computes the MFCC its own way
    d, c, off = L.lse_from_arrays(frames, audio, landmarks=landmarks, model=weights, chunk=4)
    np.testing.assert_allclose([d, c], [ref_d, ref_c], rtol=1e-4, atol=1e-4)
    assert off == ref_off
    r = L.lse_result(frames, audio, landmarks=landmarks, model=model)
    assert r.n_windows == (audio_frames or 12) - 5
    assert len(r.curve) == 31 and r.lse_d == pytest.approx(min(r.curve))


def test_offset_sign_convention():
    """Audio delayed by k windows: the official offset is -k (positive = audio leads)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(40, 8, generator=g)
    for k in (-4, 0, 3):
        a = torch.roll(v, shifts=k, dims=0)      # a[i + k] = v[i]: audio late by k
        dists = L.offset_distances(v, a, vshift=15)
        ref = torch.stack(calc_pdist(v, a, vshift=15), 0)
        torch.testing.assert_close(dists, ref, rtol=1e-6, atol=1e-6)
        r = L.summarize(dists)
        assert r.offset == -k


def test_missing_landmarks_are_interpolated_and_centre_fallback(model):
    frames, landmarks, _ = _clip(T=9)
    holed = landmarks.copy()
    holed[4] = np.nan
    filled = L.face_crops(frames, landmarks=holed)
    expect = landmarks.copy()
    expect[4] = (landmarks[3] + landmarks[5]) / 2
    np.testing.assert_array_equal(filled, L.face_crops(frames, landmarks=expect))
    centre = L.face_crops(frames)  # no landmarks: centred square of the frame
    assert centre.shape == (9, 224, 224, 3)
    with pytest.raises(VastbenchError, match="no face landmarks"):
        L.face_crops(frames, no_face="error")


def test_too_short_is_a_clear_error(model):
    frames, _, audio = _clip(T=6)
    with pytest.raises(VastbenchError, match="at least 7 frames"):
        L.lse_from_arrays(frames, audio, model=model)


def test_loader_errors_and_formats(tmp_path, weights):
    with pytest.raises(VastbenchError, match="official SyncNet weights not found at .*vastbench assets import"):
        S.load_syncnet(tmp_path / "nope.model")
    bad = tmp_path / "bad.model"
    torch.save({"netcnnaud.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(VastbenchError, match="syncnet_python layout"):
        S.load_syncnet(bad)
    pickled = tmp_path / "pickled.model"
    torch.save(S.SyncNetModel(), pickled)  # a whole pickled module: refused by the safe loader
    with pytest.raises(VastbenchError, match="not a SyncNet state dict"):
        S.load_syncnet(pickled)
    state = torch.load(weights, weights_only=True)
    assert not any(k.endswith("num_batches_tracked") for k in state)
    ckpt = tmp_path / "syncnet_synthtalk.pt"
    torch.save({"state_dict": S.SyncNetModel().state_dict(), "meta": {"steps": 1}}, ckpt)
    assert isinstance(S.load_syncnet(ckpt), S.SyncNetModel)


def test_weights_resolution_and_labels(tmp_path, monkeypatch, weights):
    import shutil

    from vastbench.paths import cache_dir

    monkeypatch.delenv(L.ENV_WEIGHTS, raising=False)
    assets = cache_dir() / "assets"
    for name in (L.OFFICIAL_FILENAME, L.SYNTHTALK_FILENAME):
        (assets / name).unlink(missing_ok=True)
    default = L.LSED()  # out of the box: the shipped SynthTalk SyncNet, verified against its pin
    assert default.weights_kind == "synthtalk" and default.weights_label.startswith("SynthTalk SyncNet v1 (sha256 ")
    import vastbench.assets

    monkeypatch.setattr(vastbench.assets, "SHIPPED_DIR", tmp_path / "no-shipped-weights")
    with pytest.raises(VastbenchError, match="no SyncNet weights.*shipped SynthTalk SyncNet .* is missing"):
        L.LSED()
    monkeypatch.undo()
    monkeypatch.delenv(L.ENV_WEIGHTS, raising=False)
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, assets / L.SYNTHTALK_FILENAME)
    m = L.LSEC()
    assert m.weights_kind == "synthtalk" and m.weights_label.startswith("SynthTalk SyncNet (sha256 ")
    assert "not the official SyncNet" in m.footnote and m.describe()["weights_sha256"]
    shutil.copy(weights, assets / L.OFFICIAL_FILENAME)
    assert L.LSED().weights_kind == "official"  # the official file wins when both are there
    monkeypatch.setenv(L.ENV_WEIGHTS, str(weights))
    assert L.LSED().weights_kind == "custom"
    monkeypatch.setenv(L.ENV_WEIGHTS, str(tmp_path / "missing.model"))
    with pytest.raises(VastbenchError, match="not found at"):
        L.LSED()
    for name in (L.OFFICIAL_FILENAME, L.SYNTHTALK_FILENAME):
        (assets / name).unlink()


def test_metrics_share_one_pass_per_clip(tmp_path, weights, monkeypatch):
    from vastbench import media
    from vastbench.data.requests import Request
    from vastbench.metrics.base import EvalSample

    frames, landmarks, audio = _clip(T=12)
    clip = media.write_video(tmp_path / "clip.mp4", frames, 25, audio, 16000)
    req = Request("r0", "id0", "c0", "c0", "c0", 0)
    sample = EvalSample(request=req, generated=clip)
    # Centred crops: this synthetic 'face' is not one the face-capture network would find.
    d_metric, c_metric = L.LSED(weights=weights, crops="centre"), L.LSEC(weights=weights, crops="centre")
    assert (d_metric.higher_is_better, c_metric.higher_is_better) == (False, True)
    d = d_metric(sample)
    original, calls = L.lse_result, []
    monkeypatch.setattr(L, "lse_result", lambda *a, **k: calls.append(1))
    c = c_metric(sample)  # from sample.cache: no second SyncNet pass
    assert not calls and np.isfinite(d) and np.isfinite(c) and c >= 0
    video = media.read_video(clip)  # the clip's own audio track is what is measured
    expect = original(video.frames, video.audio, model=weights)
    assert (d, c) == (expect.lse_d, expect.lse_c)
