"""Raw talking-head videos with known truth: full-size SynthTalk clips laid out as a ``folder`` source.

Real datasets cannot ship, so the ingestion pipeline is tested and measured on
SynthTalk clips rendered at the full profile size (256 px): they are written
as plain mp4 files, one subfolder per speaker (the ``folder`` layout), exactly
what a user would point ``vastbench data ingest`` at, while their true
expression, pose and landmarks stay beside them in ``truth/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vastbench.errors import VastbenchError


def pick_specs(n_clips: int, seed: int = 0, per_identity: int | None = None):
    """``n_clips`` SynthTalk clip specs spread round-robin over the identities (deterministic)."""
    from vastbench.data.synthtalk.dataset import N_IDENTITIES, plan_clips

    specs = plan_clips(seed, 6)
    by_id: dict[int, list] = {}
    for s in specs:
        by_id.setdefault(s.identity, []).append(s)
    # Different styles for one identity first: the style spread is what the expression space must capture.
    for i, lst in by_id.items():
        seen, first, rest = set(), [], []
        for s in lst:
            (rest if s.style in seen else first).append(s)
            seen.add(s.style)
        by_id[i] = first + rest
    out, k = [], 0
    while len(out) < n_clips:
        progressed = False
        for i in range(N_IDENTITIES):
            lst = by_id.get(i, [])
            if k < len(lst) and (per_identity is None or k < per_identity) and len(out) < n_clips:
                out.append(lst[k])
                progressed = True
        if not progressed:
            break
        k += 1
    if len(out) < n_clips:
        raise VastbenchError(f"SynthTalk has only {len(out)} clips for this request; ask for fewer")
    return out


def render_raw_folder(out: str | Path, n_clips: int, size: int = 256, seed: int = 0,
                      per_identity: int | None = None, progress=None) -> Path:
    """Render clips to ``out/truth`` (SynthTalk files) and copy their mp4s to ``out/raw/<identity>/``.

    Returns ``out/raw``, a ``folder``-layout source.  Resumable: rendered clips are kept.
    """
    from vastbench.data.synthtalk.dataset import make_clip

    out = Path(out)
    specs = pick_specs(n_clips, seed, per_identity)
    it = progress.track(specs, "render SynthTalk clips", total=len(specs)) if progress is not None else specs
    for spec in it:
        row = make_clip(out / "truth", spec, size, seed)
        dst = out / "raw" / row["identity"] / f"{spec.clip_id}.mp4"
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_suffix(".tmp")
            shutil.copyfile(out / "truth" / row["paths"]["video"], tmp)
            tmp.replace(dst)
    return out / "raw"
