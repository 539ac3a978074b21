"""The ``wav2lip_style`` system: a Wav2Lip-style lip-sync baseline (DESIGN.md section 7).

    reference video of the target --ping-pong loop--> frames, lower half masked --+
                                                                                  +--> generator --> mp4
    driving audio --log-mel--> one 0.2 s window per output frame -----------------+     (+ driving audio)

It is identity-generic, like Wav2Lip: one generator trained on all train clips
(after its own sync expert), used for every target.  It does not transfer
style: the request's prompt is ignored, which is what makes it a baseline.

Arguments: ``preset`` (``auto``: by the dataset's frame size, 80 px -> quick,
256 px -> full) and ``config`` (overrides of :class:`Wav2LipConfig` fields, e.g.
``{steps: 500, time_budget_s: 0}``).  Training output is cached under the
runner's work dir, keyed by the train clips, the config and the seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vastbench import media
from vastbench.config import stable_hash
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext, Generator, TrainJob

log = logging.getLogger(__name__)

PRESET_BY_SIZE = {80: "quick", 256: "full"}


def train_job(manifest_path: str, clip_ids: list[str], val_ids: list[str], cfg_dict: dict, out_dir: str,
              device: str, seed: int) -> str:
    """Picklable :class:`TrainJob` target: train expert + generator into ``out_dir``, then mark it done."""
    from baselines.wav2lip_style.model import Wav2LipConfig
    from baselines.wav2lip_style.train import train_all

    manifest = Manifest.load(manifest_path)
    path = train_all(Wav2LipConfig.from_dict(cfg_dict), [manifest[c] for c in clip_ids], out_dir,
                     val_clips=[manifest[c] for c in val_ids], device=device, seed=seed, progress=False)
    (Path(out_dir) / "done").write_text("ok\n")
    return str(path)


class Wav2LipStyle(Generator):
    """Masked lower half + reference + audio -> lip-synced frames, trained against a sync expert."""

    name = "wav2lip_style"
    version = "1"
    defaults = {
        "preset": "auto",   # auto (by frame size) | quick | full
        "config": {},       # overrides of Wav2LipConfig fields
    }

    def __init__(self, label: str, ctx: GenContext, **args: Any):
        super().__init__(label, ctx, **args)
        if not isinstance(self.args["config"], dict):
            raise VastbenchError(f"system '{label}': wav2lip_style 'config' must be a mapping of config fields, "
                                 f"got {type(self.args['config']).__name__}")
        self.cfg = self._config()
        self._model = None
        self._paths: dict[str, Path] = {}

    # ---------------------------------------------------------------- configuration
    def _size(self) -> int:
        clips = self.ctx.manifest.clips
        if not clips:
            raise VastbenchError(f"system '{self.label}': the dataset has no clips")
        size = clips[0].meta.get("size")
        if size is None:
            size = media.read_video(clips[0].path("video"), with_audio=False).frames.shape[1]
        return int(size)

    def _config(self):
        from baselines.wav2lip_style.model import make_config

        preset = self.args["preset"]
        size = self._size()
        if preset == "auto":
            preset = PRESET_BY_SIZE.get(size)
            if preset is None:
                raise VastbenchError(f"system '{self.label}': frames of {size} px have no wav2lip_style preset; set "
                                     f"args.preset (quick: 80 px, full: 256 px) and config.size: {size}")
        cfg = make_config(preset, **self.args["config"])
        if cfg.size != size:
            raise VastbenchError(f"system '{self.label}': wav2lip_style preset '{preset}' works at {cfg.size} px but "
                                 f"the dataset's frames are {size} px; use preset: auto or set config.size")
        return cfg

    def _train_clips(self, manifest: Manifest | None = None) -> list:
        clips = self.ctx.manifest.split("train") if manifest is None else list(manifest.clips)
        if not clips:
            raise VastbenchError(f"system '{self.label}': wav2lip_style trains on the train split, which is empty")
        return sorted(clips, key=lambda c: c.clip_id)

    def train_dir(self, work_dir: Path, clips: list) -> Path:
        from baselines.wav2lip_style.model import VERSION

        key = stable_hash({"clips": [c.to_row() for c in clips], "cfg": self.cfg.to_dict(), "seed": self.ctx.seed,
                           "format": VERSION}, 12)
        return Path(work_dir) / f"train-{key}"

    # ---------------------------------------------------------------- training
    def training_jobs(self, work_dir: Path) -> list[TrainJob]:
        m = self.ctx.manifest
        if m.path is None:
            raise VastbenchError("wav2lip_style needs a manifest saved on disk (training workers reload it)")
        clips = self._train_clips()
        out = self.train_dir(work_dir, clips)
        budget = self.cfg.expert_time_budget_s + self.cfg.time_budget_s
        return [TrainJob(key=str(out), label="wav2lip_style expert + generator",
                         target="baselines.wav2lip_style.generator:train_job",
                         kwargs=dict(manifest_path=str(m.path), clip_ids=[c.clip_id for c in clips],
                                     val_ids=[c.clip_id for c in m.split("val")], cfg_dict=self.cfg.to_dict(),
                                     out_dir=str(out), device=self.ctx.device, seed=self.ctx.seed),
                         done=out / "done", cost=budget + 30 if budget > 0 else 3600.0)]

    def prepare(self, train_manifest: Manifest, work_dir: Path) -> None:
        from baselines.wav2lip_style.train import train_all

        clips = self._train_clips(train_manifest)
        out = self.train_dir(work_dir, clips)
        if not (out / "done").exists():
            log.info("%s: training the wav2lip_style sync expert and generator in %s", self.label, out)
            train_all(self.cfg, clips, out, val_clips=self.ctx.manifest.split("val"), device=self.ctx.device,
                      seed=self.ctx.seed)
            (out / "done").write_text("ok\n")
        self._paths = {"generator": out / "generator" / "wav2lip.pt", "expert": out / "expert" / "expert.pt"}
        self._model = None

    def describe(self) -> dict:
        from vastbench.rundir import sha256_file

        weights = {k: sha256_file(p) for k, p in sorted(self._paths.items()) if p.exists()}
        return {"name": self.name, "version": self.version, "args": self.args, "weights": weights,
                "config": self.cfg.to_dict()}

    # ---------------------------------------------------------------- inference
    def model(self):
        if self._model is None:
            from baselines.wav2lip_style.train import load_generator

            if "generator" not in self._paths:
                raise VastbenchError(f"system '{self.label}': prepare() was not run")
            self._model = load_generator(self._paths["generator"], device=self.ctx.device)
        return self._model

    def generate_one(self, request: Request, out_path: Path) -> None:
        from baselines.wav2lip_style.infer import lipsync_frames

        m = self.ctx.manifest
        reference = media.read_video(m[request.reference].path("video"), with_audio=False).frames
        audio, sr = media.read_wav(m[request.driving].path("audio"))
        frames = lipsync_frames(self.model(), reference, audio, sr)
        media.write_video(out_path, frames, media.FPS, audio, sr)
