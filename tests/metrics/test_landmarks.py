"""M-LMD / F-LMD: zero for identical videos, growing with mouth distortion and blur; short clips work."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench import media
from vastbench.data.requests import Request
from vastbench.metrics.base import EvalSample
from vastbench.metrics.landmarks import FLMD, MLMD, landmark_distance
from tests.evalnets.test_face_capture import synthtalk_clips

CLIP = "id00_emphatic_02"


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    clips = synthtalk_clips(tmp_path_factory)
    return clips[CLIP].path("video"), media.read_video(clips[CLIP].path("video"), with_audio=False).frames


def _sample(ref_path, gen_path) -> EvalSample:
    return EvalSample(request=Request("r0", "id00", CLIP, CLIP, CLIP, 0, CLIP), generated=gen_path, reference=ref_path)


def _blur(frames, k):
    from scipy.ndimage import uniform_filter

    return uniform_filter(frames.astype(np.float32), size=(1, k, k, 1)).round().astype(np.uint8)


def _stretch_mouth(frames, px):
    """Push the lower third of the face down by ``px`` rows: a mouth/jaw distortion, not a global shift."""
    out = frames.copy()
    out[:, 52 + px:] = frames[:, 52:80 - px]
    return out


def test_closed_form():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 80, (5, 68, 2))
    assert landmark_distance(a, a, np.arange(68), 80) == 0.0
    assert landmark_distance(a, a + 7.0, np.arange(68), 80) == pytest.approx(0.0, abs=1e-9)  # centred: shifts cancel
    b = a.copy()
    b[:, 48:68] += np.array([[1.0, 0.0]] * 10 + [[-1.0, 0.0]] * 10)   # mouth spread by 1 px each side
    assert landmark_distance(a, b, np.arange(48, 68), 80) == pytest.approx(256 / 80)


def test_identical_videos_give_zero(ref):
    path, _ = ref
    s = _sample(path, path)
    assert MLMD()(s) == 0.0 and FLMD()(s) == 0.0


def test_grows_with_distortion_and_blur(ref, tmp_path):
    path, frames = ref
    m = {}
    for name, gen in [("stretch2", _stretch_mouth(frames, 2)), ("stretch5", _stretch_mouth(frames, 5)),
                      ("blur3", _blur(frames, 3)), ("blur9", _blur(frames, 9))]:
        s = _sample(path, media.write_video(tmp_path / f"{name}.mp4", gen))
        m[name] = (MLMD()(s), FLMD()(s))
    assert 0 < m["stretch2"][0] < m["stretch5"][0]
    assert 0 < m["blur3"][0] < m["blur9"][0]
    assert m["stretch2"][1] < m["stretch5"][1]


def test_three_frame_clip_still_works(ref, tmp_path):
    _, frames = ref
    p = media.write_video(tmp_path / "short.mp4", frames[:3])
    assert MLMD()(_sample(p, p)) == 0.0
    assert MLMD.higher_is_better is False
