"""A content-addressed feature cache: key = sha256(audio samples) + extractor id + version.

The same audio always maps to the same file, whoever asks for it and from
whichever clip, so features are computed once and never silently go stale: a
new extractor version is a new key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from vastbench.media import atomic_path
from vastbench.paths import cache_dir


def audio_key(audio: np.ndarray, sample_rate: int) -> str:
    h = hashlib.sha256()
    a = np.ascontiguousarray(audio)
    h.update(f"{a.dtype.str}:{a.shape}:{sample_rate}:".encode())
    h.update(a.tobytes())
    return h.hexdigest()


class FeatureCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "features"

    def path(self, extractor: str, version: str, key: str) -> Path:
        return self.root / f"{extractor}-v{version}" / key[:2] / f"{key}.npy"

    def get_or_compute(self, extractor: str, version: str, audio: np.ndarray, sample_rate: int,
                       fn: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(extractor, version, audio_key(audio, sample_rate))
        if path.exists():
            try:
                return np.load(path)
            except (ValueError, OSError, EOFError):
                path.unlink(missing_ok=True)  # a damaged entry is recomputed, never trusted
        value = np.asarray(fn())
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, value)
        return value
