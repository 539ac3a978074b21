"""Confidence intervals over clips: percentile bootstrap, seeded, order-independent."""

from __future__ import annotations

from collections.abc import Mapping

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
    """Mean and percentile-bootstrap CI of the paired difference ``a - b``.

    ``a`` and ``b`` map request ids to per-clip values (two systems, or one
    metric before and after a perturbation); only the requests both have are
    paired, so a clip that failed in one of them drops out of both.  Resampling
    the differences (not the two sides independently) removes the between-clip
    variance the two share, which is what makes small systematic differences
    visible.  Sequences of equal length are paired by position.  No common
    request gives NaNs; a non-finite difference (inf PSNR) gives its mean and no
    interval, as :func:`bootstrap_ci`.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError("paired_bootstrap_diff: give two dicts (request id -> value) or two sequences")
        common = sorted(a.keys() & b.keys())
        d = np.array([float(a[k]) - float(b[k]) for k in common], dtype=np.float64)
    else:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise ValueError(f"paired_bootstrap_diff: {a.shape} vs {b.shape} values; pairs need equal lengths")
        d = a - b
    with np.errstate(invalid="ignore"):  # inf - inf is a NaN difference, reported as such
        return bootstrap_ci(d, ci, n_boot, seed)
