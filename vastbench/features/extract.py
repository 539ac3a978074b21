"""Feature extraction over a manifest, through the content-addressed cache.

``clip_features(clip)`` is what models read: the clip's npz arrays (expression,
pose, landmarks, ...) plus ``ppg`` (4T x P) and ``mfcc`` (4T x 13) aligned to its
T video frames.  A PPG stored in the npz (real-data ingestion) wins; otherwise the
frozen recognizer computes it once and the cache keeps it.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from vastbench import media
from vastbench.data.manifest import Clip, Manifest
from vastbench.features import mfcc as M
from vastbench.features.cache import FeatureCache

_RECOGNIZER = None


def recognizer():
    """The frozen PPG recognizer, loaded once per process."""
    global _RECOGNIZER
    if _RECOGNIZER is None:
        import vastbench.features.assets_catalog  # noqa: F401
        from vastbench.features.ppg import PPGRecognizer

        _RECOGNIZER = PPGRecognizer.load()
    return _RECOGNIZER


def audio_features(audio: np.ndarray, n_frames: int, which: Iterable[str] = ("ppg", "mfcc"),
                   cache: FeatureCache | None = None) -> dict[str, np.ndarray]:
    cache = cache or FeatureCache()
    out = {}
    fitted = M.fit_to_frames(np.asarray(audio, np.float32), n_frames)
    if "ppg" in which:
        out["ppg"] = recognizer().extract(fitted, n_frames, cache)
    if "mfcc" in which:
        out["mfcc"] = cache.get_or_compute(M.EXTRACTOR_ID, M.VERSION, fitted, M.SR,
                                           lambda: M.mfcc_for_video(fitted, n_frames).astype(np.float32))
    return out


def clip_features(clip: Clip, which: Iterable[str] = ("ppg",), cache: FeatureCache | None = None) -> dict[str, Any]:
    """The clip's stored arrays plus the requested audio features."""
    z = np.load(clip.path("features"))
    out: dict[str, Any] = {k: z[k] for k in z.files}
    need = [w for w in which if w not in out]
    if need:
        audio, _ = media.read_wav(clip.path("audio"))
        out.update(audio_features(audio, clip.n_frames, need, cache))
    return out


def extract_manifest(manifest: Manifest, which=("ppg", "mfcc"), progress=None) -> dict:
    """Extract (or find cached) features for every clip; returns counts."""
    cache = FeatureCache()
    items = manifest.clips
    it = progress.track(items, "extract features", total=len(items)) if progress is not None else items
    n = 0
    for clip in it:
        clip_features(clip, which, cache)
        n += 1
    return {"clips": n, "features": list(which), "cache": str(cache.root)}
