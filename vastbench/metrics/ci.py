"""Confidence intervals over clips: percentile bootstrap, seeded, order-independent."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values, ci: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap CI of the mean over clips.

    Values are sorted first so the result does not depend on the order clips
    finished in (a resumed run gives the same numbers).  Non-finite means
    (e.g. PSNR of identical clips) are returned as is, with no interval.
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if not np.isfinite(mean) or v.size == 1:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boots = v[idx].mean(axis=1)
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return mean, float(lo), float(hi)


def paired_bootstrap_diff(a, b, ci: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and CI of the paired difference a - b over the same clips."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return bootstrap_ci(d, ci, n_boot, seed)
