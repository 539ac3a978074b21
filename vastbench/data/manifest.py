"""Clip records and dataset manifests (DESIGN.md section 2).

A manifest is a JSON Lines file (``manifest.jsonl``), one clip per line, paths
relative to the manifest's directory.  It is validated on load; an invalid row
is an error naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from vastbench.errors import VastbenchError

SPLITS = ("train", "val", "test", "test_unseen_style", "test_unseen_identity")
_REQUIRED = ("clip_id", "split", "identity", "style", "source", "paths", "n_frames", "fps", "duration")
_PATH_KEYS = ("video", "audio", "features")


@dataclass
class Clip:
    clip_id: str
    split: str
    identity: str
    style: str
    source: str
    paths: dict[str, str]  # video, audio, features (relative to the manifest dir)
    n_frames: int
    fps: float
    duration: float
    meta: dict[str, Any] = field(default_factory=dict)
    root: Path | None = field(default=None, repr=False, compare=False)

    def path(self, key: str) -> Path:
        rel = self.paths.get(key)
        if rel is None:
            raise VastbenchError(f"clip {self.clip_id}: no '{key}' path in the manifest")
        p = Path(rel)
        return p if p.is_absolute() or self.root is None else self.root / p

    def to_row(self) -> dict:
        row = asdict(self)
        row.pop("root")
        return row


class Manifest:
    """The clips of one dataset, indexed by id."""

    def __init__(self, clips: Iterable[Clip], path: Path | None = None):
        self.clips = list(clips)
        self.path = path
        self._by_id = {c.clip_id: c for c in self.clips}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, clip_id: str) -> Clip:
        try:
            return self._by_id[clip_id]
        except KeyError:
            raise VastbenchError(f"{self.path}: no clip '{clip_id}' in the manifest") from None

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._by_id

    def split(self, name: str) -> list[Clip]:
        if name not in SPLITS:
            raise VastbenchError(f"unknown split '{name}'; valid: {', '.join(SPLITS)}")
        return [c for c in self.clips if c.split == name]

    def identities(self) -> list[str]:
        return sorted({c.identity for c in self.clips})

    def content_hash(self) -> str:
        """A hash of the manifest rows (not the media): changes when the dataset changes."""
        blob = json.dumps([c.to_row() for c in self.clips], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, path: Path) -> None:
        from vastbench.rundir import atomic_write_text

        text = "".join(json.dumps(c.to_row(), sort_keys=True) + "\n" for c in self.clips)
        atomic_write_text(path, text)
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if not path.exists():
            raise VastbenchError(f"{path}: no such manifest; build the dataset first (vastbench data synth)")
        clips = []
        seen: set[str] = set()
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VastbenchError(f"{path} line {lineno}: not valid JSON ({exc.msg})") from None
            clip = _validate_row(row, path, lineno)
            if clip.clip_id in seen:
                raise VastbenchError(f"{path} line {lineno}: duplicate clip_id '{clip.clip_id}'")
            seen.add(clip.clip_id)
            clip.root = path.parent
            clips.append(clip)
        if not clips:
            raise VastbenchError(f"{path}: manifest has no clips")
        return cls(clips, path)


def _validate_row(row: Any, path: Path, lineno: int) -> Clip:
    where = f"{path} line {lineno}"
    if not isinstance(row, dict):
        raise VastbenchError(f"{where}: a row must be a JSON object")
    for key in _REQUIRED:
        if key not in row:
            raise VastbenchError(f"{where}: missing field '{key}'")
    unknown = set(row) - set(_REQUIRED) - {"meta"}
    if unknown:
        raise VastbenchError(f"{where}: unknown field '{sorted(unknown)[0]}'; put free-form data under 'meta'")
    if row["split"] not in SPLITS:
        raise VastbenchError(f"{where}: field 'split' is '{row['split']}'; valid: {', '.join(SPLITS)}")
    paths = row["paths"]
    if not isinstance(paths, dict) or any(k not in paths for k in _PATH_KEYS):
        raise VastbenchError(f"{where}: field 'paths' must map {', '.join(_PATH_KEYS)} to files")
    for key, typ in (("n_frames", int), ("fps", (int, float)), ("duration", (int, float))):
        if not isinstance(row[key], typ) or isinstance(row[key], bool) or row[key] < 0:
            raise VastbenchError(f"{where}: field '{key}' must be a non-negative number, got {row[key]!r}")
    for key in ("clip_id", "identity", "style", "source"):
        if not isinstance(row[key], str) or not row[key]:
            raise VastbenchError(f"{where}: field '{key}' must be a non-empty string")
    return Clip(**{k: row[k] for k in _REQUIRED}, meta=row.get("meta", {}))
