"""Requests: what a system is asked to produce (DESIGN.md section 2).

One request = one output clip: the target identity (its reference clip), the
driving audio, the style prompt and a seed.  Requests are built
deterministically from a manifest and exported as JSONL/CSV so that external
methods can be run on exactly the same inputs.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vastbench.config import RequestsConfig
from vastbench.data.manifest import Clip, Manifest
from vastbench.errors import VastbenchError


@dataclass(frozen=True)
class Request:
    request_id: str
    identity: str        # the target avatar
    reference: str       # clip id of the target's reference video (appearance)
    driving: str         # clip id whose audio drives the output
    prompt: str          # clip id whose speaking style is transferred
    seed: int
    ground_truth: str | None = None  # clip id of the true output, when one exists

    def to_row(self) -> dict:
        return asdict(self)


def build_requests(manifest: Manifest, cfg: RequestsConfig) -> list[Request]:
    """Deterministic requests over ``cfg.split``.

    The driving clip is also the ground truth (same identity, same style), so
    reference-based metrics apply.  The reference is another clip of the same
    identity from the train split (the avatar's appearance, never the answer);
    the prompt follows ``cfg.prompt``.
    """
    clips = manifest.split(cfg.split)
    if not clips:
        raise VastbenchError(f"{manifest.path}: split '{cfg.split}' has no clips; pick another split in requests.split")
    if cfg.identities is not None:
        missing = sorted(set(cfg.identities) - {c.identity for c in clips})
        if missing:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"requests.identities: '{missing[0]}' has no clips in split '{cfg.split}'"
                                 f"{did_you_mean(missing[0], {c.identity for c in clips})}")
        clips = [c for c in clips if c.identity in set(cfg.identities)]
    rng = np.random.default_rng(cfg.seed)
    order = sorted(clips, key=lambda c: c.clip_id)
    if cfg.limit is not None and cfg.limit < len(order):
        idx = np.sort(rng.choice(len(order), size=cfg.limit, replace=False))
        order = [order[i] for i in idx]
    out = []
    for i, clip in enumerate(order):
        reference = _pick(rng, manifest, clip, lambda c: c.identity == clip.identity, prefer_train=True) or clip
        prompt = (_prompt_from_split(rng, manifest, clip, cfg.prompt_split) if cfg.prompt_split
                  else _prompt_for(rng, manifest, clip, cfg.prompt))
        out.append(Request(
            request_id=f"r{i:04d}",
            identity=clip.identity,
            reference=reference.clip_id,
            driving=clip.clip_id,
            prompt=prompt.clip_id,
            seed=int(cfg.seed * 100_003 + i),
            ground_truth=clip.clip_id,
        ))
    return out


def _prompt_for(rng, manifest: Manifest, clip: Clip, mode: str) -> Clip:
    if mode == "self":
        return clip
    if mode == "same_style":
        same_id = _pick(rng, manifest, clip, lambda c: c.style == clip.style and c.identity == clip.identity)
        return same_id or _pick(rng, manifest, clip, lambda c: c.style == clip.style) or clip
    # cross_identity: the same style spoken by someone else.
    return _pick(rng, manifest, clip, lambda c: c.style == clip.style and c.identity != clip.identity) or clip


def _prompt_from_split(rng, manifest: Manifest, clip: Clip, split: str) -> Clip:
    """A prompt from ``split`` spoken by another identity (any style): zero-shot style transfer."""
    if not manifest.split(split):
        raise VastbenchError(f"{manifest.path}: requests.prompt_split '{split}' has no clips; pick another split")
    pick = _pick(rng, manifest, clip, lambda c: c.split == split and c.identity != clip.identity)
    if pick is None:
        raise VastbenchError(f"requests.prompt_split '{split}': no clip of another identity than {clip.identity}")
    return pick


def _pick(rng, manifest: Manifest, clip: Clip, cond, prefer_train: bool = False) -> Clip | None:
    cands = [c for c in manifest.clips if c.clip_id != clip.clip_id and cond(c)]
    if prefer_train and any(c.split == "train" for c in cands):
        cands = [c for c in cands if c.split == "train"]
    if not cands:
        return None
    cands.sort(key=lambda c: c.clip_id)
    return cands[int(rng.integers(len(cands)))]


def save_requests(requests: list[Request], path: Path) -> None:
    from vastbench.rundir import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r.to_row(), sort_keys=True) + "\n" for r in requests))


def load_requests(path: Path) -> list[Request]:
    if not path.exists():
        raise VastbenchError(f"{path}: no request list; the run directory is incomplete, start a new run")
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(Request(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise VastbenchError(f"{path} line {lineno}: invalid request ({exc})") from None
    return out


def requests_csv(requests: list[Request], manifest: Manifest) -> str:
    """CSV with absolute media paths, for running external methods."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["request_id", "identity", "reference_video", "driving_audio", "prompt_video", "seed", "out"])
    for r in requests:
        w.writerow([r.request_id, r.identity, manifest[r.reference].path("video"),
                    manifest[r.driving].path("audio"), manifest[r.prompt].path("video"), r.seed,
                    f"{r.request_id}.mp4"])
    return buf.getvalue()
