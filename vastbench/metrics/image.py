"""PSNR and SSIM against the ground-truth video (scikit-image implementations).

Per clip: PSNR from the mean squared error over all frames (so one perfect
frame does not make a clip infinite); SSIM averaged over frames.  A clip
identical to its reference has PSNR = inf, shown as such in tables.
"""

from __future__ import annotations

import numpy as np

from vastbench.metrics.base import REFERENCE_VIDEO, EvalSample, Metric


class PSNR(Metric):
    name = "psnr"
    higher_is_better = True
    needs = frozenset({REFERENCE_VIDEO})
    label = "PSNR"

    def __call__(self, sample: EvalSample) -> float:
        gen, ref = sample.paired_frames()
        mse = float(np.mean((gen.astype(np.float64) - ref.astype(np.float64)) ** 2))
        return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


class SSIM(Metric):
    name = "ssim"
    higher_is_better = True
    needs = frozenset({REFERENCE_VIDEO})
    label = "SSIM"

    def __call__(self, sample: EvalSample) -> float:
        from skimage.metrics import structural_similarity

        gen, ref = sample.paired_frames()
        vals = [structural_similarity(g, r, channel_axis=-1, data_range=255) for g, r in zip(gen, ref)]
        return float(np.mean(vals))
