"""Expressiveness statistics: an emphatic clip moves more than a reserved one; closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench import media
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.metrics.base import EvalSample
from vastbench.metrics.expressiveness import (ExprStdMouth, ExprStdUpper, UpperDynDev, region_std,
                                              velocity_std)
from tests.evalnets.test_face_capture import synthtalk_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return synthtalk_clips(tmp_path_factory)


def _sample(clips, gen, ref=None) -> EvalSample:
    ref = ref or gen
    return EvalSample(request=Request("r0", "x", ref, ref, ref, 0, ref), generated=clips[gen].path("video"),
                      reference=clips[ref].path("video"))


def test_closed_forms():
    x = np.zeros((4, 11))
    x[:, 0] = [0, 1, 0, 1]
    assert region_std(x, [0]) == pytest.approx(0.5)
    assert region_std(x, [0, 1]) == pytest.approx(0.25)
    assert velocity_std(x, [0]) == pytest.approx(np.std([1, -1, 1]))


@pytest.mark.parametrize("identity", ["id00", "id09"])
def test_emphatic_is_more_expressive_than_reserved(clips, identity):
    emph = f"{identity}_emphatic_0{2 if identity == 'id00' else 0}"
    res = f"{identity}_reserved_0{2 if identity == 'id00' else 0}"
    assert ExprStdMouth()(_sample(clips, emph)) > ExprStdMouth()(_sample(clips, res))
    assert ExprStdUpper()(_sample(clips, emph)) > ExprStdUpper()(_sample(clips, res))


def test_upper_dyn_dev(clips):
    assert UpperDynDev()(_sample(clips, "id00_emphatic_02")) == 0.0
    assert UpperDynDev()(_sample(clips, "id00_reserved_02", "id00_emphatic_02")) > 0.0
    assert UpperDynDev.higher_is_better is False and ExprStdMouth.higher_is_better is True


def test_background_video_is_a_per_clip_no_face_error(clips, tmp_path):
    bg = np.broadcast_to(np.array([70, 110, 180], np.uint8), (30, 80, 80, 3)).copy()
    s = _sample(clips, "id00_emphatic_02")
    s.generated = media.write_video(tmp_path / "bg.mp4", bg)
    with pytest.raises(VastbenchError, match="no face found"):
        ExprStdMouth()(s)
