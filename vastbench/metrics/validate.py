"""The metric validation harness (DESIGN.md section 8): does each metric see what it claims to?

Ground-truth SynthTalk test clips are degraded by controlled perturbations at
increasing severity, written as real mp4 files (H.264, the same encoder and
settings for every level, the clean level included, so codec loss is common to
all), and scored with the same :class:`~vastbench.metrics.base.Metric` classes
and :class:`~vastbench.metrics.base.EvalSample` records a suite run uses: the
reference is the original ground-truth file, the audio the clip's wav, the
prompt another clip of the same identity and style (the ``same_style`` prompt of
the suites).

Perturbations (severities mild -> severe; level 0 is the clean re-encode):

==============  ==============================================================
audio_shift     audio track delayed by k video frames (1, 2, 4, 8), video kept
blur            Gaussian blur of every frame, sigma in pixels (0.5, 1, 2, 4)
noise           additive Gaussian pixel noise, std in 0..255 units (4, 8, 16, 32)
jpeg            every frame JPEG-compressed (OpenCV), quality (80, 40, 20, 5)
frozen          a centred run of frames held on its first frame, fraction of
                the clip (0.25, 0.5, 0.75, 1: a still image)
style_swap      the prompt replaced by the same identity's clip of another
                style: 1 = the nearest style, 2 = the median, 3 = the farthest
                (distance of the true SynthTalk style parameters, z-scored)
identity_swap   the last fraction of frames (0.25, 0.5, 1) taken from another
                identity's clip of the same style (the sentence differs too)
==============  ==============================================================

For every (metric, perturbation) the harness reports the mean and bootstrap CI
per level, and a verdict: the metric should get *worse* (its
``higher_is_better`` says which way that is) and worse with every step of
severity.  ``pass``: the paired bootstrap CI of (most severe - clean) over clips
lies entirely on the worse side and the level means are strictly ordered;
``partial``: significant but not strictly monotone; ``fail``: neither.  Each
metric is *meant* to see some perturbations (:data:`MEANT`); the others are
informational (``moves``, ``moves the wrong way`` or ``invariant``): a
reference metric that does not move under audio shift is right not to.

Resumable: perturbed clips are written atomically and kept; per-clip scores are
cached as JSON keyed by the sha256 of every input file plus each metric's
version and description; set-level values (FID) are cached by the hashes of the
decoded frames of the whole level, so levels with identical frames (audio
shift, style swap) are computed once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vastbench import media
from vastbench.config import DatasetConfig, stable_hash
from vastbench.controls.controls import shift_audio
from vastbench.data.manifest import Clip, Manifest
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.eval import load_metrics, metric_key, merge_reasons, score_cached, set_metric_cached
from vastbench.metrics.base import EvalSample, Metric, SetMetric
from vastbench.metrics.ci import bootstrap_ci, paired_bootstrap_diff
from vastbench.rundir import atomic_write_json, atomic_write_text, now_iso, read_json, sha256_file

log = logging.getLogger("vastbench.validate")

#: Bump when a perturbation's recipe changes: clips written by another recipe are not reused.
PERTURB_VERSION = "1"

DEFAULT_METRICS = ("psnr", "ssim", "lpips_offline", "m_lmd", "f_lmd", "style_sim", "expr_std_mouth", "lse_d", "lse_c")

_APPEARANCE = frozenset({"blur", "noise", "jpeg", "identity_swap"})
#: What each metric (registry name) is meant to detect; its other perturbations are informational.
MEANT: dict[str, frozenset[str]] = {
    "psnr": _APPEARANCE, "ssim": _APPEARANCE, "lpips": _APPEARANCE, "lpips_offline": _APPEARANCE,
    "fid": _APPEARANCE,
    "lse_d": frozenset({"audio_shift", "frozen"}), "lse_c": frozenset({"audio_shift", "frozen"}),
    "m_lmd": frozenset({"frozen"}), "f_lmd": frozenset({"frozen", "identity_swap"}),
    "style_sim": frozenset({"style_swap"}), "style_param_err": frozenset({"style_swap"}),
    "expr_std_mouth": frozenset({"frozen"}), "expr_std_upper": frozenset({"frozen"}),
    "upper_dyn_dev": frozenset({"frozen"}),
}


# =========================================================================== perturbations
@dataclass
class Source:
    """A ground-truth clip with what its perturbations draw on."""

    clip: Clip
    frames: np.ndarray            # (T, H, W, 3) uint8
    audio: np.ndarray             # (N,) float32 at 16 kHz
    prompt: Clip                  # same identity, same style, another clip
    manifest: Manifest
    styles: "StyleSpace | None" = None


@dataclass
class Perturbed:
    frames: np.ndarray | None     # None: the clean clip's video is the output (the prompt is what changes)
    audio: np.ndarray
    prompt: Clip
    info: dict = field(default_factory=dict)


def _blur(src: Source, sigma: float, rng) -> Perturbed:
    import cv2

    frames = np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                                        borderType=cv2.BORDER_REFLECT_101) for f in src.frames])
    return Perturbed(frames, src.audio, src.prompt)


def _noise(src: Source, std: float, rng) -> Perturbed:
    noisy = src.frames.astype(np.float32) + rng.normal(0.0, float(std), src.frames.shape).astype(np.float32)
    return Perturbed(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), src.audio, src.prompt)


def _jpeg(src: Source, quality: float, rng) -> Perturbed:
    import cv2

    out = []
    for f in src.frames:   # OpenCV codes BGR; RGB in, RGB out
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(f[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise VastbenchError(f"{src.clip.clip_id}: OpenCV could not JPEG-encode a frame at quality {quality}")
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return Perturbed(np.stack(out), src.audio, src.prompt)


def _frozen(src: Source, fraction: float, rng) -> Perturbed:
    frames = src.frames.copy()
    t = len(frames)
    n = min(t, max(1, int(round(fraction * t))))
    start = (t - n) // 2   # centred, so a longer freeze contains the shorter ones
    frames[start:start + n] = frames[start]
    return Perturbed(frames, src.audio, src.prompt, {"held_frames": n, "from": start})


def _audio_shift(src: Source, k: float, rng) -> Perturbed:
    return Perturbed(src.frames, shift_audio(src.audio, int(k)), src.prompt, {"delay_frames": int(k)})


def _style_swap(src: Source, rank: float, rng) -> Perturbed:
    if src.styles is None:
        raise VastbenchError("style_swap needs SynthTalk's style parameters (features/*.npz with style_params)")
    order = src.styles.others_by_distance(src.clip)
    if not order:
        raise VastbenchError(f"{src.clip.clip_id}: identity {src.clip.identity} has no clip of another style to swap in")
    # rank 1 / 2 / 3: the nearest, the median and the farthest other style
    idx = int(round((min(max(rank, 1), 3) - 1) / 2 * (len(order) - 1)))
    style, dist = order[idx]
    prompt = _pick_prompt(src.manifest, src.clip, style)
    return Perturbed(None, src.audio, prompt, {"prompt_style": style, "style_distance": round(dist, 4)})


def _identity_swap(src: Source, fraction: float, rng) -> Perturbed:
    t = len(src.frames)
    cands = [c for c in src.manifest.clips if c.identity != src.clip.identity and c.style == src.clip.style]
    if not cands:
        raise VastbenchError(f"{src.clip.clip_id}: no other identity speaks style {src.clip.style}; cannot swap identity")
    long_enough = [c for c in cands if c.n_frames >= t] or cands
    other = sorted(long_enough, key=lambda c: c.clip_id)[int(rng.integers(len(long_enough)))]
    other_frames = media.read_video(other.path("video"), with_audio=False).frames
    if other_frames.shape[1:] != src.frames.shape[1:]:
        raise VastbenchError(f"{other.clip_id}: {other_frames.shape[2]}x{other_frames.shape[1]} frames, the source "
                             f"has {src.frames.shape[2]}x{src.frames.shape[1]}; one dataset size is needed")
    other_frames = _fit_length(other_frames, t)
    n = min(t, max(1, int(round(fraction * t))))
    frames = src.frames.copy()
    frames[t - n:] = other_frames[t - n:]
    return Perturbed(frames, src.audio, src.prompt, {"other_clip": other.clip_id, "swapped_frames": n})


def _fit_length(frames: np.ndarray, t: int) -> np.ndarray:
    """``t`` frames: cut, or extended by playing back and forth (no jump, no held frame)."""
    if len(frames) >= t:
        return frames[:t]
    period = max(1, 2 * (len(frames) - 1))
    idx = [i % period for i in range(t)]
    return frames[[i if i < len(frames) else period - i for i in idx]]


@dataclass(frozen=True)
class Perturbation:
    name: str
    title: str                          # column and legend label
    unit: str                           # what a severity value is
    severities: tuple[float, ...]       # mild -> severe
    apply: Callable[[Source, float, np.random.Generator], Perturbed]
    descending: bool = False            # severity grows as the value falls (JPEG quality)
    labels: tuple[str, ...] = ()        # display names of severities, when numbers would mislead

    def label(self, severity: float) -> str:
        if self.labels and severity in self.severities:
            return self.labels[self.severities.index(severity)]
        return f"{severity:g}"


PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in (
    Perturbation("audio_shift", "Audio shift", "delay (frames)", (1, 2, 4, 8), _audio_shift),
    Perturbation("blur", "Blur", "Gaussian sigma (px)", (0.5, 1, 2, 4), _blur),
    Perturbation("noise", "Noise", "pixel noise std (0-255)", (4, 8, 16, 32), _noise),
    Perturbation("jpeg", "JPEG", "JPEG quality", (80, 40, 20, 5), _jpeg, descending=True),
    Perturbation("frozen", "Frozen", "fraction of frames held", (0.25, 0.5, 0.75, 1.0), _frozen),
    Perturbation("style_swap", "Style swap", "prompt style: 1 nearest, 2 median, 3 farthest", (1, 2, 3),
                 _style_swap, labels=("near", "mid", "far")),
    Perturbation("identity_swap", "ID swap", "fraction of frames from another identity", (0.25, 0.5, 1.0),
                 _identity_swap),
)}


def resolve_perturbations(names: tuple[str, ...] | list[str],
                          severities: dict[str, tuple[float, ...]] | None = None) -> list[Perturbation]:
    from vastbench.registry import did_you_mean

    out = []
    for name in names:
        if name not in PERTURBATIONS:
            raise VastbenchError(f"unknown perturbation '{name}'{did_you_mean(name, PERTURBATIONS)}")
        p = PERTURBATIONS[name]
        sev = (severities or {}).get(name)
        if sev:
            sev = tuple(sorted({float(s) for s in sev}, reverse=p.descending))
            _check_severities(p, sev)
            labels = tuple(p.label(s) for s in sev) if p.labels else ()
            p = Perturbation(p.name, p.title, p.unit, sev, p.apply, p.descending, labels)
        out.append(p)
    if not out:
        raise VastbenchError("no perturbations selected; valid: " + ", ".join(PERTURBATIONS))
    return out


def _check_severities(p: Perturbation, sev: tuple[float, ...]) -> None:
    ranges = {"audio_shift": (1, 15), "blur": (0.05, 50), "noise": (0.1, 255), "jpeg": (1, 100), "frozen": (0.01, 1),
              "style_swap": (1, 3), "identity_swap": (0.01, 1)}
    lo, hi = ranges[p.name]
    bad = [s for s in sev if not lo <= s <= hi]
    if bad:
        raise VastbenchError(f"{p.name} severity {bad[0]:g} is out of range: use {p.unit} in {lo:g}..{hi:g}")


# =========================================================================== style space
class StyleSpace:
    """SynthTalk styles as points: their true style parameters, z-scored over the dataset's styles."""

    def __init__(self, manifest: Manifest):
        params: dict[str, np.ndarray] = {}
        for clip in manifest.clips:
            if clip.style in params:
                continue
            path = clip.path("features")
            if not path.exists():
                raise VastbenchError(f"{path}: missing; style_swap needs SynthTalk feature files (rebuild the dataset)")
            with np.load(path) as z:
                if "style_params" not in z.files:
                    raise VastbenchError(f"{path}: no style_params; style_swap applies to SynthTalk data only")
                params[clip.style] = z["style_params"].astype(np.float64)
        names = sorted(params)
        x = np.stack([params[n] for n in names])
        x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.points = dict(zip(names, x))
        self.manifest = manifest

    def others_by_distance(self, clip: Clip) -> list[tuple[str, float]]:
        """The identity's other styles (those it has clips of), nearest first."""
        mine = self.points[clip.style]
        styles = {c.style for c in self.manifest.clips if c.identity == clip.identity and c.style != clip.style}
        return sorted(((s, float(np.linalg.norm(self.points[s] - mine))) for s in styles), key=lambda x: (x[1], x[0]))


def _pick_prompt(manifest: Manifest, clip: Clip, style: str) -> Clip:
    """A clip of ``clip``'s identity in ``style`` (not ``clip`` itself), train split first, lowest id."""
    cands = [c for c in manifest.clips if c.identity == clip.identity and c.style == style and c.clip_id != clip.clip_id]
    if not cands:
        raise VastbenchError(f"{clip.clip_id}: identity {clip.identity} has no other clip in style {style} to prompt with")
    return sorted(cands, key=lambda c: (c.split != "train", c.clip_id))[0]


def pick_clips(manifest: Manifest, split: str, n: int, seed: int) -> list[Clip]:
    """``n`` clips of ``split``, seeded, spread over identities and styles (distinct ones first)."""
    clips = sorted(manifest.split(split), key=lambda c: c.clip_id)
    if not clips:
        raise VastbenchError(f"{manifest.path}: split '{split}' has no clips; pick another --split")
    order = [clips[i] for i in np.random.default_rng(seed).permutation(len(clips))]
    chosen, ids, styles = [], set(), set()
    for c in order:
        if len(chosen) < n and c.identity not in ids and c.style not in styles:
            chosen.append(c)
            ids.add(c.identity)
            styles.add(c.style)
    chosen += [c for c in order if c not in chosen][:max(0, n - len(chosen))]
    return sorted(chosen, key=lambda c: c.clip_id)


# =========================================================================== the harness
@dataclass
class ValidationConfig:
    out: Path
    n_clips: int = 8
    metrics: tuple[str, ...] = DEFAULT_METRICS
    perturbations: tuple[str, ...] = tuple(PERTURBATIONS)
    severities: dict[str, tuple[float, ...]] = field(default_factory=dict)   # overrides, by perturbation
    profile: str = "quick"
    dataset_seed: int = 0
    split: str = "test"
    seed: int = 0
    ci: float = 0.95
    n_boot: int = 2000


@dataclass
class Item:
    """One scored sample: a clip at one level of one perturbation (level 0: the clean clip)."""

    perturbation: str
    level: int
    severity: float
    clip: Clip
    generated: Path
    prompt: Clip
    info: dict

    @property
    def key(self) -> str:
        return f"{self.perturbation}/{self.level_dir}/{self.clip.clip_id}"

    @property
    def level_dir(self) -> str:
        return "0" if self.level == 0 else f"{self.severity:g}"


@dataclass
class ValidationResult:
    out: Path
    verdicts: list[dict]
    levels: list[dict]
    skipped: dict[str, str]
    files: dict[str, Path]
    n_errors: int


class _Silent:
    @staticmethod
    def stage(name: str, msg: str) -> None:
        pass

    @staticmethod
    def track(items, desc, total=None):
        return iter(items)


def validate_metrics(cfg: ValidationConfig, manifest: Manifest | None = None, reporter=None) -> ValidationResult:
    """Run the harness; writes clips, caches, CSVs, LaTeX, a PNG and ``validation.json`` under ``cfg.out``."""
    rep = reporter or _Silent()
    if cfg.n_clips < 2:
        raise VastbenchError(f"--clips {cfg.n_clips}: need at least 2 clips for confidence intervals")
    perts = resolve_perturbations(cfg.perturbations, cfg.severities)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = _attach_log(out / "log.txt")
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        if manifest is None:
            from vastbench.data.synthtalk.dataset import SynthTalkDataset

            manifest = SynthTalkDataset(DatasetConfig(name="synthtalk", profile=cfg.profile,
                                                      seed=cfg.dataset_seed)).load(progress=rep)
        _check_out_dir(out, manifest, cfg)
        metrics, skipped = load_metrics(cfg.metrics)
        for name, reason in skipped.items():
            log.warning("metric %s skipped: %s", name, reason)
        if not metrics:
            raise VastbenchError("no metric can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        clips = pick_clips(manifest, cfg.split, cfg.n_clips, cfg.seed)
        rep.stage("validate", f"{len(clips)} clips x {sum(len(p.severities) for p in perts) + 1} levels, "
                              f"metrics {', '.join(metrics)} -> {out}")
        styles = StyleSpace(manifest) if any(p.name == "style_swap" for p in perts) else None
        items, errors = _write_clips(out, clips, perts, manifest, styles, cfg.seed, rep)
        timings["perturb"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        values, errors2 = _score(out, items, metrics, rep)
        errors += errors2
        timings["score"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        set_values = _score_sets(out, items, metrics, rep)
        timings["set_metrics"] = time.perf_counter() - t0

        levels, per_clip, verdicts = _analyse(cfg, perts, metrics, values, set_values, clips, skipped)
        files = _write_outputs(out, cfg, perts, metrics, skipped, levels, per_clip, verdicts, errors, clips, items,
                               timings)
        return ValidationResult(out, verdicts, levels, skipped, files, len(errors))
    finally:
        logging.getLogger("vastbench").removeHandler(handler)
        handler.close()


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("vastbench").addHandler(handler)
    logging.getLogger("vastbench").setLevel(logging.INFO)
    return handler


def _check_out_dir(out: Path, manifest: Manifest, cfg: ValidationConfig) -> None:
    """Clips on disk are reused, so they must come from the same dataset, seed and recipes."""
    inputs = {"perturb_version": PERTURB_VERSION, "manifest_hash": manifest.content_hash(), "seed": cfg.seed}
    path = out / "inputs.json"
    old = read_json(path)
    if old is not None and old != inputs:
        raise VastbenchError(f"{out}: holds a validation of another dataset, seed or perturbation recipe "
                             f"({old} vs {inputs}); pick a new --out")
    if old is None:
        atomic_write_json(path, inputs)


def _clip_rng(seed: int, clip_id: str, pert: str, severity: float) -> np.random.Generator:
    return np.random.default_rng(int(stable_hash([seed, clip_id, pert, float(severity)]), 16))


def _write_clips(out: Path, clips: list[Clip], perts: list[Perturbation], manifest: Manifest,
                 styles: StyleSpace | None, seed: int, rep) -> tuple[list[Item], list[dict]]:
    items: list[Item] = []
    errors: list[dict] = []
    for clip in rep.track(clips, "perturb clips"):
        frames = media.read_video(clip.path("video"), with_audio=False).frames
        audio, _ = media.read_wav(clip.path("audio"))
        try:
            prompt = _pick_prompt(manifest, clip, clip.style)
        except VastbenchError as exc:
            errors.append({"clip": clip.clip_id, "perturbation": "clean", "severity": 0, "reason": str(exc)})
            continue
        src = Source(clip, frames, audio, prompt, manifest, styles)
        clean = out / "clips" / "clean" / f"{clip.clip_id}.mp4"
        if not clean.exists():
            media.write_video(clean, frames, media.FPS, audio, media.SAMPLE_RATE)
        items.append(Item("clean", 0, 0.0, clip, clean, prompt, {}))
        for p in perts:
            for level, sev in enumerate(p.severities, start=1):
                item = Item(p.name, level, float(sev), clip, clean, prompt, {})
                path = out / "clips" / p.name / item.level_dir / f"{clip.clip_id}.mp4"
                info_path = path.with_suffix(".json")
                try:
                    if p.name == "style_swap" or not path.exists() or not info_path.exists():
                        res = p.apply(src, float(sev), _clip_rng(seed, clip.clip_id, p.name, sev))
                        if res.frames is not None:
                            media.write_video(path, res.frames, media.FPS, res.audio, media.SAMPLE_RATE)
                            atomic_write_json(info_path, {"prompt": res.prompt.clip_id, **res.info})
                        info = {"prompt": res.prompt.clip_id, **res.info}
                    else:
                        info = read_json(info_path)
                except VastbenchError as exc:
                    errors.append({"clip": clip.clip_id, "perturbation": p.name, "severity": sev, "reason": str(exc)})
                    continue
                item.generated = path if path.exists() else clean
                item.prompt = manifest[info["prompt"]]
                item.info = info
                items.append(item)
    return items, errors


def _sample(item: Item) -> EvalSample:
    req = Request(request_id=item.key, identity=item.clip.identity, reference=item.clip.clip_id,
                  driving=item.clip.clip_id, prompt=item.prompt.clip_id, seed=0, ground_truth=item.clip.clip_id)
    return EvalSample(request=req, generated=item.generated, reference=item.clip.path("video"),
                      audio=item.clip.path("audio"), prompt=item.prompt.path("video"))


class _Hashes:
    """sha256 of source files, computed once per file."""

    def __init__(self):
        self._memo: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        if path not in self._memo:
            self._memo[path] = sha256_file(path)
        return self._memo[path]


def _score(out: Path, items: list[Item], metrics: dict[str, Metric], rep) -> tuple[dict, list[dict]]:
    """Per-clip values: ``{(metric name, perturbation, level): {clip id: value}}``."""
    keys = {m.name: metric_key(m) for m in metrics.values()}
    sha = _Hashes()
    values: dict[tuple[str, str, int], dict[str, float]] = {}
    errors: list[dict] = []
    per_clip = {k: m for k, m in metrics.items() if m.per_clip}
    if not per_clip:
        return values, errors
    for item in rep.track(items, "score"):
        sample = _sample(item)
        inputs = {"generated": sha256_file(item.generated), "reference": sha(sample.reference),
                  "audio": sha(sample.audio), "prompt": sha(sample.prompt)}
        vals, errs = score_cached(sample, per_clip, out / "scores" / f"{item.key}.json", inputs, keys)
        for name, v in vals.items():
            values.setdefault((name, item.perturbation, item.level), {})[item.clip.clip_id] = v
        if errs:
            errors.append({"clip": item.clip.clip_id, "perturbation": item.perturbation, "severity": item.severity,
                           "reason": merge_reasons(errs)})
    return values, errors


def _frames_sha(sample: EvalSample) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(sample.generated_video.frames).tobytes()).hexdigest()


def _score_sets(out: Path, items: list[Item], metrics: dict[str, Metric], rep) -> dict:
    """Set-level values per level: ``{(metric name, perturbation, level): value}``."""
    set_metrics = [m for m in metrics.values() if isinstance(m, SetMetric)]
    result: dict[tuple[str, str, int], float] = {}
    if not set_metrics:
        return result
    groups: dict[tuple[str, int], list[Item]] = {}
    for item in items:
        groups.setdefault((item.perturbation, item.level), []).append(item)
    sha = _Hashes()
    for (pert, level), group in rep.track(list(groups.items()), "set-level metrics"):
        samples = [_sample(i) for i in group]
        # FID sees frames only: hash the decoded frames, so levels whose video is the clean one hit the cache.
        ids = [[_frames_sha(s), sha(s.reference)] for s in samples]
        for m in set_metrics:
            value, errs = set_metric_cached(m, samples, out / "scores" / "set", ids)
            for k, reason in errs.items():
                log.warning("%s on %s level %s: %s: %s", m.name, pert, level, k, reason)
            result[(m.name, pert, level)] = value
    return result


# =========================================================================== statistics and verdicts
def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    y = np.asarray(y, np.float64)
    if len(y) < 2 or not np.all(np.isfinite(y)) or np.all(y == y[0]):
        return 0.0 if len(y) >= 2 and np.all(y == y[0]) else float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def _analyse(cfg, perts, metrics, values, set_values, clips, skipped):
    levels, per_clip, verdicts = [], [], []
    for reg_name, m in metrics.items():
        sign = 1.0 if not m.higher_is_better else -1.0     # "badness" = sign * value
        meant_set = MEANT.get(reg_name, frozenset())
        for p in perts:
            sevs = [0.0] + [float(s) for s in p.severities]
            keys = [(m.name, "clean", 0)] + [(m.name, p.name, lv) for lv in range(1, len(sevs))]
            if m.per_clip:
                series = [values.get(k, {}) for k in keys]
                for lv, (sev, vals) in enumerate(zip(sevs, series)):
                    mean, lo, hi = bootstrap_ci(list(vals.values()), cfg.ci, cfg.n_boot, cfg.seed)
                    levels.append({"metric": m.name, "perturbation": p.name, "level": lv, "severity": sev,
                                   "severity_label": "clean" if lv == 0 else p.label(sev), "mean": mean,
                                   "ci_low": lo, "ci_high": hi, "n": len(vals)})
                    per_clip.extend({"metric": m.name, "perturbation": p.name, "level": lv, "severity": sev,
                                     "clip": c, "value": v} for c, v in sorted(vals.items()))
                v = _judge_per_clip(series, sign, cfg)
            else:
                series = [set_values.get(k, float("nan")) for k in keys]
                for lv, (sev, val) in enumerate(zip(sevs, series)):
                    levels.append({"metric": m.name, "perturbation": p.name, "level": lv, "severity": sev,
                                   "severity_label": "clean" if lv == 0 else p.label(sev), "mean": val,
                                   "ci_low": float("nan"), "ci_high": float("nan"), "n": len(clips)})
                v = _judge_set(series, sign)
            meant = p.name in meant_set
            v.update(metric=m.name, registry_name=reg_name, label=m.label or m.name,
                     higher_is_better=m.higher_is_better, perturbation=p.name, meant=meant,
                     verdict=_verdict(v, meant),
                     detects_from=(p.label(sevs[v["detects_level"]]) if v.get("detects_level") else ""))
            verdicts.append(v)
    for name, reason in skipped.items():
        for p in perts:
            verdicts.append({"metric": name, "registry_name": name, "label": name, "perturbation": p.name,
                             "meant": p.name in MEANT.get(name, frozenset()), "verdict": "skipped", "note": reason})
    return levels, per_clip, verdicts


def _judge_per_clip(series: list[dict[str, float]], sign: float, cfg) -> dict:
    common = sorted(set.intersection(*(set(s) for s in series))) if all(series) else []
    if len(common) < 2:
        return {"n_clips": len(common), "monotone": False, "spearman": float("nan"), "clip_spearman": float("nan"),
                "worst_diff": float("nan"), "worst_ci_low": float("nan"), "worst_ci_high": float("nan"),
                "effect_sd": float("nan"), "detects_level": None, "note": "fewer than 2 clips scored at every level"}
    bad = [{c: sign * s[c] for c in common} for s in series]
    means = [float(np.mean(list(b.values()))) for b in bad]
    lv = list(range(len(series)))
    diffs = [paired_bootstrap_diff(b, bad[0], cfg.ci, cfg.n_boot, cfg.seed) for b in bad[1:]]
    detects = next((i + 1 for i, (_, lo, _) in enumerate(diffs) if math.isfinite(lo) and lo > 0), None)
    clip_rhos = [_spearman(lv, [b[c] for b in bad]) for c in common]
    clean_sd = float(np.std([bad[0][c] for c in common], ddof=1))
    worst, lo, hi = diffs[-1]
    exact_zero = all(b == bad[0] for b in bad[1:])
    return {"n_clips": len(common), "monotone": bool(all(np.diff(means) > 0)), "spearman": _spearman(lv, means),
            "clip_spearman": float(np.nanmean(clip_rhos)) if np.any(np.isfinite(clip_rhos)) else float("nan"),
            "worst_diff": worst, "worst_ci_low": lo, "worst_ci_high": hi,
            "effect_sd": worst / clean_sd if clean_sd > 0 and math.isfinite(worst) else float("nan"),
            "detects_level": detects, "note": "identical values at every level" if exact_zero else ""}


def _judge_set(series: list[float], sign: float) -> dict:
    bad = [sign * v for v in series]
    ok = all(math.isfinite(b) for b in bad)
    worst = bad[-1] - bad[0] if ok else float("nan")
    detects = next((i for i in range(1, len(bad)) if ok and bad[i] > bad[0]), None)
    return {"n_clips": None, "monotone": bool(ok and all(np.diff(bad) > 0)),
            "spearman": _spearman(list(range(len(bad))), bad) if ok else float("nan"), "clip_spearman": float("nan"),
            "worst_diff": worst, "worst_ci_low": float("nan"), "worst_ci_high": float("nan"),
            "effect_sd": float("nan"), "detects_level": detects,
            "note": "set-level: one value per level, no CI" + ("" if ok else "; a level has no value")}


def _verdict(v: dict, meant: bool) -> str:
    lo, hi, worst = v["worst_ci_low"], v["worst_ci_high"], v["worst_diff"]
    if math.isfinite(lo) and math.isfinite(hi):
        worse, better = lo > 0, hi < 0
    else:   # set-level (no CI): the sign of the change
        worse, better = (worst > 0, worst < 0) if math.isfinite(worst) else (False, False)
    if meant:
        if worse:
            return "pass" if v["monotone"] else "partial"
        return "fail (wrong way)" if better else "fail"
    return "moves" if worse else "moves the wrong way" if better else "invariant"


# =========================================================================== outputs
_LEVEL_COLS = ["metric", "perturbation", "level", "severity", "severity_label", "mean", "ci_low", "ci_high", "n"]
_VERDICT_COLS = ["metric", "perturbation", "meant", "verdict", "monotone", "spearman", "clip_spearman", "worst_diff",
                 "worst_ci_low", "worst_ci_high", "effect_sd", "detects_from", "n_clips", "higher_is_better", "note"]


def _csv(rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(float(r[k])) if isinstance(r.get(k), float) else r.get(k, "")) for k in cols})
    return buf.getvalue()


def _write_outputs(out, cfg, perts, metrics, skipped, levels, per_clip, verdicts, errors, clips, items, timings):
    files = {
        "levels_csv": atomic_write_text(out / "validation.csv", _csv(levels, _LEVEL_COLS)),
        "per_clip_csv": atomic_write_text(out / "per_clip.csv", _csv(
            per_clip, ["metric", "perturbation", "level", "severity", "clip", "value"])),
        "verdicts_csv": atomic_write_text(out / "verdicts.csv", _csv(verdicts, _VERDICT_COLS)),
        "errors": atomic_write_text(out / "errors.jsonl", "".join(json.dumps(e, sort_keys=True) + "\n" for e in errors)),
    }
    frag = verdict_table(verdicts, perts, metrics, skipped, cfg, len(clips))
    from vastbench.report.latex import standalone

    files["tex"] = atomic_write_text(out / "validation.tex", frag)
    files["tex_standalone"] = atomic_write_text(out / "validation_standalone.tex", standalone(frag))
    files["markdown"] = atomic_write_text(out / "validation.md", markdown_tables(verdicts, levels, perts, metrics,
                                                                               skipped, cfg, len(clips)))
    files["png"] = plot_levels(levels, verdicts, perts, metrics, skipped, out / "validation.png", cfg.ci)
    atomic_write_json(out / "validation.json", {
        "created_at": now_iso(), "config": {**cfg.__dict__, "out": str(cfg.out)},
        "perturbations": {p.name: {"title": p.title, "unit": p.unit, "severities": list(p.severities)} for p in perts},
        "clips": [c.clip_id for c in clips], "metrics": {m.name: m.describe() for m in metrics.values()},
        "meant": {k: sorted(v) for k, v in MEANT.items()}, "skipped": skipped, "n_errors": len(errors),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "swaps": {i.key: i.info for i in items if i.info}}, sort_keys=False)
    return files


def _verdict_cell(v: dict | None) -> str:
    from vastbench.report.latex import tex_escape

    if v is None:
        return "--"
    rho = v.get("spearman", float("nan"))
    identical = v.get("note", "").startswith("identical")
    num = "" if identical or not isinstance(rho, float) or math.isnan(rho) else f" {rho:+.2f}"
    short = {"pass": "pass", "partial": "partial", "fail": "FAIL", "fail (wrong way)": "FAIL$^{-}$",
             "moves": "moves", "moves the wrong way": "wrong", "invariant": "inv."}[v["verdict"]]
    if v["meant"]:
        return r"\textbf{" + short + "}" + num
    return r"\textit{" + tex_escape(short) + "}" + num if short != "inv." else r"\textit{inv.}" + num


def verdict_table(verdicts: list[dict], perts: list[Perturbation], metrics: dict[str, Metric],
                  skipped: dict[str, str], cfg, n_clips: int) -> str:
    """Metrics x perturbations, booktabs: verdict and Spearman rho of severity vs mean (+1 = steadily worse)."""
    from vastbench.report.latex import fit_to_width, tex_escape

    by = {(v["registry_name"], v["perturbation"]): v for v in verdicts}
    up, down = r"$\uparrow$", r"$\downarrow$"
    head = " & ".join(["Metric"] + [tex_escape(p.title) for p in perts]) + r" \\"
    sev = " & ".join([""] + [r"{\tiny " + tex_escape(", ".join(p.label(s) for s in p.severities)) + "}"
                             for p in perts]) + r" \\"
    lines = []
    for reg, m in metrics.items():
        cells = [f"{m.label or tex_escape(m.name)} {up if m.higher_is_better else down}"]
        cells += [_verdict_cell(by.get((reg, p.name))) for p in perts]
        lines.append(" & ".join(cells) + r" \\")
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():   # LSE-D and LSE-C share their weights and their reason
        span = f"\\multicolumn{{{len(perts)}}}{{p{{{1.6 * len(perts):.1f}cm}}}}"
        lines.append(f"{tex_escape(', '.join(names))} & {span}{{\\textit{{skipped: {tex_escape(reason)}}}}} \\\\")
    ci = int(round(cfg.ci * 100))
    note = (f"{n_clips} SynthTalk {tex_escape(cfg.split)} clips, clean level plus the severities under each column. "
            f"Each cell: the verdict and Spearman $\\rho$ of severity vs the level means, signed so that $+1$ is "
            f"steadily worse. \\textbf{{Bold}}: what the metric is meant to detect: pass = the {ci}\\% paired "
            f"bootstrap CI ({cfg.n_boot} resamples) of most severe minus clean is entirely on the worse side and "
            f"the means are strictly ordered; partial = significant but not strictly ordered; FAIL = not "
            f"significant (FAIL$^{{-}}$: significantly better). \\textit{{Italic}}: informational: moves (worse), "
            f"wrong (better), inv.\\ (CI includes 0; no $\\rho$: identical values at every level). "
            f"Set-level metrics (FID) have no CI: the sign of the change.")
    notes = list(dict.fromkeys(n for n in (getattr(m, "footnote", None) for m in metrics.values()) if n))
    note += "".join(" " + tex_escape(n).rstrip(".") + "." for n in notes)
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{3pt}",
        r"\caption{Metric validation: does each metric worsen, monotonically, under the perturbations it should see?}",
        r"\label{tab:metric-validation}",
        *fit_to_width([f"\\begin{{tabular}}{{l{'c' * len(perts)}}}", r"\toprule", head, sev, r"\midrule", *lines,
                       r"\bottomrule", r"\end{tabular}"]),
        r"\par\vspace{2pt}\footnotesize " + note,
        r"\end{table}", ""])


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.1f}"


def markdown_tables(verdicts, levels, perts, metrics, skipped, cfg, n_clips) -> str:
    """The verdict table and the per-level means in Markdown (for docs/metrics_validation.md)."""
    by = {(v["registry_name"], v["perturbation"]): v for v in verdicts}
    out = ["| metric | " + " | ".join(p.title for p in perts) + " |", "|---" * (len(perts) + 1) + "|"]
    for reg, m in metrics.items():
        cells = []
        for p in perts:
            v = by[(reg, p.name)]
            word = v["verdict"]
            rho = "" if math.isnan(v["spearman"]) else f" ρ={v['spearman']:+.2f}"
            cells.append(f"**{word}**{rho}" if v["meant"] else f"_{word}_{rho}")
        out.append(f"| {m.name} {'↑' if m.higher_is_better else '↓'} | " + " | ".join(cells) + " |")
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        out.append(f"| {', '.join(names)} | skipped: {reason} |" + " |" * (len(perts) - 1))
    out += ["", "Most severe level vs clean, paired over clips (worse side positive; "
                f"{int(cfg.ci * 100)}% bootstrap CI), effect in clean-level clip SDs, first level detected:", "",
            "| metric | perturbation | meant | verdict | Δ worst [CI] | effect (SD) | detects from | clip ρ |",
            "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        if v["verdict"] == "skipped":
            continue
        ci = "" if math.isnan(v["worst_ci_low"]) else f" [{_fmt(v['worst_ci_low'])}, {_fmt(v['worst_ci_high'])}]"
        out.append(f"| {v['metric']} | {v['perturbation']} | {'yes' if v['meant'] else ''} | {v['verdict']} | "
                   f"{_fmt(v['worst_diff'])}{ci} | {_fmt(v['effect_sd'])} | {v['detects_from'] or '–'} | "
                   f"{_fmt(v['clip_spearman'])} |")
    out += ["", "Level means (clean, then each severity) with the CI half-width:", "",
            "| metric | perturbation | " + " | ".join(f"L{i}" for i in range(max(len(p.severities) for p in perts) + 1))
            + " |", "|---|---|" + "---|" * (max(len(p.severities) for p in perts) + 1)]
    rows: dict[tuple[str, str], list[str]] = {}
    for r in levels:
        half = (r["ci_high"] - r["ci_low"]) / 2 if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"]) else None
        cell = f"{_fmt(r['mean'])}" + (f" ± {_fmt(half)}" if half is not None else "")
        rows.setdefault((r["metric"], r["perturbation"]), []).append(f"{r['severity_label']}: {cell}")
    for (m, p), cells in rows.items():
        out.append(f"| {m} | {p} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot_levels(levels, verdicts, perts, metrics, skipped, path: Path, ci: float = 0.95) -> Path:
    """One panel per metric: mean and CI against severity level, one line per perturbation."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = list(metrics)
    ncol = min(4, len(names))
    nrow = math.ceil(len(names) / ncol)
    legend_in = 0.18 * math.ceil(len(perts) / 3) + (0.2 if skipped else 0.0) + 0.15   # legend rows, inches
    height = 3.1 * nrow + 0.5 + legend_in
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, height), squeeze=False)
    colors = {p.name: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(perts)}
    by = {(v["registry_name"], v["perturbation"]): v for v in verdicts}
    for ax, reg in zip(axes.flat, names):
        m = metrics[reg]
        for p in perts:
            rows = sorted((r for r in levels if r["metric"] == m.name and r["perturbation"] == p.name),
                          key=lambda r: r["level"])
            x = np.array([r["level"] for r in rows], float)
            y = np.array([r["mean"] for r in rows], float)
            lo = np.array([r["ci_low"] for r in rows], float)
            hi = np.array([r["ci_high"] for r in rows], float)
            meant = by[(reg, p.name)]["meant"]
            kw = dict(color=colors[p.name], lw=2.0 if meant else 1.0, ls="-" if meant else "--",
                      alpha=1.0 if meant else 0.55, marker="o" if meant else ".", ms=4)
            ax.plot(x, y, **kw, label=p.title)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=colors[p.name], alpha=0.15 if meant else 0.06, lw=0)
        arrow = "↑" if m.higher_is_better else "↓"
        meant = [p.title for p in perts if by[(reg, p.name)]["meant"]]
        ax.set_title(f"{m.label or m.name} {arrow}\nmeant: {', '.join(meant) or 'none here'}", fontsize=9)
        ax.set_xticks(range(0, max(len(p.severities) for p in perts) + 1))
        ax.set_xlabel("severity level (0 = clean)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    handles = [plt.Line2D([], [], color=colors[p.name], lw=2, label=f"{p.title}: "
                          f"{', '.join(p.label(s) for s in p.severities)} ({p.unit})") for p in perts]
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(perts)), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.02 if skipped else 0.0))
    if skipped:
        text = "; ".join(f"{k} skipped: {v[:90]}{'...' if len(v) > 90 else ''}" for k, v in skipped.items())
        fig.text(0.5, 0.003, text, ha="center", va="bottom", fontsize=6, color="0.35", wrap=True)
    fig.suptitle(f"Metric validation: mean and {ci:.0%} bootstrap CI per severity level (bold: meant to detect; "
                 "dashed: informational)", fontsize=10)
    fig.tight_layout(rect=(0, legend_in / height, 1, 1 - 0.4 / height))
    path = Path(path)
    from vastbench.media import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png", metadata={"Software": "vastbench"})
    plt.close(fig)
    return path
