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

On an ingested dataset the capture is MediaPipe with the dataset's face model
(:class:`~vastbench.metrics.base.CaptureMetric`), whose expressions are PCA
coefficients with no per-region channels.  There the "channels" are the x, y, z
displacements of the region's mesh vertices that the coefficients reconstruct
(pose removed), in pixels of a 256 px frame: the mouth is the 20 lip vertices of
iBUG points 48-67, the upper face the brow and eye vertices of iBUG points 17-26
and 36-47 (:data:`MOUTH_VERTICES`, :data:`UPPER_VERTICES`).  Generated and
ground-truth videos are measured the same way, so ``upper_dyn_dev`` compares
like with like; the numbers are not on the blendshape scale of SynthTalk runs.
"""

from __future__ import annotations

import numpy as np

from vastbench.data.ingest.geometry import MESH_TO_IBUG68
from vastbench.metrics.base import REFERENCE_VIDEO, CaptureMetric, EvalSample

MOUTH = [0, 1, 2, 3, 4, 5]
UPPER = [6, 7, 8, 9, 10]
MOUTH_VERTICES = MESH_TO_IBUG68[48:68]                                       # outer and inner lips
UPPER_VERTICES = np.concatenate([MESH_TO_IBUG68[17:27], MESH_TO_IBUG68[36:48]])  # brows and eyes


def region_std(expression: np.ndarray, channels: list[int]) -> float:
    """Std over time per channel, averaged over ``channels``; expression (T, E)."""
    return float(np.asarray(expression, np.float64)[:, channels].std(axis=0).mean())


def velocity_std(expression: np.ndarray, channels: list[int]) -> float:
    """Std over time of frame-to-frame velocity per channel, averaged over ``channels`` (0 for < 2 frames)."""
    x = np.asarray(expression, np.float64)[:, channels]
    return float(np.diff(x, axis=0).std(axis=0).mean()) if len(x) > 2 else 0.0


class _Generated(CaptureMetric):
    def region(self, sample: EvalSample, role: str, region: str) -> tuple[np.ndarray, list[int]]:
        """(values (T, C), channels) of ``region`` (mouth / upper) of the ``role`` video, in the capture's space."""
        expression = self.captured(sample, role)["expression"]
        if self.capture_kind == "synthtalk":
            return expression, MOUTH if region == "mouth" else UPPER
        verts = MOUTH_VERTICES if region == "mouth" else UPPER_VERTICES
        x = self.capture.vertex_motion(expression, verts)
        return x, list(range(x.shape[1]))


class ExprStdMouth(_Generated):
    name = "expr_std_mouth"
    higher_is_better = True
    label = r"Std$_\mathrm{mouth}$"

    def __call__(self, sample: EvalSample) -> float:
        return region_std(*self.region(sample, "generated", "mouth"))


class ExprStdUpper(_Generated):
    name = "expr_std_upper"
    higher_is_better = True
    label = r"Std$_\mathrm{upper}$"

    def __call__(self, sample: EvalSample) -> float:
        return region_std(*self.region(sample, "generated", "upper"))


class UpperDynDev(_Generated):
    name = "upper_dyn_dev"
    higher_is_better = False
    needs = frozenset({REFERENCE_VIDEO})
    label = "Upper-Dyn Dev"

    def __call__(self, sample: EvalSample) -> float:
        gen = velocity_std(*self.region(sample, "generated", "upper"))
        ref = velocity_std(*self.region(sample, "reference", "upper"))
        return abs(gen - ref)
