"""From speech to face motion: visemes with coarticulation, styled expressions, head pose.

Pipeline for one clip (all at 100 Hz, then sampled at the 25 fps frame centres):

1. every phone gets a viseme target (jaw open, lip round, lip stretch, lip press);
2. coarticulation: targets are blended by a zero-phase Gaussian kernel whose width
   is the style's ``tempo`` (smooth, and anticipatory because the kernel looks
   ahead), and the whole mouth track leads the sound by ``ANTICIPATION_S`` as real
   articulation does; bilabial closures use a narrower kernel so /p b m/ still
   close the lips;
3. the style scales and biases mouth channels, drives the brows from vocal
   emphasis (the audio's energy peaks), places blinks as a Poisson process, adds
   head motion (smooth noise at the style's rhythm plus nods on emphasis).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vastbench.data.synthtalk.styles import Style

RATE = 100  # Hz, the internal animation rate (= PPG rate)
FPS = 25
ANTICIPATION_S = 0.02

# Viseme targets per phone: (jaw_open, lip_round, lip_stretch, lip_press).
VISEMES: dict[str, tuple[float, float, float, float]] = {
    "SIL": (0.0, 0.0, 0.0, 0.15),
    "AA": (0.85, 0.0, 0.1, 0.0), "AE": (0.7, 0.0, 0.35, 0.0), "AH": (0.55, 0.0, 0.1, 0.0),
    "AO": (0.7, 0.45, 0.0, 0.0), "AW": (0.7, 0.4, 0.0, 0.0), "AY": (0.75, 0.0, 0.2, 0.0),
    "EH": (0.55, 0.0, 0.3, 0.0), "ER": (0.35, 0.35, 0.0, 0.0), "EY": (0.45, 0.0, 0.4, 0.0),
    "IH": (0.35, 0.0, 0.4, 0.0), "IY": (0.25, 0.0, 0.6, 0.0), "OW": (0.5, 0.7, 0.0, 0.0),
    "OY": (0.55, 0.55, 0.0, 0.0), "UH": (0.35, 0.6, 0.0, 0.0), "UW": (0.25, 0.9, 0.0, 0.0),
    "B": (0.0, 0.0, 0.0, 1.0), "P": (0.0, 0.0, 0.0, 1.0), "M": (0.0, 0.0, 0.0, 1.0),
    "F": (0.1, 0.0, 0.1, 0.6), "V": (0.1, 0.0, 0.1, 0.6),
    "TH": (0.2, 0.0, 0.1, 0.0), "DH": (0.2, 0.0, 0.1, 0.0),
    "S": (0.12, 0.0, 0.35, 0.0), "Z": (0.12, 0.0, 0.35, 0.0),
    "SH": (0.18, 0.6, 0.0, 0.0), "ZH": (0.18, 0.6, 0.0, 0.0), "CH": (0.18, 0.6, 0.0, 0.0), "JH": (0.18, 0.6, 0.0, 0.0),
    "T": (0.2, 0.0, 0.15, 0.0), "D": (0.2, 0.0, 0.15, 0.0), "N": (0.2, 0.0, 0.15, 0.0),
    "L": (0.3, 0.0, 0.1, 0.0), "R": (0.25, 0.5, 0.0, 0.0), "W": (0.15, 0.95, 0.0, 0.0), "Y": (0.2, 0.0, 0.4, 0.0),
    "K": (0.3, 0.0, 0.1, 0.0), "G": (0.3, 0.0, 0.1, 0.0), "NG": (0.3, 0.0, 0.1, 0.0), "HH": (0.4, 0.0, 0.0, 0.0),
}


def viseme_of(phone: str) -> tuple[float, float, float, float]:
    key = phone.upper()
    return VISEMES.get(key, VISEMES["AH"] if key and key[0] in "AEIOU" else VISEMES["T"])


def viseme_track(phones: list[tuple[str, float, float]], n: int, tempo: float) -> np.ndarray:
    """(n, 4) coarticulated viseme channels at 100 Hz from (phone, start_s, end_s)."""
    target = np.zeros((n, 4), np.float64)
    target[:] = VISEMES["SIL"]
    for phone, start, end in phones:
        a, b = int(round(start * RATE)), max(int(round(end * RATE)), int(round(start * RATE)) + 1)
        target[a:min(b, n)] = viseme_of(phone)
    sigma = max(tempo * RATE, 0.5)
    out = np.empty_like(target)
    for c in range(3):
        out[:, c] = gaussian_filter1d(target[:, c], sigma, mode="nearest")
    out[:, 3] = gaussian_filter1d(target[:, 3], max(sigma * 0.5, 0.5), mode="nearest")
    lead = int(round(ANTICIPATION_S * RATE))
    if lead:
        out = np.concatenate([out[lead:], np.repeat(out[-1:], lead, axis=0)])
    return out


def emphasis_track(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Vocal emphasis in [0, 1] at 100 Hz: peaks of the smoothed log energy above its median."""
    hop = sr // RATE
    pad = np.zeros(n * hop, np.float64)
    pad[: min(len(audio), len(pad))] = audio[: len(pad)]
    energy = np.log(np.mean(pad.reshape(n, hop) ** 2, axis=1) + 1e-8)
    energy = gaussian_filter1d(energy, 8)
    voiced = energy > np.median(energy)
    z = (energy - np.median(energy)) / (np.std(energy) + 1e-6)
    return np.clip(z - 0.5, 0, 1.5) / 1.5 * voiced


def blink_track(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Blinks as a Poisson process; each blink closes the lids for ~150 ms."""
    out = np.zeros(n)
    t = rng.exponential(1 / max(rate_hz, 1e-3)) * RATE
    shape = np.sin(np.linspace(0, np.pi, 15)) ** 2
    while t < n:
        i = int(t)
        seg = out[i:i + len(shape)]
        out[i:i + len(shape)] = np.maximum(seg, shape[: len(seg)])
        t += (0.2 + rng.exponential(1 / max(rate_hz, 1e-3))) * RATE
    return out


def smooth_noise(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise whose dominant rhythm is ~``rate_hz``."""
    white = rng.standard_normal(n + 400)
    sig = gaussian_filter1d(white, RATE / (2 * np.pi * max(rate_hz, 0.05)))[200:200 + n]
    return sig / (sig.std() + 1e-8)


def animate(phones: list[tuple[str, float, float]], audio: np.ndarray, sr: int, style: Style,
            rng: np.random.Generator, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Expression (n_frames, E) and pose (n_frames, 6) at 25 fps for one utterance."""
    from vastbench.data.synthtalk.face import EXPRESSION_NAMES

    n = n_frames * (RATE // FPS)
    vis = viseme_track(phones, n, style.tempo)
    emph = emphasis_track(audio, sr, n)
    idx = {name: i for i, name in enumerate(EXPRESSION_NAMES)}
    ex = np.zeros((n, len(EXPRESSION_NAMES)))
    ex[:, idx["jaw_open"]] = style.mouth_amp * vis[:, 0]
    ex[:, idx["lip_round"]] = style.round_gain * vis[:, 1]
    ex[:, idx["lip_stretch"]] = vis[:, 2]
    ex[:, idx["lip_press"]] = style.press_gain * vis[:, 3]
    smile = style.smile * (1 + 0.3 * smooth_noise(rng, n, 0.15))
    left, right = np.clip(1 + style.asym, 0, 1.5), np.clip(1 - style.asym, 0, 1.5)
    ex[:, idx["smile_left"]] = smile * left
    ex[:, idx["smile_right"]] = smile * right
    ex[:, idx["cheek"]] = style.cheek * np.clip(smile, 0, None) * 1.5
    ex[:, idx["brow_raise"]] = style.brow_gain * emph
    ex[:, idx["brow_frown"]] = style.frown * (1 + 0.2 * smooth_noise(rng, n, 0.2))
    blinks = blink_track(rng, n, style.blink_rate)
    ex[:, idx["blink_left"]] = blinks
    ex[:, idx["blink_right"]] = blinks
    pose = np.zeros((n, 6))
    pose[:, 0] = style.head_amp * 0.7 * smooth_noise(rng, n, style.head_rate) + style.nod * emph  # pitch
    pose[:, 1] = style.head_amp * smooth_noise(rng, n, style.head_rate * 0.8)                     # yaw
    pose[:, 2] = style.head_amp * 0.5 * smooth_noise(rng, n, style.head_rate * 0.6)               # roll
    pose[:, 3] = style.head_amp * 0.3 * smooth_noise(rng, n, style.head_rate * 0.5)               # tx
    pose[:, 4] = style.head_amp * 0.2 * smooth_noise(rng, n, style.head_rate * 0.5)               # ty
    # Sample the 100 Hz tracks at the video frame centres.
    centres = ((np.arange(n_frames) + 0.5) * (RATE / FPS)).astype(int).clip(0, n - 1)
    return ex[centres].astype(np.float32), pose[centres].astype(np.float32)
