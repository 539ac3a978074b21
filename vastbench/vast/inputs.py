"""Checking and batching what a user hands VAST at inference.

Every problem a user can cause (a prompt shorter than 1 s, NaN frames, a PPG of
the wrong width or a length that is not 4 rows per video frame) is a one-line
``VastbenchError`` naming the request and the fix.

Silence is not an error.  A request whose driving PPG is silence in every frame
(argmax = ``silence_index``) gets a defined output: a listening face, whose
mouth channels are held at the rest pose (the mean of the mouth channels over
silent training frames) while brows, blinks and head motion still follow the
style.  ``is_silent`` is the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vastbench.errors import VastbenchError
from vastbench.vast.config import VastConfig


def as_float_tensor(a: Any, what: str) -> torch.Tensor:
    """numpy array / tensor / nested list -> float32 CPU tensor."""
    try:
        t = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise VastbenchError(f"{what}: expected a numeric array ({exc}); pass a float array") from None
    return t


def check_prompt(prompt: Any, mask: Any, cfg: VastConfig, what: str = "style prompt"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Tp, D) [+ (Tp,) bool mask: frames where it is False are dropped] -> (Tv, D) valid frames, (Tp,) keep."""
    x = as_float_tensor(prompt, what)
    if x.ndim != 2 or x.shape[1] != cfg.out_dim:
        raise VastbenchError(f"{what}: shape {tuple(x.shape)}, expected (frames, {cfg.out_dim}) = expression "
                             f"({cfg.expr_dim}) + pose ({cfg.pose_dim}) per frame; concatenate them")
    keep = torch.ones(x.shape[0], dtype=torch.bool)
    if mask is not None:
        keep = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool))
        if keep.shape != (x.shape[0],):
            raise VastbenchError(f"{what}: mask shape {tuple(keep.shape)} does not match {x.shape[0]} frames")
        x = x[keep]
    bad = ~torch.isfinite(x).all(dim=1)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise VastbenchError(f"{what}: {int(bad.sum())} frame(s) hold NaN/inf (first at valid frame {first}); "
                             f"drop them with the prompt mask or re-track the prompt")
    if x.shape[0] < cfg.min_prompt_frames:
        fps = cfg.min_prompt_frames  # min_prompt_frames is 1 s of video
        raise VastbenchError(f"{what}: {x.shape[0]} valid frames ({x.shape[0] / fps:.2f} s); VAST needs at least "
                             f"{cfg.min_prompt_frames} frames (1 s): use a longer prompt clip")
    return x, keep


def check_prompt_ppg(ppg: Any, keep: torch.Tensor, cfg: VastConfig, what: str = "prompt PPG") -> torch.Tensor:
    """The prompt's own (4Tp, P) PPG -> the rows of its kept frames (4Tv, P)."""
    a = check_ppg(ppg, cfg, what)
    k = cfg.ppg_per_frame
    if a.shape[0] != k * keep.shape[0]:
        raise VastbenchError(f"{what}: {a.shape[0]} rows for a {keep.shape[0]}-frame prompt, expected "
                             f"{k * keep.shape[0]}; pass the prompt clip's own PPG")
    return a[keep.repeat_interleave(k)]


def check_ppg(ppg: Any, cfg: VastConfig, what: str = "driving PPG") -> torch.Tensor:
    """(4T, P) -> the same as a float tensor, checked."""
    a = as_float_tensor(ppg, what)
    k = cfg.ppg_per_frame
    if a.ndim != 2 or a.shape[1] != cfg.ppg_dim:
        raise VastbenchError(f"{what}: shape {tuple(a.shape)}, expected ({k}*frames, {cfg.ppg_dim}) phone "
                             f"posteriors; use the PPG extractor the model was trained with")
    if a.shape[0] < k or a.shape[0] % k:
        raise VastbenchError(f"{what}: {a.shape[0]} rows, expected a positive multiple of {k} ({k} PPG frames "
                             f"per video frame); extract the PPG for the clip's exact frame count")
    if not torch.isfinite(a).all():
        raise VastbenchError(f"{what}: holds NaN/inf values; re-extract the PPG")
    return a


def is_silent(ppg: torch.Tensor, cfg: VastConfig) -> bool:
    """(4T, P) -> True when every PPG frame's most likely phone is silence."""
    return bool((ppg.argmax(dim=-1) == cfg.silence_index).all())


def pad_stack(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(T_i, C)] -> (B, T, C) zero-padded, (B, T) bool mask."""
    T = max(s.shape[0] for s in seqs)
    out = seqs[0].new_zeros(len(seqs), T, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), T, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out, mask
