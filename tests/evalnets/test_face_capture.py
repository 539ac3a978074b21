"""The frozen face capture: accuracy on rendered SynthTalk clips, batching, resizing, no-face errors."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench import media
from vastbench.errors import VastbenchError
from vastbench.evalnets import face_capture as fcm

# One seen identity (its test-split clips) and one held-out identity.
CLIPS = ["id00_emphatic_02", "id00_reserved_02", "id09_emphatic_00", "id09_reserved_00"]
# Measured with face_capture_v1 on these clips: jaw_open r 0.97 / 0.93, landmarks 0.31 / 0.88 px.
JAW_R_MIN = 0.85
LANDMARK_PX_MAX = 1.5


def synthtalk_clips(tmp_path_factory):
    """A few SynthTalk clips, rendered once per session (shared with the metric tests)."""
    from vastbench.evalnets.train_evalnets import render_clips

    return render_clips(CLIPS, tmp_path_factory.getbasetemp() / "synthtalk_evalnet_clips")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return synthtalk_clips(tmp_path_factory)


@pytest.fixture(scope="module")
def fc():
    return fcm.load_shipped()


def _gt(clip):
    frames = media.read_video(clip.path("video"), with_audio=False).frames
    z = np.load(clip.path("features"))
    return frames, z


@pytest.mark.parametrize("clip_id", ["id00_emphatic_02", "id09_emphatic_00"])
def test_capture_tracks_ground_truth(fc, clips, clip_id):
    frames, z = _gt(clips[clip_id])
    out = fc.capture(frames)
    assert out["expression"].shape == (len(frames), 11)
    assert out["pose"].shape == (len(frames), 6)
    assert out["landmarks2d"].shape == (len(frames), 68, 2)
    jaw_r = np.corrcoef(out["expression"][:, 0], z["expression"][:, 0])[0, 1]
    lm_px = np.linalg.norm(out["landmarks2d"] - z["landmarks2d"], axis=-1).mean()
    assert jaw_r > JAW_R_MIN
    assert lm_px < LANDMARK_PX_MAX


def test_batched_equals_one_by_one_and_resizes(fc, clips):
    frames, _ = _gt(clips["id00_reserved_02"])
    whole = fc.predict(frames[:6])
    single = fc.predict(frames[:6], batch_size=1)
    np.testing.assert_allclose(whole["expression"], single["expression"], atol=1e-4)
    # A 2x larger frame: same expressions, landmarks in the larger frame's pixels.
    big = np.repeat(np.repeat(frames[:6], 2, axis=1), 2, axis=2)
    out_big = fc.predict(big)
    assert np.abs(out_big["landmarks2d"] / 2 - whole["landmarks2d"]).mean() < 1.0
    assert np.abs(out_big["expression"] - whole["expression"]).mean() < 0.05


def test_background_video_is_no_face_error(fc):
    t = np.linspace(0, 1, 80)[None, :, None, None]
    frames = np.broadcast_to((60 + 120 * t) * np.array([0.4, 0.6, 1.0]), (10, 80, 80, 3)).astype(np.uint8)
    with pytest.raises(VastbenchError, match="no face found"):
        fc.capture(np.ascontiguousarray(frames.transpose(0, 2, 1, 3)))
    with pytest.raises(VastbenchError, match="no face found"):
        fc.capture(np.full((5, 80, 80, 3), 128, np.uint8))


def test_bad_frames_are_clear_errors(fc):
    with pytest.raises(VastbenchError, match="uint8"):
        fc.capture(np.zeros((3, 80, 80, 3), np.float32))
    with pytest.raises(VastbenchError, match="no frames"):
        fc.capture(np.zeros((0, 80, 80, 3), np.uint8))


def test_tiny_random_net_roundtrip(tmp_path):
    cfg = fcm.CaptureConfig(input_size=32, width=4, hidden=16)
    net = fcm.FaceCapture(fcm.CaptureNet(cfg), cfg, {"mean": np.zeros(153, np.float32), "std": np.ones(153, np.float32)})
    net.save(tmp_path / "fc.pt")
    back = fcm.FaceCapture.load(tmp_path / "fc.pt")
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 40, 3), dtype=np.uint8)
    np.testing.assert_allclose(net.predict(frames)["pose"], back.predict(frames)["pose"], atol=1e-6)
    assert back.sha256 and len(back.sha256) == 64


def test_gap_filling_and_smoothing():
    v = np.array([[0.0], [9.0], [2.0], [3.0]])
    filled = fcm._fill_gaps(v, np.array([True, False, True, True]))
    np.testing.assert_allclose(filled[:, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(fcm._moving_average(np.arange(5.0)[:, None], 3)[1:4, 0], [1, 2, 3])


def test_shipped_weights_are_pinned():
    import vastbench.evalnets.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS, asset_path

    assert ASSETS["face-capture"].sha256 is not None
    assert asset_path("face-capture").exists()
