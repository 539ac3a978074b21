"""Expressiveness statistics of the captured expressions of the generated clip.

"More expressive" with a number: the generated video goes through the frozen
face capture (:mod:`vastbench.evalnets.face_capture`) and these summarize how
much the face moves.  SynthTalk blendshape channels, grouped by region:

- mouth: jaw_open, lip_round, lip_stretch, smile_left, smile_right, lip_press;
- upper face: brow_raise, brow_frown, blink_left, blink_right, cheek.

Metrics:

- ``expr_std_mouth`` / ``expr_std_upper``: per-channel standard deviation over
  time, averaged over the region's channels (higher = more expressive; more is
  not automatically better, compare with the ground-truth row);
- ``upper_dyn_dev``: | mean over upper channels of the std of the frame-to-frame
  velocity, output - the same for the ground-truth video | (lower is better: the
  upper face moves as fast as the real one, neither frozen nor jittery).
"""

from __future__ import annotations

import numpy as np

from vastbench.evalnets import face_capture
from vastbench.metrics.base import REFERENCE_VIDEO, EvalSample, Metric

MOUTH = [0, 1, 2, 3, 4, 5]
UPPER = [6, 7, 8, 9, 10]


def region_std(expression: np.ndarray, channels: list[int]) -> float:
    """Std over time per channel, averaged over ``channels``; expression (T, E)."""
    return float(np.asarray(expression, np.float64)[:, channels].std(axis=0).mean())


def velocity_std(expression: np.ndarray, channels: list[int]) -> float:
    """Std over time of frame-to-frame velocity per channel, averaged over ``channels`` (0 for < 2 frames)."""
    x = np.asarray(expression, np.float64)[:, channels]
    return float(np.diff(x, axis=0).std(axis=0).mean()) if len(x) > 2 else 0.0


class _Generated(Metric):
    def describe(self) -> dict:
        return {**super().describe(), "face_capture": face_capture.load_shipped().sha256}


class ExprStdMouth(_Generated):
    name = "expr_std_mouth"
    higher_is_better = True
    label = r"Std$_\mathrm{mouth}$"

    def __call__(self, sample: EvalSample) -> float:
        return region_std(face_capture.capture_sample(sample, "generated")["expression"], MOUTH)


class ExprStdUpper(_Generated):
    name = "expr_std_upper"
    higher_is_better = True
    label = r"Std$_\mathrm{upper}$"

    def __call__(self, sample: EvalSample) -> float:
        return region_std(face_capture.capture_sample(sample, "generated")["expression"], UPPER)


class UpperDynDev(_Generated):
    name = "upper_dyn_dev"
    higher_is_better = False
    needs = frozenset({REFERENCE_VIDEO})
    label = "Upper-Dyn Dev"

    def __call__(self, sample: EvalSample) -> float:
        gen = face_capture.capture_sample(sample, "generated")["expression"]
        ref = face_capture.capture_sample(sample, "reference")["expression"]
        return abs(velocity_std(gen, UPPER) - velocity_std(ref, UPPER))
