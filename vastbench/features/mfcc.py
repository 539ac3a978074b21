"""SyncNet's MFCC, exactly as syncnet_python computes it.

syncnet_python calls ``python_speech_features.mfcc(audio, 16000)`` on the int16
samples with the package defaults: 13 coefficients, 25 ms rectangular window,
10 ms step, 26 mel filters, nfft 512, pre-emphasis 0.97, lifter 22, and the log
frame energy in c0.  Official SyncNet weights were trained on exactly that, so we
reproduce it bit for bit (float64) and test against the package itself.

Why not call the package: it is unmaintained since 2017 and frames one signal at
a time; this version reuses its filterbank, is vectorized, and makes the video
alignment rule explicit.

Alignment to video (25 fps): a clip of ``T`` frames owns ``640 * T`` samples.
Audio is zero-padded or trimmed to that length and padded with 240 more zeros, so
the 400-sample windows at a 160-sample step give exactly ``4 * T`` MFCC frames;
MFCC frame ``4t + k`` (k = 0..3) belongs to video frame ``t``.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

from vastbench.errors import VastbenchError

SR = 16_000
WIN = 400        # 25 ms
HOP = 160        # 10 ms
NFFT = 512
NFILT = 26
NCEP = 13
PREEMPH = 0.97
LIFTER = 22
SAMPLES_PER_VIDEO_FRAME = SR // 25
EXTRACTOR_ID = "syncnet-mfcc-psf0.6"
VERSION = "1"


def _filterbank() -> np.ndarray:
    from python_speech_features.base import get_filterbanks

    return get_filterbanks(NFILT, NFFT, SR, 0, SR / 2)  # (26, 257)


_FB: np.ndarray | None = None


def to_int16_scale(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> the int16 sample scale SyncNet saw (as float64)."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float64)
    return np.asarray(audio, np.float64) * 32768.0


def mfcc(audio: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """(N, 13) MFCC of mono audio (int16, or float in [-1, 1]) at 16 kHz."""
    global _FB
    if sample_rate != SR:
        raise VastbenchError(f"SyncNet MFCC needs 16 kHz audio, got {sample_rate} Hz; resample first (vastbench.media.read_wav does)")
    x = to_int16_scale(audio)
    if x.ndim != 1 or x.size == 0:
        raise VastbenchError(f"SyncNet MFCC needs non-empty mono audio, got shape {x.shape}")
    if _FB is None:
        _FB = _filterbank()
    x = np.append(x[0], x[1:] - PREEMPH * x[:-1])
    n = 1 if x.size <= WIN else 1 + int(np.ceil((x.size - WIN) / HOP))
    x = np.concatenate([x, np.zeros((n - 1) * HOP + WIN - x.size)])
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n]       # (N, 400)
    pspec = np.abs(np.fft.rfft(frames, NFFT)) ** 2 / NFFT                      # (N, 257)
    energy = pspec.sum(axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = pspec @ _FB.T
    feat = np.where(feat == 0, np.finfo(float).eps, feat)
    cep = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :NCEP]
    cep *= 1 + (LIFTER / 2.0) * np.sin(np.pi * np.arange(NCEP) / LIFTER)
    cep[:, 0] = np.log(energy)
    return cep


def fit_to_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Zero-pad or trim audio to exactly ``640 * n_frames`` samples (the alignment rule)."""
    n = SAMPLES_PER_VIDEO_FRAME * n_frames
    out = np.zeros(n, dtype=np.asarray(audio).dtype)
    out[: min(n, len(audio))] = audio[:n]
    return out


def mfcc_for_video(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(4 * n_frames, 13) MFCC aligned to ``n_frames`` video frames at 25 fps."""
    if n_frames <= 0:
        raise VastbenchError(f"need at least one video frame, got {n_frames}")
    x = np.concatenate([fit_to_frames(audio, n_frames), np.zeros(WIN - HOP, dtype=np.asarray(audio).dtype)])
    out = mfcc(x)
    assert out.shape[0] == 4 * n_frames, out.shape
    return out
