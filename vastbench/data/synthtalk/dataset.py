"""SynthTalk: the embedded default dataset (DESIGN.md section 5).

Every clip is real eSpeak NG speech, a procedural 3D face animated from the
phoneme alignment in one of the speaking styles, rendered on the CPU.  Its true
phonemes, expressions, head pose, identity and style are stored beside it, so
SynthTalk is also the ground truth that validates metrics.

Composition (``quick`` and ``full`` differ in frame size and clips per pair):

- 10 identities, 2 held out (``test_unseen_identity``); 10 styles, 2 held out
  (``test_unseen_style``);
- every seen identity x seen style pair has ``clips_per_pair`` clips: the last is
  ``test``, the others ``train``; every fourth pair has one more clip in ``val``;
- held-out identities speak each seen style once; seen identities speak each
  held-out style once.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vastbench import media
from vastbench.data.base import Dataset
from vastbench.data.manifest import Clip, Manifest
from vastbench.data.synthtalk.styles import SEEN_STYLES, STYLES, UNSEEN_STYLES, get_style
from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_json, read_json

log = logging.getLogger(__name__)

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"size": 80, "clips_per_pair": 3},
    "full": {"size": 256, "clips_per_pair": 6},
}
N_IDENTITIES = 10
N_UNSEEN_IDENTITIES = 2
# eSpeak voice variants for the identities' voices (all with the en-us voice).
VARIANTS = ("m1", "f2", "m3", "f4", "m7", "f1", "m2", "f3", "m4", "f5")


@dataclass(frozen=True)
class ClipSpec:
    clip_id: str
    split: str
    identity: int
    style: str
    sentence: str
    seed: int


def speaker_for(identity: int, seed: int):
    from vastbench.data.synthtalk.speech import Speaker

    rng = np.random.default_rng([seed, 7919, identity])
    return Speaker(voice="en-us", variant=VARIANTS[identity % len(VARIANTS)], pitch=int(rng.integers(30, 71)),
                   pitch_range=int(rng.integers(40, 81)), rate=int(rng.integers(150, 186)))


def identity_for(identity: int, seed: int):
    from vastbench.data.synthtalk.face import sample_identity

    return sample_identity(np.random.default_rng([seed, 104729, identity]))


def plan_clips(seed: int, clips_per_pair: int, n_identities: int = N_IDENTITIES) -> list[ClipSpec]:
    """The deterministic list of clips (ids, splits, sentences)."""
    from vastbench.data.synthtalk.sentences import generate_sentences

    if clips_per_pair < 2:
        raise VastbenchError(f"clips_per_pair is {clips_per_pair}; SynthTalk needs at least 2 (train + test)")
    if n_identities < 3:
        raise VastbenchError(f"identities is {n_identities}; SynthTalk needs at least 3 (2 are held out)")
    seen_ids = range(n_identities - N_UNSEEN_IDENTITIES)
    unseen_ids = range(n_identities - N_UNSEEN_IDENTITIES, n_identities)
    raw: list[tuple[str, int, str]] = []
    for i in seen_ids:
        for j, style in enumerate(SEEN_STYLES):
            for k in range(clips_per_pair):
                raw.append(("test" if k == clips_per_pair - 1 else "train", i, style))
            if (i + j) % 4 == 0:
                raw.append(("val", i, style))
        for style in UNSEEN_STYLES:
            raw.append(("test_unseen_style", i, style))
    for i in unseen_ids:
        for style in SEEN_STYLES:
            raw.append(("test_unseen_identity", i, style))
    sentences = generate_sentences(len(raw), seed)
    specs, counters = [], {}
    for n, (split, i, style) in enumerate(raw):
        key = (i, style)
        counters[key] = counters.get(key, 0) + 1
        specs.append(ClipSpec(clip_id=f"id{i:02d}_{style}_{counters[key] - 1:02d}", split=split, identity=i,
                              style=style, sentence=sentences[n], seed=int(seed * 1_000_003 + n)))
    return specs


# ----------------------------------------------------------------------------- one clip
_RENDERERS: dict[tuple[int, int, int], Any] = {}


def _renderer(identity: int, seed: int, size: int):
    from vastbench.data.synthtalk.render import FaceRenderer

    key = (identity, seed, size)
    if key not in _RENDERERS:
        _RENDERERS.clear()  # one identity at a time per worker keeps memory flat
        _RENDERERS[key] = FaceRenderer(identity_for(identity, seed), size)
    return _RENDERERS[key]


def make_clip(root: Path, spec: ClipSpec, size: int, seed: int) -> dict:
    """Synthesize, animate, render and write one clip; returns its manifest row."""
    from vastbench.data.synthtalk.animate import animate
    from vastbench.data.synthtalk.face import EXPRESSION_NAMES
    from vastbench.data.synthtalk.speech import synthesize
    from vastbench.features.phones import espeak_to_phone

    meta_path = root / "meta" / f"{spec.clip_id}.json"
    done = read_json(meta_path)
    if done is not None:
        return done
    speaker = speaker_for(spec.identity, seed)
    speech = synthesize(spec.sentence, speaker)
    spf = media.SAMPLE_RATE // media.FPS
    n_frames = max(1, int(round(len(speech.audio) / spf)))
    audio = np.zeros(n_frames * spf, np.float32)  # exactly 640 samples per frame
    audio[: min(len(audio), len(speech.audio))] = speech.audio[: len(audio)]
    phones = [(espeak_to_phone(p.symbol), p.start, p.end) for p in speech.phones]
    style = get_style(spec.style)
    rng = np.random.default_rng(spec.seed)
    expression, pose = animate(phones, audio, media.SAMPLE_RATE, style, rng, n_frames)
    renderer = _renderer(spec.identity, seed, size)
    frames, landmarks = [], []
    for e, p in zip(expression, pose):
        out = renderer.render(e, p)
        frames.append(out.image)
        landmarks.append(out.landmarks2d)
    ident = identity_for(spec.identity, seed)
    rel = {"video": f"video/{spec.clip_id}.mp4", "audio": f"audio/{spec.clip_id}.wav",
           "features": f"features/{spec.clip_id}.npz"}
    media.write_wav(root / rel["audio"], audio)
    _save_npz(root / rel["features"], expression=expression, pose=pose,
              landmarks2d=np.stack(landmarks).astype(np.float32),
              expression_names=np.array(EXPRESSION_NAMES),
              phone_symbols=np.array([p.symbol for p in speech.phones]),
              phones=np.array([ph for ph, _, _ in phones]),
              phone_start=np.array([p.start for p in speech.phones], np.float32),
              phone_end=np.array([p.end for p in speech.phones], np.float32),
              style_params=style.to_vector(), style_param_names=np.array(style.param_names()),
              identity_params=ident.to_vector())
    media.write_video(root / rel["video"], np.stack(frames), media.FPS, audio)
    row = Clip(clip_id=spec.clip_id, split=spec.split, identity=f"id{spec.identity:02d}", style=spec.style,
               source="synthtalk", paths=rel, n_frames=n_frames, fps=float(media.FPS),
               duration=n_frames / media.FPS,
               meta={"sentence": spec.sentence, "speaker": vars(speaker) if hasattr(speaker, "__dict__") else str(speaker),
                     "size": size}).to_row()
    atomic_write_json(meta_path, row)
    return row


def _save_npz(path: Path, **arrays) -> None:
    from vastbench.media import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _worker(args) -> dict:
    root, spec, size, seed = args
    return make_clip(Path(root), spec, size, seed)


# ----------------------------------------------------------------------------- dataset
class SynthTalkDataset(Dataset):
    name = "synthtalk"
    profiles = tuple(PROFILES)
    version = "1"

    def settings(self) -> dict:
        unknown = set(self.cfg.args) - {"size", "clips_per_pair", "identities", "workers"}
        if unknown:
            raise VastbenchError(f"dataset synthtalk: unknown argument '{sorted(unknown)[0]}'; valid: size, clips_per_pair, identities, workers")
        s = {**PROFILES[self.cfg.profile], "identities": N_IDENTITIES, **self.cfg.args}
        if not isinstance(s["size"], int) or not 32 <= s["size"] <= 1024 or s["size"] % 2:
            raise VastbenchError(f"dataset synthtalk: size {s['size']!r} must be an even number of pixels in 32..1024")
        return s

    def build(self, progress: Any = None) -> Manifest:
        s = self.settings()
        root = self.root()
        root.mkdir(parents=True, exist_ok=True)
        specs = plan_clips(self.cfg.seed, int(s["clips_per_pair"]), int(s["identities"]))
        jobs = [(str(root), spec, int(s["size"]), self.cfg.seed) for spec in specs]
        workers = int(s.get("workers") or min(len(jobs), os.cpu_count() or 1))
        rows: dict[str, dict] = {}
        track = getattr(progress, "track", None)
        if workers > 1:
            ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
            with ctx.Pool(workers) as pool:
                it = pool.imap_unordered(_worker, jobs, chunksize=2)
                it = track(it, "synthesize SynthTalk", total=len(jobs)) if track else it
                for row in it:
                    rows[row["clip_id"]] = row
        else:
            it = map(_worker, jobs)
            it = track(it, "synthesize SynthTalk", total=len(jobs)) if track else it
            for row in it:
                rows[row["clip_id"]] = row
        clips = [Clip(**{k: v for k, v in rows[spec.clip_id].items()}) for spec in specs]
        manifest = Manifest(clips)
        manifest.save(self.manifest_path())
        atomic_write_json(root / "dataset.json", {"name": self.name, "version": self.version, "profile": self.cfg.profile,
                                                  "seed": self.cfg.seed, "settings": s, "n_clips": len(clips),
                                                  "styles": {k: v.to_dict() for k, v in STYLES.items()},
                                                  "unseen_styles": list(UNSEEN_STYLES)})
        return Manifest.load(self.manifest_path())
