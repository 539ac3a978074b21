"""Checkpoint files and loss logs shared by vastbench's training loops.

The VAST expression model (``vastbench.vast.train``), the personalized renderer
(``vastbench.vast.renderer_train``) and the ``wav2lip_style`` baseline save and
resume the same way: a dict of plain types and tensors written atomically (so
``torch.load(weights_only=True)`` reads it and a run killed while saving keeps
its previous file), the torch / CUDA / sampler RNG states, and a ``losses.csv``
that a resumed run truncates to its checkpoint's step.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_bytes, atomic_write_text


# ----------------------------------------------------------------------------- checkpoint files
def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def cpu_state(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict detached and on the CPU (checkpoints load on any device)."""
    return {k: v.detach().cpu() for k, v in sd.items()}


def load_state(path: str | Path, *, what: str, fmt: str, version: int, writer: str, train_hint: str = "train one",
               corrupt_fix: str = "retrain it", version_fix: str = "retrain it",
               map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_state` and check its format name and version.

    Every problem is a one-line :class:`VastbenchError` naming the file and the fix:
    ``"{what} checkpoint PATH does not exist; {train_hint} or check the path"``, ``"... cannot
    be read (...); it is corrupt or not a checkpoint: {corrupt_fix}"``, ``"PATH is not a {what}
    checkpoint (format ...); pass a file written by {writer}"``, ``"... has version V, this
    vastbench reads version W; {version_fix}"``.
    """
    path = Path(path)
    if not path.is_file():
        raise VastbenchError(f"{what} checkpoint {path} does not exist; {train_hint} or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise VastbenchError(f"{what} checkpoint {path} cannot be read ({type(exc).__name__}); "
                             f"it is corrupt or not a checkpoint: {corrupt_fix}") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise VastbenchError(f"{path} is not a {what} checkpoint (format {got!r}); pass a file written by {writer}")
    if state.get("version") != version:
        raise VastbenchError(f"{what} checkpoint {path} has version {state.get('version')}, this vastbench reads "
                             f"version {version}; {version_fix}")
    return state


# ----------------------------------------------------------------------------- RNG states
def plain(x: Any) -> Any:
    """numpy RNG state -> plain ints/strs (``torch.load(weights_only=True)`` reads those)."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return int(x) if isinstance(x, (np.integer, int)) and not isinstance(x, bool) else x


def rng_state(sampler) -> dict[str, Any]:
    """torch's, CUDA's (when present) and the batch sampler's RNG states, for a checkpoint."""
    state = {"torch": torch.get_rng_state(), "sampler": sampler.state_dict()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], sampler) -> None:
    """Undo :func:`rng_state`: a resumed run draws the same batches and noise as an uninterrupted one."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    sampler.load_state_dict(state["sampler"])


# ----------------------------------------------------------------------------- loss logs
def read_loss_rows(path: str | Path) -> list[dict]:
    """``losses.csv`` as dicts of floats (empty cells left out); [] when there is none yet."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def write_loss_rows(path: str | Path, rows: list[dict], columns: tuple[str, ...] | list[str]) -> None:
    """Write ``losses.csv`` atomically: ``step`` as an integer, the rest to 6 significant digits."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (int(v) if k == "step" else f"{v:.6g}") for k, v in r.items() if k in columns})
    atomic_write_text(Path(path), buf.getvalue())
