"""Wav2Lip's audio input: a normalized log-mel spectrogram cut into 0.2 s windows.

Wav2Lip (``audio.py`` / ``hparams.py`` of the official repository) feeds its
networks an 80-band mel spectrogram of the pre-emphasized 16 kHz waveform:
magnitude STFT, mel filters from 55 to 7600 Hz, ``20 log10(max(1e-5, x)) - 20``
dB, clipped and mapped from [-100, 0] dB to [-4, 4].  Every network input is a
window of 0.2 s: five video frames.

We keep the recipe and change the hop so that the spectrogram lines up with the
rest of vastbench: a 10 ms hop (4 mel frames per 25 fps video frame, as
:mod:`vastbench.features.mfcc`), a 25 ms Hann window, nfft 512 and HTK mel
filters from ``python_speech_features`` (already a dependency; librosa is not).
A window of five video frames is therefore 20 mel frames.

Alignment: a clip of ``T`` frames owns ``640 T`` samples (zero-padded or
trimmed, as the MFCC alignment rule), so the spectrogram has exactly ``4 T``
frames; mel frame ``4t + k`` belongs to video frame ``t``.  Windows that reach
past either end see silence (the normalized floor, -4).

- the generator's window for frame ``t`` covers frames ``t-2 .. t+2`` (Wav2Lip's
  ``crop_audio_window(spec, t - 2)``);
- the sync expert's window for the 5-frame video window starting at ``t``
  covers frames ``t .. t+4``.
"""

from __future__ import annotations

import numpy as np

from vastbench.errors import VastbenchError

SR = 16_000
HOP = 160                 # 10 ms: 4 mel frames per video frame
WIN = 400                 # 25 ms
NFFT = 512
PER_FRAME = 4             # mel frames per 25 fps video frame
WINDOW_FRAMES = 5         # video frames in one audio window (0.2 s)
MEL_STEPS = PER_FRAME * WINDOW_FRAMES   # 20 mel frames in one window
FMIN, FMAX = 55.0, 7600.0
PREEMPH = 0.97
REF_LEVEL_DB, MIN_LEVEL_DB, MAX_ABS = 20.0, -100.0, 4.0
SILENCE = -MAX_ABS        # the normalized value of digital silence
PAD = 2 * PER_FRAME       # mel frames of silence on each side, so every window is inside the padded array

_FB: dict[int, np.ndarray] = {}


def _filterbank(n_mels: int) -> np.ndarray:
    if n_mels not in _FB:
        from python_speech_features.base import get_filterbanks

        _FB[n_mels] = get_filterbanks(n_mels, NFFT, SR, FMIN, FMAX).astype(np.float32)   # (n_mels, 257)
    return _FB[n_mels]


def log_mel(audio: np.ndarray, n_frames: int, n_mels: int = 80, sample_rate: int = SR) -> np.ndarray:
    """(4 * n_frames, n_mels) float32 normalized log-mel of mono float audio aligned to ``n_frames`` video frames."""
    if sample_rate != SR:
        raise VastbenchError(f"the wav2lip_style audio front end needs 16 kHz audio, got {sample_rate} Hz; "
                             f"read it with vastbench.media.read_wav (it resamples)")
    if n_frames < 1:
        raise VastbenchError(f"need at least one video frame, got {n_frames}")
    x = np.zeros(PER_FRAME * HOP * n_frames + WIN - HOP, np.float32)
    a = np.asarray(audio, np.float32).reshape(-1)[: PER_FRAME * HOP * n_frames]
    x[: len(a)] = a
    x = np.append(x[0], x[1:] - PREEMPH * x[:-1])
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][: PER_FRAME * n_frames]   # (4T, 400)
    mag = np.abs(np.fft.rfft(frames * np.hanning(WIN).astype(np.float32), NFFT))             # (4T, 257)
    db = 20.0 * np.log10(np.maximum(1e-5, mag @ _filterbank(n_mels).T)) - REF_LEVEL_DB
    norm = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.clip(norm, -MAX_ABS, MAX_ABS).astype(np.float32)


def pad_mel(mel: np.ndarray) -> np.ndarray:
    """Silence (``PAD`` mel frames) on both ends, so that every window below is an in-bounds slice."""
    return np.pad(mel, ((PAD, PAD), (0, 0)), constant_values=SILENCE)


def frame_window_starts(frames: np.ndarray) -> np.ndarray:
    """Start rows in the *padded* mel of the generator's windows for video frames ``frames`` (t-2 .. t+2)."""
    return PER_FRAME * (np.asarray(frames) - 2) + PAD


def sync_window_starts(starts: np.ndarray) -> np.ndarray:
    """Start rows in the *padded* mel of the expert's windows for 5-frame video windows starting at ``starts``."""
    return PER_FRAME * np.asarray(starts) + PAD


def windows(padded: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(N, n_mels, MEL_STEPS) windows of a padded mel (channels = mel bands, time last, as Wav2Lip)."""
    idx = np.asarray(starts)[:, None] + np.arange(MEL_STEPS)[None]
    return np.ascontiguousarray(padded[idx].transpose(0, 2, 1))


def frame_windows(audio: np.ndarray, n_frames: int, n_mels: int = 80) -> np.ndarray:
    """(n_frames, n_mels, 20): the generator's audio input for every output frame of a clip."""
    return windows(pad_mel(log_mel(audio, n_frames, n_mels)), frame_window_starts(np.arange(n_frames)))
