"""The end-to-end VAST generator: (target identity, driving audio, style prompt) -> mp4.

    style prompt (expressions + pose + its PPG) --\\
                                                   VAST expression model --> expressions + pose (T, 17)
    driving audio -> PPG (4T, 40) ----------------/            |
                                                   mesh rasterizer (the target's geometry)
                                                               |
    target's eroded background + mesh images + PPG --> personalized renderer --> frames (T, H, W, 3)
                                                               |
                                      mp4 (H.264, 25 fps) with the driving audio muxed in, T = round(25 * seconds)

Registered as the ``vast`` system.  Its arguments pick an ablation of the
expression model (``variant``: vast, no_enhancer, no_flow, nar_only, ar_only,
no_style) and of the renderer (``renderer_ppg: false`` drops the PPG fusion).

Training is split into :class:`~vastbench.generators.TrainJob` s the runner can
run in parallel and share between systems: one expression model per variant,
one renderer per (target identity, renderer config).  All expression ablations
of a suite share the same renderers; everything is cached under
``$VASTBENCH_CACHE/systems`` by a hash of its config, data and seed.

Renderers are personalized: the one for identity X trains on X's train and val
clips.  A target with none (an unseen identity) trains on its clips that no
request of the run uses as driving audio or ground truth.

Mesh images come from :func:`~vastbench.vast.conditioning.rasterizer_for`: SynthTalk's
procedural face, or, on a dataset made by ``vastbench data ingest``, the MediaPipe
face mesh its face model reconstructs (:class:`~vastbench.data.ingest.rasterizer.MediaPipeRasterizer`),
for the renderer's training and at inference alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vastbench import media
from vastbench.config import stable_hash
from vastbench.data.manifest import Clip, Manifest
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext, Generator, Output, TrainJob, one_line

log = logging.getLogger(__name__)

VARIANTS = ("vast", "no_enhancer", "no_flow", "nar_only", "ar_only", "no_style")
RENDERER_PRESET_BY_SIZE = {80: "quick", 256: "full"}
SILENCE_RMS = 1e-3        # about -60 dBFS: below it the driving audio holds no speech
SILENCE_CLASS = 0         # the PPG class of silence (features.phones: "sil" = 0)


# ----------------------------------------------------------------------------- training jobs (picklable)
def expression_dir(variant: str, manifest: Manifest, cache_root: Path, preset: str, seed: int,
                   steps: int | None) -> Path:
    """Where the expression model of ``variant`` lives (shared with ``vastbench train ablations``)."""
    from vastbench.vast.expression_eval import variant_dir

    return variant_dir(variant, manifest, cache_root, preset, seed, steps)


def train_expression(variant: str, manifest_path: str, cache_root: str, preset: str, seed: int,
                     steps: int | None, device: str) -> str:
    from vastbench.vast.expression_eval import train_variant

    manifest = Manifest.load(manifest_path)
    return str(train_variant(variant, manifest, Path(cache_root), preset, seed, steps, device, progress=False))


def renderer_clips(identity: str, manifest: Manifest, requests: list[Request]) -> list[Clip]:
    """The target's clips a personalized renderer may train on (never a clip the run scores)."""
    own = [c for c in manifest.clips if c.identity == identity and c.split in ("train", "val")]
    if own:
        return sorted(own, key=lambda c: c.clip_id)
    used = {r.driving for r in requests} | {r.ground_truth for r in requests if r.ground_truth}
    rest = [c for c in manifest.clips if c.identity == identity and c.clip_id not in used]
    if not rest:
        raise VastbenchError(f"identity {identity}: no clips left to train its renderer on (all are test requests); "
                             f"give the dataset train clips of this identity or lower requests.limit")
    return sorted(rest, key=lambda c: c.clip_id)


def renderer_dir(identity: str, clips: list[Clip], cfg_dict: dict, dataset_seed: int, seed: int,
                 steps: int | None, cache_root: Path, face_model: str | None = None) -> Path:
    """``face_model``: the hash of an ingested dataset's face model (its mesh images depend on it)."""
    from vastbench.vast.renderer_train import default_recognizer

    rec, source = default_recognizer()
    extra = {"face_model": face_model} if face_model is not None else {}
    key = stable_hash({"cfg": cfg_dict, "identity": identity, "clips": sorted(c.clip_id for c in clips),
                       "data": stable_hash([c.to_row() for c in clips]), "dataset_seed": dataset_seed,
                       "seed": seed, "steps": steps, "ppg": source, **extra}, 12)
    return Path(cache_root) / f"renderer-{identity}-{key}"


def train_renderer_job(identity: str, clip_ids: list[str], manifest_path: str, cfg_dict: dict, dataset_seed: int,
                       seed: int, steps: int | None, out_dir: str, device: str) -> str:
    from vastbench.vast.conditioning import rasterizer_for
    from vastbench.vast.renderer import RendererConfig
    from vastbench.vast.renderer_train import prepare_identity, train_renderer

    manifest = Manifest.load(manifest_path)
    cfg = RendererConfig.from_dict(cfg_dict)
    data = prepare_identity([manifest[c] for c in clip_ids], rasterizer_for(manifest, identity, cfg.size, dataset_seed))
    path = train_renderer(cfg, data, out_dir, steps=steps, device=device, seed=seed, progress=False)
    (Path(out_dir) / "done").write_text("ok\n")
    return str(path)


# ----------------------------------------------------------------------------- the generator
class VastGenerator(Generator):
    """VAST end to end; ``variant`` / ``renderer_ppg`` select ablations (DESIGN.md section 6)."""

    name = "vast"
    version = "1"
    defaults = {
        "variant": "vast",          # expression model ablation (see VARIANTS)
        "preset": "quick",          # expression model preset: quick | full
        "renderer": "auto",         # renderer preset: auto (by frame size) | quick | full
        "renderer_ppg": True,       # False: the renderer ablation without PPG fusion
        "sample": False,            # True: a seeded sample of the style posterior instead of its mean
        "steps": None,              # expression model steps (None: the preset's)
        "renderer_steps": None,     # renderer steps (None: the preset's)
        "renderer_clips": None,     # at most this many of the target's clips train its renderer (None: all)
        "batch_size": 8,            # requests per batch
    }

    def __init__(self, label: str, ctx: GenContext, **args: Any):
        super().__init__(label, ctx, **args)
        if self.args.get("variant", "vast") not in VARIANTS:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"system '{label}': unknown VAST variant '{self.args['variant']}'"
                                 f"{did_you_mean(self.args['variant'], VARIANTS)}")
        self.batch_size = int(self.args["batch_size"])
        self.cache_root = Path(ctx.cache_dir or ".") / "systems"
        self._model = None
        self._renderers: dict[str, tuple[Any, np.ndarray]] = {}
        self._rasterizers: dict[str, Any] = {}
        self._renderer_paths: dict[str, Path] = {}
        self._expr_path: Path | None = None

    # ---------------------------------------------------------------- configuration
    @property
    def size(self) -> int:
        clips = self.ctx.manifest.clips
        if not clips:
            raise VastbenchError("the VAST generator got an empty dataset")
        size = clips[0].meta.get("size")
        if size is None:
            from vastbench.media import read_video

            size = read_video(clips[0].path("video"), with_audio=False).frames.shape[1]
        return int(size)

    def renderer_config(self):
        from vastbench.vast.renderer import make_config

        preset = self.args["renderer"]
        if preset == "auto":
            preset = RENDERER_PRESET_BY_SIZE.get(self.size)
            if preset is None:
                raise VastbenchError(f"frames of {self.size} px have no renderer preset; set the system's "
                                     f"'renderer' argument to quick or full and the dataset profile to match")
        cfg = make_config(preset, use_ppg=bool(self.args["renderer_ppg"]))
        if cfg.size != self.size:
            raise VastbenchError(f"renderer preset '{preset}' works at {cfg.size} px but the dataset's frames are "
                                 f"{self.size} px; use renderer: auto")
        return cfg

    def identities(self) -> list[str]:
        return sorted({r.identity for r in self.ctx.requests})

    def face_model_hash(self) -> str | None:
        """The hash of the dataset's face model when it was ingested (MediaPipe meshes), else None (SynthTalk)."""
        from vastbench.data.ingest.geometry import FaceModel, dataset_face_model

        path = dataset_face_model(self.ctx.manifest)
        return FaceModel.load(path).hash() if path is not None else None

    def _check_dataset(self) -> None:
        from vastbench.data.ingest.geometry import dataset_face_model

        if dataset_face_model(self.ctx.manifest) is None and not all(
                c.identity.startswith("id") for c in self.ctx.manifest.clips[:1]):
            raise VastbenchError("the VAST generator draws SynthTalk face meshes or, for real video, the MediaPipe "
                                 "meshes of a dataset made by `vastbench data ingest` (face_model.npz beside its "
                                 "manifest); this dataset has neither")

    # ---------------------------------------------------------------- training
    def training_jobs(self, work_dir: Path) -> list[TrainJob]:
        self._check_dataset()
        m, a, root = self.ctx.manifest, self.args, self.cache_root
        if m.path is None:
            raise VastbenchError(f"system '{self.label}' needs a manifest saved on disk (training workers reload it)")
        jobs = [self.expression_job()]
        cfg = self.renderer_config()
        face_model = self.face_model_hash()
        for ident in self.identities():
            clips = renderer_clips(ident, m, self.ctx.requests)
            if a["renderer_clips"] is not None:
                clips = clips[:max(1, int(a["renderer_clips"]))]
            rdir = renderer_dir(ident, clips, cfg.to_dict(), self.ctx.dataset_seed, self.ctx.seed,
                                a["renderer_steps"], root, face_model)
            jobs.append(TrainJob(key=str(rdir), label=f"renderer {ident}{'' if cfg.use_ppg else ' (no PPG)'}",
                                 target="vastbench.vast.generator:train_renderer_job",
                                 kwargs=dict(identity=ident, clip_ids=[c.clip_id for c in clips],
                                             manifest_path=str(m.path), cfg_dict=cfg.to_dict(),
                                             dataset_seed=self.ctx.dataset_seed, seed=self.ctx.seed,
                                             steps=a["renderer_steps"], out_dir=str(rdir), device=self.ctx.device),
                                 done=rdir / "done", cost=cfg.steps * (0.25 if cfg.size <= 80 else 2.0)))
        return jobs

    def expression_job(self) -> TrainJob:
        """The expression model's training job (baselines built on VAST's parts override this)."""
        m, a, root = self.ctx.manifest, self.args, self.cache_root
        edir = expression_dir(a["variant"], m, root, a["preset"], self.ctx.seed, a["steps"])
        return TrainJob(key=str(edir), label=f"VAST expression model ({a['variant']})",
                        target="vastbench.vast.generator:train_expression",
                        kwargs=dict(variant=a["variant"], manifest_path=str(m.path), cache_root=str(root),
                                    preset=a["preset"], seed=self.ctx.seed, steps=a["steps"], device=self.ctx.device),
                        done=edir / "done", cost=150.0, ddp=True)

    def prepare(self, train_manifest: Manifest, work_dir: Path) -> None:
        from vastbench.generators import run_train_job

        for job in self.training_jobs(work_dir):
            if not job.done.exists():
                log.info("%s: training %s inline", self.label, job.label)
                run_train_job(job.target, job.kwargs, job.done)
            if "identity" in job.kwargs:
                self._renderer_paths[job.kwargs["identity"]] = job.done.parent / "renderer.pt"
            else:
                self._expr_path = job.done.parent / "model.pt"

    def describe(self) -> dict:
        weights = {}
        from vastbench.rundir import sha256_file

        if self._expr_path is not None and self._expr_path.exists():
            weights["expression"] = sha256_file(self._expr_path)
        for ident, p in sorted(self._renderer_paths.items()):
            if p.exists():
                weights[f"renderer_{ident}"] = sha256_file(p)
        out = {"name": self.name, "version": self.version, "args": self.args, "weights": weights}
        face_model = self.face_model_hash()
        if face_model is not None:   # an ingested dataset: MediaPipe mesh images from this face model
            out["face_model"] = face_model
        return out

    def config_hash(self) -> str:
        # The args fix the training recipe; weights are reported but do not key the cache (they are
        # products of the args, and the renderers depend on which identities the run requests).
        return stable_hash({"name": self.name, "version": self.version, "args": self.args})

    # ---------------------------------------------------------------- inference
    def model(self):
        if self._model is None:
            from vastbench.vast.checkpoint import load_model

            if self._expr_path is None:
                raise VastbenchError(f"system '{self.label}': prepare() was not run")
            self._model = load_model(self._expr_path, device=self.ctx.device)
        return self._model

    def renderer(self, identity: str):
        if identity not in self._renderers:
            from vastbench.vast.renderer_train import load_renderer

            path = self._renderer_paths.get(identity)
            if path is None:
                raise VastbenchError(f"system '{self.label}': no renderer for identity {identity}; it was not in "
                                     f"the run's requests when the system was prepared")
            self._renderers[identity] = load_renderer(path, device=self.ctx.device)
        return self._renderers[identity]

    def rasterizer(self, identity: str):
        if identity not in self._rasterizers:
            from vastbench.vast.conditioning import rasterizer_for

            self._rasterizers[identity] = rasterizer_for(self.ctx.manifest, identity, self.size, self.ctx.dataset_seed)
        return self._rasterizers[identity]

    def _inputs(self, req: Request) -> dict:
        from vastbench.features.extract import clip_features

        m = self.ctx.manifest
        audio, sr = media.read_wav(m[req.driving].path("audio"))
        prompt = clip_features(m[req.prompt], ("ppg",))
        return self.inputs_from_arrays(audio, sr, np.concatenate([prompt["expression"], prompt["pose"]], axis=1),
                                       prompt["ppg"], what=str(m[req.driving].path("audio")))

    @staticmethod
    def inputs_from_arrays(audio: np.ndarray, sr: int, prompt_X: np.ndarray, prompt_ppg: np.ndarray | None,
                           what: str = "driving audio") -> dict:
        """Driving audio (samples, 16 kHz) + a prompt's expressions and pose (Tp, E + 6) [+ its PPG]."""
        from vastbench.controls.controls import n_frames_for
        from vastbench.features.extract import audio_features

        if sr != media.SAMPLE_RATE:
            raise VastbenchError(f"{what}: {sr} Hz, VAST needs {media.SAMPLE_RATE} Hz audio; resample it")
        if len(audio) < media.SAMPLE_RATE // media.FPS:
            raise VastbenchError(f"{what}: {len(audio)} samples is shorter than one video frame; give longer audio")
        n = n_frames_for(audio, sr)
        ppg = audio_features(audio, n, ("ppg",))["ppg"]
        rms = float(np.sqrt(np.mean(np.square(np.asarray(audio, np.float64))))) if len(audio) else 0.0
        if rms < SILENCE_RMS:
            # Digital silence: the recognizer's posteriors on it are not meaningful, so it is silence by rule,
            # and the model's silence rule gives a listening face (mouth at rest, upper face and head styled).
            log.warning("%s: no speech (RMS %.1e, below %.0e): generating a listening face", what, rms, SILENCE_RMS)
            ppg = np.zeros_like(ppg)
            ppg[:, SILENCE_CLASS] = 1.0
        return {"audio": audio, "sr": sr, "n": n, "ppg": ppg, "prompt": prompt_X, "prompt_ppg": prompt_ppg}

    def generate_from(self, identity: str, inputs: dict, out_path: Path, seed: int = 0) -> Path:
        """One clip from :meth:`inputs_from_arrays` inputs (``vastbench generate``); errors are one line."""
        outs = self.model().generate_batch([inputs["prompt"]], [inputs["ppg"]], seeds=[seed],
                                           sample=bool(self.args["sample"]), prompt_ppgs=[inputs["prompt_ppg"]])
        frames = self.render(identity, outs[0], inputs["ppg"])
        return media.write_video(out_path, frames, media.FPS, inputs["audio"], inputs["sr"])

    def expressions(self, requests: list[Request]) -> tuple[list[np.ndarray], list[dict], list[str | None]]:
        """The expression stage for a batch: [(T, E + 6)], the inputs, and per-request errors."""
        inputs, errors = [], []
        for r in requests:
            try:
                inputs.append(self._inputs(r))
                errors.append(None)
            except Exception as exc:  # one broken clip must not stop the batch
                inputs.append(None)
                errors.append(one_line(exc))
        ok = [i for i, x in enumerate(inputs) if x is not None]
        outs: list[np.ndarray | None] = [None] * len(requests)
        if ok:
            try:
                gen = self.model().generate_batch(
                    [inputs[i]["prompt"] for i in ok], [inputs[i]["ppg"] for i in ok],
                    seeds=[requests[i].seed for i in ok], sample=bool(self.args["sample"]),
                    prompt_ppgs=[inputs[i]["prompt_ppg"] for i in ok])
                for i, g in zip(ok, gen):
                    outs[i] = g
            except VastbenchError:
                # A bad request in the batch: redo one by one so only it fails.
                for i in ok:
                    try:
                        outs[i] = self.model().generate_batch(
                            [inputs[i]["prompt"]], [inputs[i]["ppg"]], seeds=[requests[i].seed],
                            sample=bool(self.args["sample"]), prompt_ppgs=[inputs[i]["prompt_ppg"]])[0]
                    except Exception as exc:
                        errors[i] = one_line(exc)
        return outs, inputs, errors

    def render(self, identity: str, expr_pose: np.ndarray, ppg: np.ndarray) -> np.ndarray:
        """(T, E + 6) expressions + pose of the target -> (T, H, W, 3) uint8 frames."""
        from vastbench.vast.renderer_train import render_sequence

        cfg = self.model().cfg
        rast = self.rasterizer(identity)
        e, p = expr_pose[:, :cfg.expr_dim], expr_pose[:, cfg.expr_dim:]
        mesh = rast.mesh_images(e, p) if hasattr(rast, "mesh_images") else rast.rasterize(e, p).mesh_images
        model, background = self.renderer(identity)
        return render_sequence(model, background, mesh, ppg if model.cfg.use_ppg else None)

    def generate(self, requests: list[Request], out_dir: Path) -> list[Output]:
        outs, inputs, errors = self.expressions(requests)
        results = []
        for req, ep, inp, err in zip(requests, outs, inputs, errors):
            path = Path(out_dir) / f"{req.request_id}.mp4"
            if err is not None:
                results.append(Output(req.request_id, error=err))
                continue
            try:
                frames = self.render(req.identity, ep, inp["ppg"])
                media.write_video(path, frames, media.FPS, inp["audio"], inp["sr"])
                results.append(Output(req.request_id, path))
            except Exception as exc:  # one broken clip must not stop the run
                log.debug("vast generation failed for %s", req.request_id, exc_info=True)
                results.append(Output(req.request_id, error=one_line(exc)))
        return results

    def generate_one(self, request: Request, out_path: Path) -> None:
        out = self.generate([request], Path(out_path).parent)[0]
        if not out.ok:
            raise VastbenchError(out.error)
