"""Phonetic posteriorgrams (PPG): per-10-ms phone posteriors that drive VAST.

The built-in recognizer is a small time-delay network (dilated 1-D convolutions)
on utterance-normalized log-mel features.  It is trained on SynthTalk phone
alignments from the speakers of the train split, frozen, and shipped as the asset
``ppg-synthtalk`` with its sha256, so VAST's inputs never change between runs.
``vastbench assets train ppg`` reproduces it; ``vastbench assets eval ppg``
reports its frame accuracy on speakers it never saw.

Frames: 25 ms windows at a 10 ms hop, aligned to video exactly like the SyncNet
MFCC (:mod:`vastbench.features.mfcc`): a clip of ``T`` video frames gives ``4T``
PPG frames, frame ``i`` centred at ``i * 10 ms + 12.5 ms``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vastbench.errors import VastbenchError
from vastbench.features import mfcc as _mfcc

log = logging.getLogger(__name__)

SR = 16_000
N_MELS = 40
ASSET = "ppg-synthtalk"
EXTRACTOR_ID = "ppg-synthtalk"


# ----------------------------------------------------------------------------- features
_MEL: np.ndarray | None = None


def log_mel(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(4 * n_frames, 40) utterance-normalized log-mel features, aligned like the MFCC."""
    global _MEL
    if _MEL is None:
        from python_speech_features.base import get_filterbanks

        _MEL = get_filterbanks(N_MELS, _mfcc.NFFT, SR, 0, SR / 2)  # (40, 257)
    x = np.asarray(audio, np.float64)
    x = np.concatenate([_mfcc.fit_to_frames(x, n_frames), np.zeros(_mfcc.WIN - _mfcc.HOP)])
    frames = np.lib.stride_tricks.sliding_window_view(x, _mfcc.WIN)[:: _mfcc.HOP][: 4 * n_frames]
    spec = np.abs(np.fft.rfft(frames * np.hanning(_mfcc.WIN), _mfcc.NFFT)) ** 2
    feat = np.log(spec @ _MEL.T + 1e-8)
    # Utterance mean/variance normalization removes most of the speaker and channel.
    feat = (feat - feat.mean(axis=0)) / (feat.std(axis=0) + 1e-5)
    return feat.astype(np.float32)


def frame_targets(phones: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_frames: int) -> np.ndarray:
    """Phone index per PPG frame (by the frame centre), silence outside any phone."""
    from vastbench.features.phones import PHONES

    index = {p: i for i, p in enumerate(PHONES)}
    centres = np.arange(4 * n_frames) * 0.01 + 0.0125
    out = np.zeros(4 * n_frames, np.int64)
    pos = np.searchsorted(np.asarray(ends), centres, side="right")
    for i, (c, j) in enumerate(zip(centres, pos)):
        if j < len(phones) and starts[j] <= c:
            out[i] = index.get(str(phones[j]), 0)
    return out


# ----------------------------------------------------------------------------- network
@dataclass
class PPGConfig:
    n_mels: int = N_MELS
    n_phones: int = 40
    hidden: int = 160
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dropout: float = 0.1


def build_model(cfg: PPGConfig):
    import torch.nn as nn

    layers: list[Any] = [nn.Conv1d(cfg.n_mels, cfg.hidden, 5, padding=2), nn.ReLU(), nn.BatchNorm1d(cfg.hidden)]
    for d in cfg.dilations:
        layers += [nn.Conv1d(cfg.hidden, cfg.hidden, 3, padding=d, dilation=d), nn.ReLU(),
                   nn.BatchNorm1d(cfg.hidden), nn.Dropout(cfg.dropout)]
    layers.append(nn.Conv1d(cfg.hidden, cfg.n_phones, 1))
    return nn.Sequential(*layers)  # (B, n_mels, N) -> (B, n_phones, N) logits


class PPGRecognizer:
    """The frozen recognizer: ``posteriors(audio, n_frames) -> (4T, P)``."""

    def __init__(self, model, cfg: PPGConfig, sha256: str | None = None):
        self.model = model.eval()
        self.cfg = cfg
        self.sha256 = sha256

    @classmethod
    def load(cls, path: str | Path | None = None) -> "PPGRecognizer":
        import torch

        from vastbench.assets import asset_path
        from vastbench.rundir import sha256_file

        path = Path(path) if path is not None else asset_path(ASSET)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = PPGConfig(**{k: tuple(v) if k == "dilations" else v for k, v in blob["config"].items()})
        model = build_model(cfg)
        model.load_state_dict(blob["state_dict"])
        return cls(model, cfg, sha256_file(path))

    def posteriors(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        import torch

        from vastbench.torchutil import torch_threads

        feat = torch.from_numpy(log_mel(audio, n_frames).T[None])  # (1, 40, 4T)
        # One thread whatever the process uses, so a dataset's features do not depend on the thread
        # count of the process that first extracted them (the network is small: a few ms per clip).
        with torch.no_grad(), torch_threads(1):
            logits = self.model(feat)[0].T                           # (4T, P)
        return torch.softmax(logits, dim=-1).numpy().astype(np.float32)

    def extract(self, audio: np.ndarray, n_frames: int, cache=None) -> np.ndarray:
        """Posteriors through the content-addressed feature cache."""
        from vastbench.features.cache import FeatureCache

        cache = cache or FeatureCache()
        version = (self.sha256 or "unversioned")[:12]
        fitted = _mfcc.fit_to_frames(np.asarray(audio, np.float32), n_frames)
        return cache.get_or_compute(EXTRACTOR_ID, version, fitted, SR, lambda: self.posteriors(fitted, n_frames))


# ----------------------------------------------------------------------------- training
def load_utterances(manifest, splits: tuple[str, ...], identities: set[str] | None = None) -> list[dict]:
    """log-mel features and frame targets of the SynthTalk clips in ``splits``."""
    from vastbench import media

    out = []
    for clip in manifest.clips:
        if clip.split not in splits or (identities is not None and clip.identity not in identities):
            continue
        z = np.load(clip.path("features"))
        if "phones" not in z:
            raise VastbenchError(f"{clip.path('features')}: no phone alignment; the PPG recognizer trains on SynthTalk clips")
        audio, _ = media.read_wav(clip.path("audio"))
        out.append({"x": log_mel(audio, clip.n_frames),
                    "y": frame_targets(z["phones"], z["phone_start"], z["phone_end"], clip.n_frames),
                    "identity": clip.identity})
    if not out:
        raise VastbenchError(f"no clips in splits {splits} to train or evaluate the PPG recognizer")
    return out


def train_recognizer(manifest, out_path: Path, steps: int = 1000, seed: int = 0, batch: int = 16,
                     window: int = 200, progress=None) -> dict:
    """Train on the train split's speakers; returns the training record (accuracy, sha256)."""
    import torch
    import torch.nn.functional as F

    from vastbench.features.phones import PHONES
    from vastbench.rundir import sha256_file

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = load_utterances(manifest, ("train",))
    cfg = PPGConfig(n_phones=len(PHONES))
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    t0 = time.perf_counter()
    it = range(steps)
    it = progress.track(it, "train PPG recognizer", total=steps) if progress is not None else it
    for _ in it:
        xs, ys = [], []
        for j in rng.integers(0, len(train), batch):
            u = train[j]
            n = u["x"].shape[0]
            s = int(rng.integers(0, max(1, n - window)))
            x, y = u["x"][s:s + window], u["y"][s:s + window]
            pad = window - len(x)
            xs.append(np.pad(x, ((0, pad), (0, 0))))
            ys.append(np.pad(y, (0, pad), constant_values=-100))
        x = torch.from_numpy(np.stack(xs)).transpose(1, 2)   # (B, 40, W)
        y = torch.from_numpy(np.stack(ys))                   # (B, W)
        model.train()
        loss = F.cross_entropy(model(x), y, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(cfg), "state_dict": model.state_dict(), "phones": list(PHONES),
                "recipe": {"steps": steps, "seed": seed, "batch": batch, "window": window}}, out_path)
    return {"path": str(out_path), "sha256": sha256_file(out_path), "seconds": round(time.perf_counter() - t0, 1)}


def evaluate_recognizer(recognizer: PPGRecognizer, manifest, splits=("test_unseen_identity",)) -> dict:
    """Frame accuracy on clips of speakers the recognizer never saw."""
    import torch

    utts = load_utterances(manifest, tuple(splits))
    correct = total = 0
    for u in utts:
        with torch.no_grad():
            pred = recognizer.model(torch.from_numpy(u["x"].T[None]))[0].argmax(0).numpy()
        correct += int((pred == u["y"]).sum())
        total += len(u["y"])
    return {"frame_accuracy": correct / total, "frames": total, "clips": len(utts), "splits": list(splits),
            "speakers": sorted({u["identity"] for u in utts})}
