"""style_sim and style_param_err on rendered SynthTalk clips (ground-truth videos as 'outputs')."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench import media
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.metrics.base import EvalSample
from vastbench.metrics.style import StyleParamErr, StyleSim
from tests.evalnets.test_face_capture import synthtalk_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return synthtalk_clips(tmp_path_factory)


def sample(clips, gen: str, prompt: str) -> EvalSample:
    req = Request("r0", clips[gen].identity, gen, gen, prompt, 0, gen)
    return EvalSample(request=req, generated=clips[gen].path("video"), reference=clips[gen].path("video"),
                      prompt=clips[prompt].path("video"))


def test_style_sim_of_a_clip_with_itself_is_one(clips):
    assert StyleSim()(sample(clips, "id00_emphatic_02", "id00_emphatic_02")) == pytest.approx(1.0, abs=1e-5)


SAME = [("id00_emphatic_02", "id09_emphatic_00"), ("id00_reserved_02", "id09_reserved_00")]
DIFF = [("id00_emphatic_02", "id00_reserved_02"), ("id09_emphatic_00", "id09_reserved_00"),
        ("id00_emphatic_02", "id09_reserved_00"), ("id00_reserved_02", "id09_emphatic_00")]


def test_same_style_beats_different_style_on_ground_truth(clips):
    from vastbench.evalnets.style_net import load_shipped
    from vastbench.metrics.style import style_similarity

    net = load_shipped()
    seq = {c.clip_id: dict(np.load(c.path("features"))) for c in clips.clips}
    same = [style_similarity(net, seq[a], seq[b]) for a, b in SAME]
    diff = [style_similarity(net, seq[a], seq[b]) for a, b in DIFF]
    assert min(same) > max(diff)


def test_same_style_beats_different_style_on_captured_videos(clips):
    # Through the face capture the separation is weaker (see the style-net report), so on average.
    m = StyleSim()
    same = [m(sample(clips, a, b)) for a, b in SAME]
    diff = [m(sample(clips, a, b)) for a, b in DIFF]
    assert np.mean(same) > np.mean(diff)


def test_style_param_err_lower_for_the_true_style(clips):
    m = StyleParamErr()
    right = m(sample(clips, "id09_emphatic_00", "id00_emphatic_02"))
    wrong = m(sample(clips, "id09_emphatic_00", "id00_reserved_02"))
    assert right < wrong
    assert StyleParamErr.higher_is_better is False and StyleSim.higher_is_better is True


def test_prompt_without_ground_truth_is_a_clear_error(clips, tmp_path):
    frames = media.read_video(clips["id00_emphatic_02"].path("video"), with_audio=False).frames
    other = media.write_video(tmp_path / "elsewhere.mp4", frames)
    s = sample(clips, "id00_emphatic_02", "id00_emphatic_02")
    s.prompt = other
    with pytest.raises(VastbenchError, match="SynthTalk prompts only"):
        StyleParamErr()(s)


def test_three_frame_clip_is_a_clear_style_error(clips, tmp_path):
    frames = media.read_video(clips["id00_emphatic_02"].path("video"), with_audio=False).frames
    short = media.write_video(tmp_path / "short.mp4", frames[:3])
    s = sample(clips, "id00_emphatic_02", "id00_emphatic_02")
    s.generated = short
    with pytest.raises(VastbenchError, match="at least 25 frames"):
        StyleSim()(s)


def test_capture_is_shared_through_the_cache(clips):
    s = sample(clips, "id00_emphatic_02", "id09_emphatic_00")
    StyleSim()(s)
    assert {"generated_capture", "prompt_capture"} <= set(s.cache)
    assert s.cache["generated_capture"]["landmarks2d"].shape[1:] == (68, 2)
