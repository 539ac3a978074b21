"""Training data for VAST: clips -> random windows with a style prompt -> padded batches.

A clip is a dict ``{"clip_id", "style", "identity", "expression" (T, E),
"pose" (T, pose_dim), "ppg" (4T, P)}`` (numpy arrays; DESIGN.md section 2).

The style prompt of a training window is a window of a *different* clip with the
same ``style`` label whenever one exists, so the style path cannot smuggle the
target's content (what is said, when the blinks fall) into the decoder; it can
only carry what the two clips share: the style.  A clip whose style has no other
clip (or no style label) is its own prompt.

All randomness comes from one numpy Generator whose state goes into the
checkpoint, so a resumed run draws the same windows as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vastbench.errors import VastbenchError
from vastbench.vast.config import VastConfig

log = logging.getLogger(__name__)

REQUIRED = ("clip_id", "expression", "pose", "ppg")


class ClipDataset(Dataset):
    """Clips as checked float32 arrays; item i -> {"clip_id", "style", "identity", "x" (T, D), "ppg" (4T, P)}."""

    def __init__(self, clips: list[dict[str, Any]], cfg: VastConfig):
        if not clips:
            raise VastbenchError("VAST dataset is empty; give at least one clip")
        self.cfg = cfg
        self.items = [self._check(c, cfg) for c in clips]

    @staticmethod
    def _check(clip: dict, cfg: VastConfig) -> dict:
        name = clip.get("clip_id", "<no clip_id>")
        missing = [k for k in REQUIRED if k not in clip]
        if missing:
            raise VastbenchError(f"clip {name}: missing '{missing[0]}'; clips need {', '.join(REQUIRED)}")
        expr = np.asarray(clip["expression"], dtype=np.float32)
        pose = np.asarray(clip["pose"], dtype=np.float32)
        ppg = np.asarray(clip["ppg"], dtype=np.float32)
        T = expr.shape[0] if expr.ndim == 2 else -1
        k = cfg.ppg_per_frame
        checks = [
            (expr.ndim == 2 and expr.shape[1] == cfg.expr_dim,
             f"expression shape {expr.shape}, expected (T, {cfg.expr_dim})"),
            (pose.shape == (T, cfg.pose_dim), f"pose shape {pose.shape}, expected ({T}, {cfg.pose_dim})"),
            (ppg.shape == (k * T, cfg.ppg_dim), f"ppg shape {ppg.shape}, expected ({k * T}, {cfg.ppg_dim})"),
            (T >= 2, f"{T} frames; a clip needs at least 2"),
            (all(np.isfinite(a).all() for a in (expr, pose, ppg)), "NaN/inf values"),
        ]
        for ok, problem in checks:
            if not ok:
                raise VastbenchError(f"clip {name}: {problem}; fix the clip or set the VAST config to match the data")
        return {"clip_id": str(name), "style": clip.get("style"), "identity": clip.get("identity"),
                "x": np.concatenate([expr, pose], axis=1), "ppg": ppg}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class WindowSampler:
    """Draws training examples: a target window + a prompt window from a same-style clip."""

    def __init__(self, dataset: ClipDataset, cfg: VastConfig, seed: int):
        self.ds, self.cfg = dataset, cfg
        self.rng = np.random.default_rng(seed)
        by_style: dict[Any, list[int]] = defaultdict(list)
        for i, it in enumerate(dataset.items):
            if it["style"] is not None and len(it["x"]) >= cfg.min_prompt_frames:
                by_style[it["style"]].append(i)
        self.partners = [[j for j in by_style.get(it["style"], []) if j != i] if it["style"] is not None else []
                         for i, it in enumerate(dataset.items)]

    @property
    def n_self_prompted(self) -> int:
        """Clips with no other clip of their style: they prompt themselves."""
        return sum(not p for p in self.partners)

    def _window(self, T: int, lo: int, hi: int) -> slice:
        L = min(int(self.rng.integers(lo, hi + 1)), T)
        start = int(self.rng.integers(0, T - L + 1))
        return slice(start, start + L)

    def example(self, i: int) -> dict[str, np.ndarray]:
        c, k = self.cfg, self.cfg.ppg_per_frame
        it = self.ds[i]
        w = self._window(len(it["x"]), c.window_min, c.window_max)
        partners = self.partners[i]
        j = partners[int(self.rng.integers(len(partners)))] if partners else i
        pr = self.ds[j]
        pw = self._window(len(pr["x"]), c.min_prompt_frames, c.prompt_max)
        return {"x": it["x"][w], "ppg": it["ppg"][k * w.start: k * w.stop],
                "prompt": pr["x"][pw], "prompt_ppg": pr["ppg"][k * pw.start: k * pw.stop]}

    def batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = self.rng.integers(len(self.ds), size=batch_size)
        return collate([self.example(int(i)) for i in idx])

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def _pad(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(T_i, C)] -> (B, T, C) zero-padded, (B, T) bool mask."""
    T = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), T, arrays[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(arrays), T), dtype=bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
        mask[i, : len(a)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def collate(examples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Examples -> the batch layout of ``VastModel.forward`` (masks True on valid frames)."""
    x, mask = _pad([e["x"] for e in examples])                       # (B, T, D), (B, T)
    ppg, _ = _pad([e["ppg"] for e in examples])                      # (B, 4T, P)
    prompt, prompt_mask = _pad([e["prompt"] for e in examples])      # (B, Tp, D), (B, Tp)
    prompt_ppg, _ = _pad([e["prompt_ppg"] for e in examples])        # (B, 4Tp, P)
    return {"x": x, "mask": mask, "ppg": ppg, "prompt": prompt, "prompt_mask": prompt_mask, "prompt_ppg": prompt_ppg}


def fixed_batches(dataset: ClipDataset, cfg: VastConfig, n: int, seed: int = 1234) -> list[dict[str, torch.Tensor]]:
    """The same ``n`` batches every time (validation)."""
    sampler = WindowSampler(dataset, cfg, seed)
    return [sampler.batch(cfg.batch_size) for _ in range(n)]


def feature_stats(dataset: ClipDataset, cfg: VastConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel mean and std of x over all frames, and the rest face: mean x over silent frames, (D,) each."""
    k = cfg.ppg_per_frame
    xs = np.concatenate([it["x"] for it in dataset.items]).astype(np.float64)               # (N, D)
    silent = np.concatenate([
        (it["ppg"].reshape(len(it["x"]), k, -1).argmax(-1) == cfg.silence_index).all(1) for it in dataset.items])
    rest = xs[silent].mean(0) if silent.any() else xs.mean(0)
    if not silent.any():
        log.warning("no silent frames in the training set (PPG class %d); the silence rule uses the mean face",
                    cfg.silence_index)
    return xs.mean(0), xs.std(0), rest


def to_device(batch: dict[str, torch.Tensor], device: str | torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
