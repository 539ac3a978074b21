"""Where the videos of a source dataset are, who speaks in each, and which split each goes to.

Layouts (``--layout``):

* ``hdtf``: a flat folder of HDTF videos named ``<RD|WDA|WRA>_<Name>_<NNN>.mp4``;
  the speaker is the name without the trailing number (``WDA_BarackObama``).
  No style labels: the style is ``unlabeled``.
* ``mead``: MEAD's tree ``<speaker>/video/front/<emotion>/level_<n>/<NNN>.mp4``;
  only the front view is ingested.  Style = ``<emotion>_<n>`` (e.g. ``angry_3``),
  also stored as ``meta.emotion`` / ``meta.intensity``.  A video without an
  audio track takes its speech from ``<speaker>/audio/<emotion>/level_<n>/<NNN>.m4a``
  (MEAD ships audio separately).
* ``voxceleb``: ``<id>/<youtube id>/<NNNNN>.mp4`` (VoxCeleb2 mp4 tree, or VoxCeleb1
  videos laid out the same way); when the folder holds ``dev/`` and ``test/``,
  the official speaker split is kept.  Style ``unlabeled``.
* ``folder``: one subfolder per speaker, videos anywhere below it; style
  ``unlabeled`` (a second level of folders, ``<speaker>/<style>/*.mp4``, names
  the style).

Splits are speaker-disjoint: the held-out speakers' clips are ``test`` (the
official ones for VoxCeleb's ``test/``, those named by ``--test-speakers``, or
else the first 20 % of speakers in a fixed hash order); of the other speakers'
clips, every tenth (by a hash of the clip id) is ``val`` and the rest ``train``.
With a single speaker a speaker-disjoint test set is impossible: then 20 % of
its clips are ``test`` and ``dataset.json`` says ``speaker_disjoint_test: false``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from vastbench.errors import VastbenchError

LAYOUTS = ("hdtf", "mead", "voxceleb", "folder")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
UNLABELED = "unlabeled"


@dataclass
class SourceVideo:
    path: Path
    clip_id: str
    identity: str
    style: str
    audio_path: Path | None = None    # a separate audio file (MEAD), used when the video has no audio track
    official_split: str | None = None  # "test" / "train" when the dataset defines it
    meta: dict = field(default_factory=dict)
    split: str = ""


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _videos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def discover(layout: str, src: str | Path) -> list[SourceVideo]:
    src = Path(src).expanduser()
    if layout not in LAYOUTS:
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"unknown layout '{layout}'{did_you_mean(layout, LAYOUTS)}")
    if not src.is_dir():
        raise VastbenchError(f"{src}: no such directory; --src must be the folder holding the {layout} videos")
    found = {"hdtf": _hdtf, "mead": _mead, "voxceleb": _voxceleb, "folder": _folder}[layout](src)
    if not found:
        hint = {"hdtf": "<Name>_<NNN>.mp4 files", "mead": "<speaker>/video/front/<emotion>/level_<n>/*.mp4",
                "voxceleb": "<id>/<video>/<n>.mp4", "folder": "<speaker>/*.mp4 (one subfolder per speaker)"}[layout]
        raise VastbenchError(f"{src}: no videos found for layout '{layout}' (expected {hint})")
    seen: dict[str, Path] = {}
    for v in found:
        if v.clip_id in seen:
            raise VastbenchError(f"{v.path} and {seen[v.clip_id]} both map to clip id '{v.clip_id}'; rename one")
        seen[v.clip_id] = v.path
    return found


def _hdtf(src: Path) -> list[SourceVideo]:
    out = []
    for p in _videos(src):
        stem = p.stem
        m = re.match(r"^(.*?)(?:_\d+)?$", stem)
        ident = _clean(m.group(1) if m and m.group(1) else stem)
        out.append(SourceVideo(p, _clean(stem), ident, UNLABELED))
    return out


def _mead(src: Path) -> list[SourceVideo]:
    out = []
    for p in _videos(src):
        parts = p.relative_to(src).parts
        # <speaker>/video/front/<emotion>/level_<n>/<NNN>.mp4
        try:
            i = parts.index("video")
        except ValueError:
            continue
        if len(parts) < i + 5 or parts[i + 1] != "front":
            continue
        speaker, emotion, level = parts[i - 1] if i > 0 else src.name, parts[i + 2], parts[i + 3]
        m = re.match(r"level_?(\d+)$", level)
        intensity = int(m.group(1)) if m else None
        style = f"{_clean(emotion)}_{intensity}" if intensity is not None else _clean(emotion)
        base = Path(*parts[:i]) if i > 0 else Path()
        audio = src / base / "audio" / emotion / level / (p.stem + ".m4a")
        out.append(SourceVideo(p, _clean(f"{speaker}_{style}_{p.stem}"), _clean(speaker), style,
                               audio_path=audio if audio.exists() else None,
                               meta={"emotion": emotion, "intensity": intensity, "view": "front"}))
    return out


def _voxceleb(src: Path) -> list[SourceVideo]:
    out = []
    for p in _videos(src):
        parts = p.relative_to(src).parts
        official = None
        for k, part in enumerate(parts[:-1]):
            if part in ("dev", "test"):
                official = "test" if part == "test" else "train"
        ids = [k for k, part in enumerate(parts[:-1]) if re.match(r"^id\d+$", part)]
        if ids:
            k = ids[-1]
            speaker, rest = parts[k], parts[k + 1:]
        elif len(parts) >= 2:
            speaker, rest = parts[0], parts[1:]
        else:
            continue
        stem = "_".join([*rest[:-1], Path(rest[-1]).stem])
        out.append(SourceVideo(p, _clean(f"{speaker}_{stem}"), _clean(speaker), UNLABELED, official_split=official))
    return out


def _folder(src: Path) -> list[SourceVideo]:
    out = []
    loose = [p for p in src.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS]
    if loose and not any(p.is_dir() for p in src.iterdir()):
        raise VastbenchError(f"{src}: videos lie directly in the folder; the 'folder' layout needs one subfolder "
                             "per speaker (move them into <speaker>/ folders)")
    for p in _videos(src):
        parts = p.relative_to(src).parts
        if len(parts) < 2:
            continue  # loose files next to speaker folders: no speaker to give them
        speaker = parts[0]
        style = _clean(parts[1]) if len(parts) >= 3 else UNLABELED
        stem = "_".join([*parts[1:-1], p.stem])
        out.append(SourceVideo(p, _clean(f"{speaker}_{stem}"), _clean(speaker), style))
    return out


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def assign_splits(videos: list[SourceVideo], test_speakers: list[str] | None = None,
                  test_fraction: float = 0.2, val_fraction: float = 0.1) -> dict:
    """Set ``video.split`` for every video; returns a summary (test speakers, speaker-disjoint or not)."""
    speakers = sorted({v.identity for v in videos})
    official = {v.identity for v in videos if v.official_split == "test"}
    if test_speakers:
        unknown = sorted(set(test_speakers) - set(speakers))
        if unknown:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"--test-speakers: no speaker '{unknown[0]}'{did_you_mean(unknown[0], speakers)}")
        held = set(test_speakers)
    elif official:
        held = official
    elif len(speakers) >= 2:
        n = max(1, int(round(test_fraction * len(speakers))))
        held = set(sorted(speakers, key=lambda s: (_h("speaker:" + s), s))[:n])
    else:
        held = set()
    disjoint = bool(held) and len(held) < len(speakers)
    if not held or not disjoint:
        if held and not disjoint:
            raise VastbenchError("every speaker is held out for test; leave some for training")
    for v in videos:
        r = (_h("clip:" + v.clip_id) % 1000) / 1000.0
        if v.identity in held:
            v.split = "test"
        elif not held and r < test_fraction:
            v.split = "test"      # one speaker only: clip-level test split (not speaker-disjoint)
        elif r >= 1.0 - val_fraction:
            v.split = "val"
        else:
            v.split = "train"
    return {"test_speakers": sorted(held), "speaker_disjoint_test": disjoint,
            "speakers": len(speakers)}
