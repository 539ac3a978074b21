"""M-LMD and F-LMD: landmark distances between the generated and the ground-truth video.

Both videos go through the same frozen face capture
(:mod:`vastbench.evalnets.face_capture`; on an ingested dataset, MediaPipe's face
mesh, see :class:`~vastbench.metrics.base.CaptureMetric`), so the numbers do not
depend on any system's own landmarks.  Per frame, the landmarks of each video are
centred on their own mean (so a global shift of the whole face, i.e. head placement, is not
counted, as in the usual LMD definition; shape and mouth motion are), then the
Euclidean distance of corresponding landmarks is averaged over landmarks and
frames.  Distances are in pixels of a 256-pixel-wide frame (pixels x 256 / frame
width), so clips rendered at 80 px and at 256 px give comparable numbers.

- ``m_lmd``: mouth landmarks 48-67 (iBUG order);
- ``f_lmd``: all 68 landmarks.

Lower is better; identical videos give 0.
"""

from __future__ import annotations

import numpy as np

from vastbench.metrics.base import REFERENCE_VIDEO, CaptureMetric, EvalSample

MOUTH = np.arange(48, 68)
FULL = np.arange(0, 68)
NORM_WIDTH = 256


def landmark_distance(gen: np.ndarray, ref: np.ndarray, idx: np.ndarray, frame_width: int) -> float:
    """Mean-centred landmark distance of (T, 68, 2) pixel landmarks, in pixels of a 256-wide frame."""
    n = min(len(gen), len(ref))
    g = np.asarray(gen[:n], np.float64)[:, idx]
    r = np.asarray(ref[:n], np.float64)[:, idx]
    g = g - g.mean(axis=1, keepdims=True)
    r = r - r.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(g - r, axis=-1).mean() * NORM_WIDTH / frame_width)


class _LMD(CaptureMetric):
    higher_is_better = False
    needs = frozenset({REFERENCE_VIDEO})
    idx: np.ndarray

    def describe(self) -> dict:
        return {**super().describe(), "normalized_width": NORM_WIDTH}

    def __call__(self, sample: EvalSample) -> float:
        gen_frames, _ = sample.paired_frames()   # checks sizes and lengths
        gen = self.captured(sample, "generated")["landmarks2d"]
        ref = self.captured(sample, "reference")["landmarks2d"]
        return landmark_distance(gen, ref, self.idx, gen_frames.shape[2])


class MLMD(_LMD):
    name = "m_lmd"
    label = "M-LMD"
    idx = MOUTH


class FLMD(_LMD):
    name = "f_lmd"
    label = "F-LMD"
    idx = FULL
