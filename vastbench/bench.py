"""Speed of every stage of VAST and of the metrics: frames per second and real-time factor.

``run_bench`` times, on the CPU always and on CUDA when there is one:

* ``features``: PPG (the frozen recognizer) and SyncNet MFCC extraction from speech (CPU code);
* ``expression``: the VAST expression model (``VastModel.generate_batch``), presets quick and full, at the
  configured batch sizes (1 and 8), 4 s utterances;
* ``rasterizer``: the SynthTalk mesh rasterizer (``SynthTalkRasterizer.mesh_images``) at 80 and 256 px;
* ``renderer``: the personalized renderer (``render_sequence``), presets quick (80 px) and full (256 px);
* ``e2e``: one request end to end per frame: expression model -> rasterizer -> renderer -> mp4 encode
  (``vastbench.media.write_video``, audio muxed), at the quick and full sizes;
* ``metrics``: LSE (the batched pipeline and the plain one-window-per-pass loops of syncnet_python, with
  the speed-up at equal values), FID (Inception features and the 2048-d Frechet distance), LPIPS, PSNR,
  SSIM, style similarity and M-LMD through their ``Metric`` classes, and mp4 decoding.

Weights: the expression model and renderer are untrained (seeded); their speed does not depend on the
values.  LSE uses seeded random SyncNet weights in the official layout, for the same reason.  FID,
LPIPS, style_sim and m_lmd use their real weights; where those are missing the row is ``skipped`` with
the reason (LPIPS then also times its untrained substitute ``lpips_star``, which costs the same).

Inputs are SynthTalk-like: utterances animated by SynthTalk's own animation model from a seeded random
phone sequence (expression + pose + PPG + a voiced audio envelope), faces drawn by SynthTalk's renderer,
so the rasterizer, the face capture and the encoder see the content they see in real runs.

Each timing is one warm-up call, then ``repeats`` timed calls; the median wall time gives ``fps`` (and
``rtf = fps / 25``, above 1 is faster than real time), the median process CPU time gives ``cpu_fps``
(frames per CPU-second: on a loaded machine it is closer to what an idle one would do than wall time).
The results are rows of plain dicts (see :func:`row`), with the environment, so two JSON files can be
compared with :func:`compare`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

FORMAT = "vastbench.bench"
VERSION = 1
REALTIME_FPS = 25.0
SECTIONS = ("features", "expression", "rasterizer", "renderer", "e2e", "metrics")
METRIC_ITEMS = ("lse", "fid", "lpips", "psnr", "ssim", "style_sim", "m_lmd", "decode")
DEVICES = ("auto", "cpu", "cuda")
REPO = Path(__file__).resolve().parent.parent
LSE_REFERENCE = REPO / "tests" / "metrics" / "test_lse.py"


# ============================================================================ configuration
@dataclass(frozen=True)
class BenchSizes:
    """How much work each timing does; ``quick`` and ``default`` below."""

    repeats: int
    expr_frames: int            # frames per utterance of the expression model
    prompt_frames: int          # style prompt length
    raster_frames: dict         # size -> frames
    render_frames: dict         # (preset, device) -> frames; device "cpu" / "cuda"
    e2e_frames: dict            # (size, device) -> frames
    lse_frames: int
    fid_frames: int
    lpips_frames: int
    clip_frames: int            # the SynthTalk clip the per-clip metrics score
    clip_size: int
    audio_seconds: float        # speech for the features section
    chunk: int = 32             # render_sequence chunk


SIZES = {
    "default": BenchSizes(repeats=3, expr_frames=100, prompt_frames=75,
                          raster_frames={80: 25, 256: 8},
                          render_frames={("quick", "cpu"): 64, ("full", "cpu"): 16,
                                         ("quick", "cuda"): 256, ("full", "cuda"): 128},
                          e2e_frames={(80, "cpu"): 50, (256, "cpu"): 12, (80, "cuda"): 100, (256, "cuda"): 50},
                          lse_frames=50, fid_frames=16, lpips_frames=16, clip_frames=75, clip_size=80,
                          audio_seconds=30.0),
    "quick": BenchSizes(repeats=1, expr_frames=50, prompt_frames=50,
                        raster_frames={80: 10, 256: 3},
                        render_frames={("quick", "cpu"): 16, ("full", "cpu"): 2,
                                       ("quick", "cuda"): 64, ("full", "cuda"): 32},
                        e2e_frames={(80, "cpu"): 16, (256, "cpu"): 4, (80, "cuda"): 50, (256, "cuda"): 25},
                        lse_frames=20, fid_frames=4, lpips_frames=4, clip_frames=40, clip_size=80,
                        audio_seconds=5.0),
}


@dataclass
class BenchConfig:
    quick: bool = False
    only: tuple[str, ...] = ()           # sections and/or metric names; empty: everything
    device: str = "auto"                 # auto: CPU + CUDA when available; cpu; cuda (CUDA only)
    batch_sizes: tuple[int, ...] = (1, 8)
    presets: tuple[str, ...] = ("quick", "full")
    repeats: int | None = None           # None: the mode's default
    seed: int = 0

    def __post_init__(self):
        if self.device not in DEVICES:
            raise VastbenchError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")
        self.only = tuple(s.strip() for s in self.only if s.strip())
        from vastbench.registry import did_you_mean

        known = SECTIONS + METRIC_ITEMS
        for s in self.only:
            if s not in known:
                raise VastbenchError(f"--only: unknown benchmark '{s}'{did_you_mean(s, known)}; "
                                     f"sections: {', '.join(SECTIONS)}; metrics: {', '.join(METRIC_ITEMS)}")
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise VastbenchError(f"batch sizes {list(self.batch_sizes)}: give positive integers, e.g. 1,8")
        if self.repeats is not None and self.repeats < 1:
            raise VastbenchError(f"--repeats {self.repeats}: give at least 1")

    @property
    def sizes(self) -> BenchSizes:
        s = SIZES["quick" if self.quick else "default"]
        if self.repeats is not None:
            s = BenchSizes(**{**asdict(s), "repeats": self.repeats})
        return s

    def sections(self) -> list[str]:
        if not self.only:
            return list(SECTIONS)
        out = [s for s in SECTIONS if s in self.only]
        if any(m in self.only for m in METRIC_ITEMS) and "metrics" not in out:
            out.append("metrics")
        return out

    def metric_items(self) -> list[str]:
        """The metrics to time: the ones named in ``only``, or all when none is (or 'metrics' is)."""
        named = [m for m in METRIC_ITEMS if m in self.only]
        return list(METRIC_ITEMS) if "metrics" in self.only or not named else named

    def devices(self) -> list[str]:
        import torch

        cuda = torch.cuda.is_available()
        if self.device == "cuda" and not cuda:
            raise VastbenchError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
        if self.device == "cpu":
            return ["cpu"]
        if self.device == "cuda":
            return ["cuda"]
        return ["cpu"] + (["cuda"] if cuda else [])


# ============================================================================ rows and timing
@dataclass
class Timing:
    walls: list[float]
    cpus: list[float]
    out: Any = None

    @property
    def wall(self) -> float:
        return float(statistics.median(self.walls))

    @property
    def cpu(self) -> float:
        return float(statistics.median(self.cpus))


def time_call(fn: Callable[[], Any], repeats: int, device: str = "cpu", warmup: bool = True) -> Timing:
    """One warm-up call (allocator, first dispatch, cuDNN autotune), then ``repeats`` timed calls."""
    sync = _sync(device)
    if warmup:
        fn()
        sync()
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        sync()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return Timing(walls, cpus, out)


def _sync(device: str) -> Callable[[], None]:
    if device == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def row(section: str, name: str, device: str, *, precision: str = "fp32", frames: int | None = None,
        timing: Timing | None = None, batch: int | None = None, size: int | None = None,
        status: str = "ok", reason: str | None = None, note: str | None = None, **extra: Any) -> dict:
    """One result; ``fps``/``rtf``/``cpu_fps`` from ``frames`` per timed call (None where not per-frame)."""
    r: dict[str, Any] = {"id": f"{section}/{name}/{device}/{precision}", "section": section, "name": name,
                         "device": device, "precision": precision, "batch": batch, "size": size, "frames": frames,
                         "status": status, "reason": reason, "note": note,
                         "repeats": None, "wall_s": None, "wall_min_s": None, "cpu_s": None,
                         "fps": None, "rtf": None, "cpu_fps": None, "extra": extra}
    if timing is not None:
        r.update(repeats=len(timing.walls), wall_s=timing.wall, wall_min_s=float(min(timing.walls)),
                 cpu_s=timing.cpu)
        if frames:
            r["fps"] = frames / timing.wall
            r["rtf"] = r["fps"] / REALTIME_FPS
            r["cpu_fps"] = frames / timing.cpu if timing.cpu > 0 else None
    return r


def _autocast(device: str, precision: str):
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precisions(device: str) -> list[str]:
    """fp32 everywhere; bf16 autocast on GPUs (what VAST training uses there)."""
    return ["fp32", "bf16"] if device == "cuda" else ["fp32"]


def guarded(section: str, name: str, device: str, precision: str, fn: Callable[[], list[dict] | dict],
            **info) -> list[dict]:
    """Run one benchmark; missing weights become a ``skipped`` row, any other failure an ``error`` row."""
    try:
        out = fn()
        return out if isinstance(out, list) else [out]
    except VastbenchError as exc:
        return [row(section, name, device, precision=precision, status="skipped", reason=str(exc), **info)]
    except Exception as exc:  # one failing benchmark must not lose the others
        log.debug("benchmark %s/%s on %s failed", section, name, device, exc_info=True)
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        return [row(section, name, device, precision=precision, status="error", reason=msg[:300], **info)]


# ============================================================================ inputs
@dataclass
class Utterance:
    """A SynthTalk-like utterance: expression (T, 11), pose (T, 6), PPG (4T, 40), audio (640 T,)."""

    expression: np.ndarray
    pose: np.ndarray
    ppg: np.ndarray
    audio: np.ndarray

    @property
    def x(self) -> np.ndarray:
        return np.concatenate([self.expression, self.pose], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=64)
def utterance(n_frames: int, seed: int = 0, style: str = "animated") -> Utterance:
    """Seeded random phones -> SynthTalk's animation model, a one-hot-ish PPG and a voiced audio envelope."""
    from vastbench import media
    from vastbench.data.synthtalk.animate import animate
    from vastbench.data.synthtalk.styles import get_style
    from vastbench.features.phones import PHONES

    rng = np.random.default_rng(seed)
    dur = n_frames / media.FPS
    phones, t = [], 0.15
    while t < dur - 0.1:
        d = float(rng.uniform(0.06, 0.14))
        phones.append((PHONES[int(rng.integers(1, len(PHONES)))], t, min(t + d, dur)))
        t += d + (float(rng.uniform(0.1, 0.3)) if rng.random() < 0.08 else 0.0)
    spf = media.SAMPLE_RATE // media.FPS
    ts = np.arange(n_frames * spf) / media.SAMPLE_RATE
    voiced = np.zeros_like(ts)
    for _, a, b in phones:
        voiced[(ts >= a) & (ts < b)] = 1.0
    audio = (0.3 * voiced * np.sin(2 * np.pi * 140 * ts) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.1 * ts)) +
             0.003 * rng.standard_normal(len(ts))).astype(np.float32)
    expression, pose = animate(phones, audio, media.SAMPLE_RATE, get_style(style), rng, n_frames)
    centres = (np.arange(4 * n_frames) + 0.5) / 100.0
    labels = np.zeros(4 * n_frames, np.int64)
    for name, a, b in phones:
        labels[(centres >= a) & (centres < b)] = PHONES.index(name)
    ppg = np.full((4 * n_frames, len(PHONES)), 0.1 / len(PHONES), np.float32)
    ppg[np.arange(len(labels)), labels] += 0.9
    return Utterance(expression.astype(np.float32), pose.astype(np.float32), ppg, audio)


def _face_renderer(size: int, identity: int = 0, seed: int = 0):
    from vastbench.data.synthtalk.dataset import identity_for
    from vastbench.data.synthtalk.render import FaceRenderer

    return FaceRenderer(identity_for(identity, seed), size)


def synthtalk_frames(u: Utterance, size: int, identity: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shaded SynthTalk frames (T, S, S, 3) uint8 of an utterance and their face masks (T, S, S)."""
    fr = _face_renderer(size, identity)
    outs = [fr.render(e, p) for e, p in zip(u.expression, u.pose)]
    return np.stack([o.image for o in outs]), np.stack([o.face_mask for o in outs])


def _background(size: int, u: Utterance) -> np.ndarray:
    """The target's eroded background, as the generator builds it (from a few of its frames)."""
    from vastbench.vast.conditioning import target_background

    n = min(8, len(u.expression))
    short = Utterance(u.expression[:n], u.pose[:n], u.ppg[: 4 * n], u.audio)
    frames, masks = synthtalk_frames(short, size)
    return target_background(frames[0], masks)[0]


# ============================================================================ sections
def speech(seconds: float) -> np.ndarray:
    """``seconds`` of eSpeak speech (SynthTalk's sentences and voice), 16 kHz float32."""
    from vastbench import media
    from vastbench.data.synthtalk.sentences import generate_sentences
    from vastbench.data.synthtalk.speech import Speaker, synthesize

    n = int(seconds * media.SAMPLE_RATE)
    parts, total = [], 0
    for sentence in generate_sentences(64, 0):
        parts.append(synthesize(sentence, Speaker()).audio)
        total += len(parts[-1])
        if total >= n:
            break
    return np.resize(np.concatenate(parts), n).astype(np.float32)


def bench_features(seconds: float, repeats: int) -> list[dict]:
    """PPG posteriors and SyncNet MFCC of ``seconds`` of speech; RTF = seconds of audio per second."""
    from vastbench import media
    from vastbench.features import mfcc
    from vastbench.features.extract import recognizer

    audio = speech(seconds)
    T = len(audio) // (media.SAMPLE_RATE // media.FPS)
    rec = recognizer()
    rows = []
    for name, fn, note in (("ppg", lambda: rec.posteriors(audio, T), f"frozen recognizer {rec.sha256[:12]}"),
                           ("mfcc", lambda: mfcc.mfcc_for_video(audio, T), "SyncNet MFCC 13 x 20 per frame")):
        t = time_call(fn, repeats)
        rows.append(row("features", name, "cpu", frames=T, timing=t,
                        note=f"{seconds:g} s of eSpeak speech (video frames at 25 fps); {note}", audio_s=seconds))
    return rows


def _expression_model(preset: str, device: str, u: Utterance):
    import torch

    from vastbench.vast.config import PRESETS
    from vastbench.vast.model import VastModel

    torch.manual_seed(0)
    model = VastModel(PRESETS[preset]).to(device).eval()
    # Plausible units: outputs then stay in the range the rasterizer draws (untrained weights otherwise).
    model.set_normalizer(u.x.mean(0), u.x.std(0))
    return model


def bench_expression(preset: str, batch: int, device: str, precision: str, sizes: BenchSizes, seed: int = 0) -> dict:
    from vastbench.vast.model import count_parameters

    T, Tp = sizes.expr_frames, sizes.prompt_frames
    drives = [utterance(T, seed + i) for i in range(batch)]
    prompts = [utterance(Tp, seed + 100 + i, style="stern") for i in range(batch)]
    model = _expression_model(preset, device, drives[0])

    def run():
        with _autocast(device, precision):
            return model.generate_batch([p.x for p in prompts], [d.ppg for d in drives],
                                        prompt_ppgs=[p.ppg for p in prompts])

    t = time_call(run, sizes.repeats, device)
    return row("expression", f"{preset} b={batch}", device, precision=precision, frames=batch * T, timing=t,
               batch=batch, note=f"untrained weights, {T}-frame utterances, {Tp}-frame prompts",
               params=count_parameters(model), utterance_frames=T, prompt_frames=Tp,
               **_gpu_memory(device))


def bench_rasterizer(size: int, sizes: BenchSizes, seed: int = 0) -> dict:
    from vastbench.vast.conditioning import SynthTalkRasterizer

    n = sizes.raster_frames[size]
    u = utterance(n, seed)
    rast = SynthTalkRasterizer(0, size)
    t = time_call(lambda: rast.mesh_images(u.expression, u.pose), sizes.repeats)
    return row("rasterizer", f"{size}px", "cpu", frames=n, timing=t, size=size,
               note="SynthTalk mesh images (numpy, CPU only)")


def _renderer_model(preset: str, device: str):
    import torch

    from vastbench.vast.renderer import Renderer, make_config

    cfg = make_config(preset)
    torch.manual_seed(0)
    return Renderer(cfg).to(device).eval()


def bench_renderer(preset: str, device: str, precision: str, frames: int, chunk: int, repeats: int,
                   seed: int = 0) -> dict:
    """Frames through ``render_sequence`` in chunks (condition building included, rasterization not)."""
    from vastbench.vast.renderer import count_parameters
    from vastbench.vast.renderer_train import render_sequence

    model = _renderer_model(preset, device)
    s = model.cfg.size
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    mesh = rng.integers(0, 256, (frames, s, s, 3), dtype=np.uint8)
    ppg = rng.dirichlet(np.ones(model.cfg.ppg_dim), size=4 * frames).astype(np.float32)

    def run():
        with _autocast(device, precision):
            return render_sequence(model, bg, mesh, ppg, chunk=chunk)

    t = time_call(run, repeats, device)
    return row("renderer", f"{preset} {s}px", device, precision=precision, frames=frames, timing=t, size=s,
               batch=min(chunk, frames), note=f"untrained weights, chunks of {chunk} frames",
               params=count_parameters(model), chunk=chunk, **_gpu_memory(device))


def bench_e2e(size: int, device: str, precision: str, sizes: BenchSizes, preset: str | None = None,
              seed: int = 0) -> dict:
    """One request, per frame: expression model -> rasterizer -> renderer -> mp4 (H.264 + AAC)."""
    from vastbench import media
    from vastbench.vast.conditioning import SynthTalkRasterizer
    from vastbench.vast.generator import RENDERER_PRESET_BY_SIZE
    from vastbench.vast.renderer_train import render_sequence

    preset = preset or RENDERER_PRESET_BY_SIZE[size]
    n = sizes.e2e_frames[(size, device)]
    drive, prompt = utterance(n, seed), utterance(sizes.prompt_frames, seed + 100, style="stern")
    expr = _expression_model(preset, device, drive)
    rend = _renderer_model(preset, device)
    rast = SynthTalkRasterizer(0, size)
    bg = _background(size, drive)
    E = expr.cfg.expr_dim
    stages: list[dict[str, float]] = []
    sync = _sync(device)
    with tempfile.TemporaryDirectory(prefix="vastbench-bench-") as tmp:
        out = Path(tmp) / "e2e.mp4"

        def run():
            t0 = time.perf_counter()
            with _autocast(device, precision):
                ep = expr.generate_batch([prompt.x], [drive.ppg], prompt_ppgs=[prompt.ppg])[0]
            sync()
            t1 = time.perf_counter()
            mesh = rast.mesh_images(ep[:, :E], ep[:, E:])
            t2 = time.perf_counter()
            with _autocast(device, precision):
                frames = render_sequence(rend, bg, mesh, drive.ppg, chunk=sizes.chunk)
            t3 = time.perf_counter()
            media.write_video(out, frames, media.FPS, drive.audio, media.SAMPLE_RATE)
            t4 = time.perf_counter()
            stages.append({"expression_s": t1 - t0, "rasterizer_s": t2 - t1, "renderer_s": t3 - t2,
                           "encode_s": t4 - t3})

        t = time_call(run, sizes.repeats, device)
        mp4_bytes = out.stat().st_size
    timed = stages[-len(t.walls):]
    share = {k: float(statistics.median(s[k] for s in timed)) for k in timed[0]}
    return row("e2e", f"{preset} {size}px", device, precision=precision, frames=n, timing=t, size=size, batch=1,
               note="untrained weights; PPG extraction not included (see features)", stage_s=share,
               mp4_bytes=mp4_bytes, **_gpu_memory(device))


def _gpu_memory(device: str) -> dict:
    if device != "cuda":
        return {}
    import torch

    peak = torch.cuda.max_memory_allocated() / 2 ** 20
    torch.cuda.reset_peak_memory_stats()
    return {"gpu_peak_mib": round(peak, 1)}


# ---------------------------------------------------------------------------- metrics
def face_clip(T: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A moving 'face' whose mouth opens over time, its 68 landmarks, and a voiced audio track (LSE timing)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    frames, landmarks = [], []
    for t in range(T):
        cx, cy = size / 2 + 4 * np.sin(t / 5), size / 2 + 3 * np.cos(t / 7)
        f = (60 + 40 * rng.random((size, size, 3)))
        f[((xx - cx) / (0.3 * size)) ** 2 + ((yy - cy) / (0.38 * size)) ** 2 < 1] = [200, 160, 140]
        opening = 1 + 6 * abs(np.sin(t * 0.6))
        f[((xx - cx) / (0.12 * size)) ** 2 + ((yy - cy - 0.16 * size) / opening) ** 2 < 1] = [60, 10, 20]
        frames.append(f.astype(np.uint8))
        ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        landmarks.append(np.stack([cx + 0.28 * size * np.cos(ang), cy + 0.36 * size * np.sin(ang)], 1))
    t = np.arange(640 * T) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * np.abs(np.sin(2 * np.pi * 2.4 * t))).astype(np.float32)
    return np.stack(frames), np.stack(landmarks), audio


def lse_reference():
    """The plain syncnet_python loops of ``tests/metrics/test_lse.py`` (a source checkout's test file)."""
    if not LSE_REFERENCE.is_file():
        raise VastbenchError(f"the plain LSE reference loops live in {LSE_REFERENCE} (a source checkout of "
                             f"vastbench); run the benchmark from a checkout to time them")
    spec = importlib.util.spec_from_file_location("_lse_reference", LSE_REFERENCE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matrix-multiply GFLOP/s with the current threads: the practical arithmetic peak of the CPU."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(time_call(lambda: a @ b, 1, warmup=False).wall for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def bench_lse(frames_per_clip: int, device: str, repeats: int) -> list[dict]:
    """LSE of one clip: the batched library pipeline and, on the CPU, the plain per-window loops at equal values."""
    from vastbench.metrics import lse as L
    from vastbench.metrics import syncnet as S

    with tempfile.TemporaryDirectory() as tmp:
        model = S.load_syncnet(S.save_random_official_layout(Path(tmp) / "random.model", seed=0), device)
    frames, landmarks, audio = face_clip(frames_per_clip)
    tb = time_call(lambda: L.lse_result(frames, audio, landmarks=landmarks, model=model), repeats, device)
    res = tb.out
    gflop = S.lip_tower_flops() * res.n_windows / 1e9      # lip-tower convolutions: ~all of the arithmetic
    note = (f"random SyncNet weights in the official layout (speed does not depend on them), 128 px clip; "
            f"lip tower {gflop / tb.wall:.0f} GFLOP/s")
    rows = [row("metrics", "lse batched", device, frames=frames_per_clip, timing=tb, size=224, note=note,
                windows=res.n_windows, lse_d=res.lse_d, lse_c=res.lse_c, offset=res.offset,
                gflop_per_s=gflop / tb.wall)]
    if device != "cpu":   # the reference loops are CPU code
        return rows

    def plain() -> dict:
        ref = lse_reference()
        tp = time_call(lambda: ref.official_lse(model, ref.official_crops(frames, L.boxes_from_landmarks(landmarks)),
                                                L.int16_samples(audio)), repeats)
        d, c, off = tp.out
        agree = bool(np.allclose([res.lse_d, res.lse_c], [d, c], rtol=1e-4, atol=1e-4) and off == res.offset)
        speedup = tp.wall / tb.wall
        peak = sgemm_gflops()
        return row("metrics", "lse plain loops", "cpu", frames=frames_per_clip, timing=tp, size=224,
                   note=f"syncnet_python's loops, one window per pass, lip tower {gflop / tp.wall:.0f} GFLOP/s; "
                        f"batched is {speedup:.2f}x faster, values agree: {agree}; fp32 matmul peak here "
                        f"{peak:.0f} GFLOP/s, so at most {peak * tp.wall / gflop:.1f}x is possible at equal values",
                   speedup_of_batched=speedup, values_agree=agree, lse_d=d, lse_c=c, offset=off,
                   gflop_per_s=gflop / tp.wall, sgemm_peak_gflop_per_s=peak,
                   speedup_bound=peak * tp.wall / gflop)

    return rows + guarded("metrics", "lse plain loops", "cpu", "fp32", plain, frames=frames_per_clip)


def bench_fid(n_frames: int, device: str, repeats: int, frechet: bool = True, size: int = 256) -> list[dict]:
    from vastbench.metrics import fid as FM

    path, source = FM.inception_weights()   # VastbenchError when missing: a skipped row
    t0 = time.perf_counter()
    model = FM.load_inception(path, source).to(device)
    load_s = time.perf_counter() - t0
    frames = np.random.default_rng(0).integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    tf = time_call(lambda: FM.frame_features(frames, model), repeats, device)
    rows = [row("metrics", "fid inception features", device, frames=n_frames, timing=tf, size=size,
                note=f"{source} weights, {size} px -> 299, load {load_s:.1f} s", weights=source, load_s=load_s)]
    if frechet:
        feats = tf.out
        state, other = FM.new_statistics(), FM.new_statistics()
        FM.accumulate(state, feats)
        FM.accumulate(other, feats[::-1] * 1.01)
        td = time_call(lambda: FM.fid_from_statistics(state, other), repeats)
        rows.append(row("metrics", "fid frechet distance", "cpu", timing=td,
                        note=f"2048-d, {n_frames} samples per set (numpy/scipy); once per set, not per frame",
                        samples=n_frames))
    return rows


def bench_lpips(n_frames: int, device: str, repeats: int, size: int = 256) -> list[dict]:
    from vastbench.metrics import lpips_metric as LM

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)

    def one(trained: bool, name: str, note: str) -> dict:
        model = LM.build_lpips(trained_backbone=trained).to(device)
        t = time_call(lambda: LM.lpips_frames(a, b, model), repeats, device)
        return row("metrics", name, device, frames=n_frames, timing=t, size=size, note=note)

    rows = guarded("metrics", "lpips", device, "fp32",
                   lambda: one(True, "lpips", "AlexNet v0.1 (ImageNet trunk), frame pairs"), size=size)
    if rows[0]["status"] != "ok":
        rows.append(one(False, "lpips_star", "the untrained-trunk substitute LPIPS* (same cost as LPIPS)"))
    return rows


@dataclass
class MetricClips:
    """Three SynthTalk mp4 clips: the ground truth, a 'generated' one (same speech, other motion), a prompt."""

    reference: Path
    generated: Path
    prompt: Path
    audio: Path
    n_frames: int
    size: int
    videos: dict = field(default_factory=dict)


def make_metric_clips(root: Path, n_frames: int, size: int, seed: int = 0) -> MetricClips:
    from vastbench import media

    root.mkdir(parents=True, exist_ok=True)
    ref = utterance(n_frames, seed, style="cheerful")
    # Same speech and style, other blinks and head motion: a plausible generated clip.
    gen = utterance(n_frames, seed, style="cheerful")
    alt = utterance(n_frames, seed + 1, style="cheerful")
    gen = Utterance(gen.expression.copy(), alt.pose, gen.ppg, gen.audio)
    gen.expression[:, 8:10] = alt.expression[:, 8:10]
    prompt = utterance(n_frames, seed + 2, style="stern")
    paths = {}
    for name, u in (("reference", ref), ("generated", gen), ("prompt", prompt)):
        frames, _ = synthtalk_frames(u, size)
        paths[name] = media.write_video(root / f"{name}.mp4", frames, media.FPS, u.audio, media.SAMPLE_RATE)
    audio = media.write_wav(root / "driving.wav", ref.audio)
    return MetricClips(paths["reference"], paths["generated"], paths["prompt"], audio, n_frames, size)


def _sample(clips: MetricClips):
    """A fresh EvalSample (no cached captures) with the videos already decoded (decode is timed apart)."""
    from vastbench import media
    from vastbench.data.requests import Request
    from vastbench.metrics.base import EvalSample

    if not clips.videos:
        clips.videos = {"generated": media.read_video(clips.generated, with_audio=True),
                        "reference": media.read_video(clips.reference, with_audio=False),
                        "prompt": media.read_video(clips.prompt, with_audio=False)}
    req = Request("r0000", "id00", "ref", "drive", "prompt", 0, ground_truth="drive")
    s = EvalSample(req, clips.generated, clips.reference, clips.audio, clips.prompt)
    s.__dict__["generated_video"] = clips.videos["generated"]     # functools.cached_property slots
    s.__dict__["reference_video"] = clips.videos["reference"]
    s.cache["prompt_video"] = clips.videos["prompt"]
    return s


def bench_metric_class(name: str, clips: MetricClips, repeats: int) -> dict:
    """A registered per-clip metric on one SynthTalk clip, through its ``Metric`` class."""
    from vastbench.registry import METRICS

    metric = METRICS.get(name)()
    value = None

    def run():
        nonlocal value
        value = metric(_sample(clips))

    t = time_call(run, repeats)
    what = {"psnr": "numpy", "ssim": "scikit-image", "style_sim": "face capture x2 + style net",
            "m_lmd": "face capture x2"}.get(name, "")
    return row("metrics", name, "cpu", frames=clips.n_frames, timing=t, size=clips.size,
               note=f"{clips.n_frames}-frame SynthTalk clip, decoded beforehand; {what}", value=value)


def bench_decode(clips: MetricClips, repeats: int) -> dict:
    from vastbench import media

    t = time_call(lambda: media.read_video(clips.reference, with_audio=True), repeats)
    return row("metrics", "decode", "cpu", frames=clips.n_frames, timing=t, size=clips.size,
               note="mp4 (H.264 + AAC) -> RGB frames + 16 kHz audio (PyAV)")


def bench_metrics(items: list[str], devices: list[str], sizes: BenchSizes,
                  progress: Callable[[dict], None]) -> list[dict]:
    rows: list[dict] = []

    def add(new: list[dict]) -> None:
        for r in new:
            rows.append(r)
            progress(r)

    r = sizes.repeats
    for device in devices:
        on_cpu = device == "cpu"
        if "lse" in items:
            add(guarded("metrics", "lse batched", device, "fp32",
                        lambda: bench_lse(sizes.lse_frames, device, r)))
        if "fid" in items:
            add(guarded("metrics", "fid inception features", device, "fp32",
                        lambda: bench_fid(sizes.fid_frames, device, r, frechet=on_cpu)))
        if "lpips" in items:
            add(guarded("metrics", "lpips", device, "fp32", lambda: bench_lpips(sizes.lpips_frames, device, r)))
    cpu_only = [m for m in ("decode", "psnr", "ssim", "style_sim", "m_lmd") if m in items]
    if cpu_only:
        with tempfile.TemporaryDirectory(prefix="vastbench-bench-") as tmp:
            clips, failed = None, None
            if "cpu" in devices:
                try:
                    clips = make_metric_clips(Path(tmp), sizes.clip_frames, sizes.clip_size)
                except Exception as exc:  # no clip: every per-clip metric gets the reason, the run goes on
                    failed = " ".join(f"making the SynthTalk test clip failed: {type(exc).__name__}: {exc}".split())
            for name in cpu_only:
                for device in devices:
                    if device != "cpu":
                        add([row("metrics", name, device, status="skipped",
                                 reason="runs on the CPU in vastbench (numpy / scikit-image / CPU face capture)")])
                    elif failed:
                        add([row("metrics", name, "cpu", status="error", reason=failed[:300])])
                    elif name == "decode":
                        add(guarded("metrics", name, "cpu", "fp32", lambda: bench_decode(clips, r)))
                    else:
                        add(guarded("metrics", name, "cpu", "fp32", lambda: bench_metric_class(name, clips, r)))
    return rows


# ============================================================================ the whole run
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(devices: list[str]) -> dict:
    import torch

    from vastbench.rundir import git_state, now_iso, package_versions

    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i.get('internal_api')}:{i.get('num_threads')}" for i in threadpool_info()})
    except ImportError:
        blas = []
    versions = package_versions()
    env = {"time": now_iso(), "host_cpu": cpu_model(), "cores": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
           "blas_threads": blas, "vastbench_threads_env": os.environ.get("VASTBENCH_THREADS"),
           "load_avg_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
           "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "versions": versions, "git": git_state(),
           "devices": devices, "cuda": None}
    if "cuda" in devices:
        env["cuda"] = {"name": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
                       "cuda_version": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                       "bf16_supported": torch.cuda.is_bf16_supported()}
    env["device_names"] = {"cpu": env["host_cpu"], **({"cuda": env["cuda"]["name"]} if env["cuda"] else {})}
    return env


def set_threads(threads: int | None) -> int:
    """torch intra-op threads (None: ``configure_threads``' rule) and the BLAS pools to the same number."""
    import torch

    from vastbench.torchutil import configure_threads

    n = configure_threads() if threads is None else max(1, int(threads))
    torch.set_num_threads(n)
    try:
        import scipy.linalg  # noqa: F401  (threadpoolctl limits only libraries already loaded)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    return torch.get_num_threads()


def run_bench(cfg: BenchConfig, progress: Callable[[dict], None] | None = None) -> dict:
    """Every selected benchmark on every selected device; the rows plus the environment, JSON-ready."""
    progress = progress or (lambda r: None)
    devices = cfg.devices()
    sizes = cfg.sizes
    env = environment(devices)
    rows: list[dict] = []

    def add(new: Iterable[dict]) -> None:
        for r in new:
            rows.append(r)
            progress(r)

    t_start = time.perf_counter()
    sections = cfg.sections()
    if "features" in sections:
        add(guarded("features", "ppg", "cpu", "fp32", lambda: bench_features(sizes.audio_seconds, sizes.repeats)))
        add(row("features", name, "cuda", status="skipped", reason="CPU code in vastbench (one process-wide model)")
            for name in ("ppg", "mfcc") if "cuda" in devices)
    if "expression" in sections:
        for device in devices:
            for precision in precisions(device):
                for preset in cfg.presets:
                    for b in cfg.batch_sizes:
                        add(guarded("expression", f"{preset} b={b}", device, precision,
                                    lambda: bench_expression(preset, int(b), device, precision, sizes, cfg.seed),
                                    batch=int(b)))
    if "rasterizer" in sections:
        for size in sizes.raster_frames:
            add(guarded("rasterizer", f"{size}px", "cpu", "fp32", lambda: bench_rasterizer(size, sizes, cfg.seed),
                        size=size))
    if "renderer" in sections:
        from vastbench.vast.renderer import PRESETS as RENDERER_PRESETS

        for device in devices:
            for precision in precisions(device):
                for preset in cfg.presets:
                    frames = sizes.render_frames[(preset, device)]
                    add(guarded("renderer", f"{preset} {RENDERER_PRESETS[preset].size}px", device, precision,
                                lambda: bench_renderer(preset, device, precision, frames, sizes.chunk,
                                                       sizes.repeats, cfg.seed)))
    if "e2e" in sections:
        from vastbench.vast.renderer import PRESETS as RENDERER_PRESETS

        for device in devices:
            for precision in precisions(device):
                for preset in cfg.presets:
                    size = RENDERER_PRESETS[preset].size
                    add(guarded("e2e", f"{preset} {size}px", device, precision,
                                lambda: bench_e2e(size, device, precision, sizes, preset, cfg.seed), size=size))
    if "metrics" in sections:
        rows += bench_metrics(cfg.metric_items(), devices, sizes, progress)
    env["load_avg_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    settings = {"quick": cfg.quick, "only": list(cfg.only), "device": cfg.device,
                "batch_sizes": [int(b) for b in cfg.batch_sizes], "presets": list(cfg.presets), "seed": cfg.seed,
                **{k: (v if not isinstance(v, dict) else {_key(kk): vv for kk, vv in v.items()})
                   for k, v in asdict(sizes).items()}}
    return {"format": FORMAT, "version": VERSION, "env": env, "settings": settings, "results": rows,
            "total_s": time.perf_counter() - t_start}


def _key(k: Any) -> str:
    return "/".join(str(x) for x in k) if isinstance(k, tuple) else str(k)


# ============================================================================ comparing two runs
def load_result(path: str | Path) -> dict:
    import json

    path = Path(path)
    if not path.is_file():
        raise VastbenchError(f"{path}: no such file; write one with `vastbench bench --json {path}`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VastbenchError(f"{path}: not JSON ({exc}); give a file written by `vastbench bench --json`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("results"), list):
        raise VastbenchError(f"{path}: not a vastbench benchmark result (format '{FORMAT}'); "
                             f"give a file written by `vastbench bench --json`")
    if data.get("version") != VERSION:
        raise VastbenchError(f"{path}: benchmark format version {data.get('version')}, this vastbench reads "
                             f"{VERSION}; re-run `vastbench bench --json` with this version")
    return data


def _speed(r: dict) -> float | None:
    """Higher-is-faster speed of a row: fps, or calls per second for rows that are not per frame."""
    if r.get("status") != "ok":
        return None
    if r.get("fps"):
        return float(r["fps"])
    return 1.0 / r["wall_s"] if r.get("wall_s") else None


def compare(a: dict, b: dict) -> dict:
    """Rows matched by id: speed in A and B and the ratio B / A (above 1: B is faster); env differences."""
    ra, rb = ({r["id"]: r for r in d["results"]} for d in (a, b))
    rows = []
    for key in list(ra) + [k for k in rb if k not in ra]:
        x, y = ra.get(key), rb.get(key)
        sa, sb = (_speed(x) if x else None), (_speed(y) if y else None)
        unit = "fps" if (x or y).get("frames") else "calls/s"
        rows.append({"id": key, "a": sa, "b": sb, "unit": unit,
                     "ratio": sb / sa if sa and sb else None,
                     "cpu_ratio": (y["cpu_fps"] / x["cpu_fps"]) if x and y and x.get("cpu_fps") and y.get("cpu_fps")
                     else None,
                     "only_in": None if x and y else ("A" if x else "B"),
                     "status": None if (sa and sb) else f"A: {x.get('status') if x else 'absent'}, "
                                                          f"B: {y.get('status') if y else 'absent'}"})
    keys = ("host_cpu", "cores", "torch_threads", "torch", "numpy", "device_names", "load_avg_start")
    env = {k: (a["env"].get(k), b["env"].get(k)) for k in keys}
    env["git"] = ((a["env"].get("git") or {}).get("sha"), (b["env"].get("git") or {}).get("sha"))
    env["quick"] = (a["settings"].get("quick"), b["settings"].get("quick"))
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else None
    return {"rows": rows, "env": env, "geomean_ratio": geo, "matched": len(ratios)}
