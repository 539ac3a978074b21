"""A tiny generated dataset for tests and the ``smoke`` suite (seconds to build).

Cartoon faces (an ellipse with eyes and a mouth) whose mouth opening follows the
energy of a synthetic voiced "syllable" signal, so lip sync is real in the
simplest sense.  It exercises the whole pipeline; SynthTalk is the real default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vastbench import media
from vastbench.data.base import Dataset
from vastbench.data.manifest import Clip, Manifest

SR = media.SAMPLE_RATE
FPS = media.FPS
STYLES = {"calm": 0.5, "lively": 1.0}  # mouth amplitude


def syllable_audio(rng: np.random.Generator, duration: float, f0: float) -> np.ndarray:
    """Voiced syllables (harmonic complex with a vowel-like formant tilt) separated by pauses."""
    n = int(duration * SR)
    t = np.arange(n) / SR
    env = np.zeros(n)
    pos = int(0.1 * SR)
    while pos < n - int(0.15 * SR):
        length = int(rng.uniform(0.12, 0.25) * SR)
        end = min(n, pos + length)
        env[pos:end] = np.hanning(end - pos)
        pos = end + int(rng.uniform(0.05, 0.15) * SR)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    voice = sum((0.6 ** k) * np.sin(k * phase) for k in range(1, 8))
    audio = 0.25 * env * voice / np.max(np.abs(voice))
    return audio.astype(np.float32)


def mouth_track(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame mouth opening in [0, 1] from the audio envelope."""
    spf = SR // FPS
    pad = np.zeros(n_frames * spf, np.float32)
    pad[: min(len(audio), len(pad))] = np.abs(audio[: len(pad)])
    env = pad.reshape(n_frames, spf).mean(axis=1)
    return np.clip(env / (env.max() + 1e-8), 0, 1)


def draw_face(size: int, colors: dict, opening: float, sway: float) -> tuple[np.ndarray, np.ndarray]:
    """One frame and its 4 landmarks (mouth left, right, top, bottom)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = colors["bg"]
    cx, cy = size / 2 + sway, size / 2
    face = ((xx - cx) / (0.32 * size)) ** 2 + ((yy - cy) / (0.42 * size)) ** 2 <= 1
    img[face] = colors["skin"]
    for ex in (-0.13, 0.13):
        eye = ((xx - cx - ex * size) ** 2 + (yy - cy + 0.1 * size) ** 2) <= (0.045 * size) ** 2
        img[eye] = (30, 30, 40)
    mw, mh = 0.14 * size, max(0.01, 0.12 * opening) * size
    my = cy + 0.2 * size
    mouth = ((xx - cx) / mw) ** 2 + ((yy - my) / mh) ** 2 <= 1
    img[mouth] = (90, 20, 30)
    lm = np.array([[cx - mw, my], [cx + mw, my], [cx, my - mh], [cx, my + mh]], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), lm


class FixtureDataset(Dataset):
    name = "fixture"
    profiles = ("tiny",)

    def build(self, progress: Any = None) -> Manifest:
        args = {"identities": 3, "clips_per_pair": 3, "size": 48, "duration": 1.2, **self.cfg.args}
        root = self.root()
        rng = np.random.default_rng(self.cfg.seed)
        clips = []
        for i in range(int(args["identities"])):
            colors = {"bg": rng.uniform(40, 220, 3), "skin": rng.uniform(120, 240, 3)}
            f0 = float(rng.uniform(100, 220))
            for style, amp in STYLES.items():
                for k in range(int(args["clips_per_pair"])):
                    clip_id = f"id{i}_{style}_{k}"
                    split = "test" if k == int(args["clips_per_pair"]) - 1 else "train"
                    clips.append(self._make_clip(root, clip_id, split, f"id{i}", style, amp, colors, f0,
                                                 int(args["size"]), float(args["duration"]),
                                                 np.random.default_rng([self.cfg.seed, i, k, int(amp * 10)])))
        manifest = Manifest(clips)
        manifest.save(self.manifest_path())
        return Manifest.load(self.manifest_path())

    def _make_clip(self, root, clip_id, split, identity, style, amp, colors, f0, size, duration, rng) -> Clip:
        video_p, audio_p, feat_p = (root / d / f"{clip_id}{ext}" for d, ext in
                                    (("video", ".mp4"), ("audio", ".wav"), ("features", ".npz")))
        audio = syllable_audio(rng, duration, f0)
        n = int(round(duration * FPS))
        opening = amp * mouth_track(audio, n)
        sway = 1.5 * amp * np.sin(np.arange(n) / FPS * 2 * np.pi * 0.7)
        frames, lms = zip(*(draw_face(size, colors, o, s) for o, s in zip(opening, sway)))
        if not video_p.exists():
            media.write_wav(audio_p, audio)
            feat_p.parent.mkdir(parents=True, exist_ok=True)
            pose = np.zeros((n, 6), np.float32)
            pose[:, 3] = sway / size
            np.savez(feat_p, expression=opening[:, None].astype(np.float32), pose=pose,
                     landmarks2d=np.stack(lms).astype(np.float32))
            media.write_video(video_p, np.stack(frames), FPS, audio)
        return Clip(clip_id=clip_id, split=split, identity=identity, style=style, source="fixture",
                    paths={"video": f"video/{clip_id}.mp4", "audio": f"audio/{clip_id}.wav",
                           "features": f"features/{clip_id}.npz"},
                    n_frames=n, fps=float(FPS), duration=n / FPS, meta={"f0": f0})
