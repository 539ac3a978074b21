"""Train VAST variants on a dataset and evaluate the expression stage (issue: ablation table).

For every variant (full VAST, its ablations, and the style-free ``no_style``
reference) this trains (or loads from the cache) one model, drives it with
test requests and scores its *expressions* against ground truth:

- ``mouth_l1`` / ``upper_l1``: mean absolute error of mouth and upper-face channels;
- ``jaw_corr``: correlation of predicted and true jaw opening (a lip-sync proxy);
- ``style_acc_seen`` / ``style_acc_unseen``: how often a style classifier trained on
  ground-truth expression statistics (never on model outputs) names the prompt's
  style, on ``test`` requests and on zero-shot ``test_unseen_style`` requests whose
  prompt is another identity's clip of a style no model saw in training.

The unseen-style classifier is fitted on ground truth of the train split plus the
unseen-style clips of the first half of the seen identities; it is evaluated on
requests of the other half only, so it never saw the clips it scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vastbench.config import stable_hash
from vastbench.data.manifest import Clip, Manifest
from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)
VARIANTS = ("vast", "no_enhancer", "no_flow", "nar_only", "ar_only", "no_style")


def load_vast_clips(clips: list[Clip]) -> list[dict]:
    """Clip dicts as VAST's data contract wants them (PPG from the frozen recognizer, cached)."""
    from vastbench.features.extract import clip_features

    out = []
    for c in clips:
        f = clip_features(c, ("ppg",))
        out.append({"clip_id": c.clip_id, "style": c.style, "identity": c.identity,
                    "expression": f["expression"], "pose": f["pose"], "ppg": f["ppg"]})
    return out


def train_variant(variant: str, manifest: Manifest, cache_root: Path, preset: str = "quick", seed: int = 0,
                  steps: int | None = None, device: str = "cpu", progress=None) -> Path:
    """Train one variant (cached by config + data hash); returns its ``model.pt``."""
    from vastbench.vast.config import dataset_overrides, make_config
    from vastbench.vast.train import train

    cfg = make_config(preset, variant, **dataset_overrides(manifest))
    out = variant_dir(variant, manifest, cache_root, preset, seed, steps)
    if (out / "model.pt").exists() and (out / "done").exists():
        return out / "model.pt"
    train_clips = load_vast_clips(manifest.split("train"))
    val_clips = load_vast_clips(manifest.split("val")) if manifest.split("val") else None
    path = train(cfg, train_clips, val_clips, out, steps=steps, device=device, seed=seed, progress=progress)
    from vastbench import distributed as dist

    if dist.is_main():
        (out / "done").write_text("ok\n")
    return Path(path)


def variant_dir(variant: str, manifest: Manifest, cache_root: Path, preset: str = "quick", seed: int = 0,
                steps: int | None = None) -> Path:
    """The cache directory of one trained variant: keyed by config, data, seed, steps and PPG version."""
    from vastbench.vast.config import dataset_overrides, make_config
    from vastbench.vast.model import MODEL_VERSION

    cfg = make_config(preset, variant, **dataset_overrides(manifest))
    key = stable_hash({"cfg": cfg.to_dict(), "data": manifest.content_hash(), "seed": seed, "steps": steps,
                       "ppg": _ppg_version(), "model_version": MODEL_VERSION}, 12)
    return Path(cache_root) / f"vast-{variant}-{key}"


def _ppg_version() -> str:
    from vastbench.features.extract import recognizer

    return (recognizer().sha256 or "")[:12]


@dataclass
class ExprRequest:
    driving: Clip
    prompt: Clip
    split: str


def make_requests(manifest: Manifest, seed: int = 0) -> list[ExprRequest]:
    """Seen-style requests (prompt: another clip, same style and identity when possible) and
    zero-shot unseen-style requests (prompt: another identity's clip of that style)."""
    rng = np.random.default_rng(seed)
    reqs = []
    for split, same_identity in (("test", True), ("test_unseen_style", False)):
        for c in manifest.split(split):
            pool = [p for p in manifest.clips if p.style == c.style and p.clip_id != c.clip_id
                    and (p.identity == c.identity) == same_identity and p.split in (split, "train", "val")]
            if not pool:
                continue
            pool.sort(key=lambda p: p.clip_id)
            reqs.append(ExprRequest(c, pool[int(rng.integers(len(pool)))], split))
    return reqs


def _arrays(clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    z = np.load(clip.path("features"))
    return z["expression"], z["pose"]


def style_classifiers(manifest: Manifest, seen_ids: list[str]):
    """(classifier for seen-style requests, classifier for unseen-style requests, held-out identities)."""
    from vastbench.evalnets.style_stats import StyleClassifier

    train = [(*_arrays(c), c.style) for c in manifest.split("train")]
    half = set(seen_ids[: len(seen_ids) // 2])
    unseen_fit = [(*_arrays(c), c.style) for c in manifest.split("test_unseen_style") if c.identity in half]
    return StyleClassifier.fit(train), StyleClassifier.fit(train + unseen_fit), set(seen_ids) - half


def evaluate_expressions(model_path: Path | None, reqs: list[ExprRequest], clf_seen, clf_unseen,
                         held_out: set[str], expr_dim: int = 11) -> dict:
    """Scores of one system (``model_path`` None = ground truth)."""
    from vastbench.data.synthtalk.face import MOUTH_EXPRESSIONS, UPPER_EXPRESSIONS

    model = None
    if model_path is not None:
        from vastbench.vast.checkpoint import load_model

        model = load_model(model_path)
    drives = load_vast_clips([r.driving for r in reqs])
    prompts = load_vast_clips([r.prompt for r in reqs])
    t0 = time.perf_counter()
    if model is not None:
        outs = model.generate_batch([np.concatenate([p["expression"], p["pose"]], 1) for p in prompts],
                                    [d["ppg"] for d in drives], seeds=[0] * len(reqs),
                                    prompt_ppgs=[p["ppg"] for p in prompts])
    else:
        outs = [np.concatenate([d["expression"], d["pose"]], 1) for d in drives]
    seconds = time.perf_counter() - t0
    mouth, upper, jaw, hits = [], [], [], {"test": [], "test_unseen_style": []}
    for r, d, out in zip(reqs, drives, outs):
        e, p = out[:, :expr_dim], out[:, expr_dim:]
        gt = d["expression"]
        mouth.append(np.abs(e[:, list(MOUTH_EXPRESSIONS)] - gt[:, list(MOUTH_EXPRESSIONS)]).mean())
        upper.append(np.abs(e[:, list(UPPER_EXPRESSIONS)] - gt[:, list(UPPER_EXPRESSIONS)]).mean())
        if e[:, 0].std() > 1e-6:
            jaw.append(np.corrcoef(e[:, 0], gt[:, 0])[0, 1])
        else:
            jaw.append(0.0)
        if r.split == "test":
            hits["test"].append(clf_seen.predict_clip(e, p) == r.prompt.style)
        elif r.driving.identity in held_out:
            hits["test_unseen_style"].append(clf_unseen.predict_clip(e, p) == r.prompt.style)
    frames = sum(len(o) for o in outs)
    return {"mouth_l1": float(np.mean(mouth)), "upper_l1": float(np.mean(upper)), "jaw_corr": float(np.mean(jaw)),
            "style_acc_seen": float(np.mean(hits["test"])), "style_acc_unseen": float(np.mean(hits["test_unseen_style"])),
            "n_seen": len(hits["test"]), "n_unseen": len(hits["test_unseen_style"]),
            "gen_fps": frames / max(seconds, 1e-9)}


def style_space(model_path: Path, manifest: Manifest) -> dict:
    """Active latent dimensions and a monotonic interpolation check between two styles."""
    from vastbench.vast.checkpoint import load_model

    model = load_model(model_path)
    clips = [c for c in manifest.split("test")]
    data = load_vast_clips(clips)
    codes = np.stack([model.style_code(np.concatenate([d["expression"], d["pose"]], 1), None, d["ppg"]).numpy()
                      for d in data])
    codes = codes[:, : model.cfg.latent_dim]   # zK only (the prompt-statistics part is not latent)
    active = int((codes.var(axis=0) > 0.01).sum())
    # Interpolate between a reserved and an emphatic prompt: jaw amplitude should move monotonically.
    by_style = {d["style"]: d for d in data}
    out = {"active_dims": active, "latent_dim": int(codes.shape[1])}
    if {"reserved", "emphatic"} <= set(by_style):
        a, b = by_style["reserved"], by_style["emphatic"]
        drive = data[0]
        stds = []
        for alpha in np.linspace(0, 1, 6):
            z = model.interpolate(np.concatenate([a["expression"], a["pose"]], 1),
                                  np.concatenate([b["expression"], b["pose"]], 1), float(alpha),
                                  ppg_a=a["ppg"], ppg_b=b["ppg"])
            gen = model.generate(None, None, drive["ppg"], style=z)
            stds.append(float(gen[:, 0].std()))
        out["interp_jaw_std"] = stds
        out["interp_monotonic"] = bool(np.all(np.diff(stds) >= -1e-4) or np.all(np.diff(stds) <= 1e-4))
    return out


def ablation_table(manifest: Manifest, cache_root: Path, variants=VARIANTS, preset: str = "quick", seed: int = 0,
                   steps: int | None = None, device: str = "cpu", progress=None) -> dict:
    """Train (or load) every variant, evaluate all, return rows + timings."""
    if not manifest.split("test_unseen_style"):
        raise VastbenchError(f"{manifest.path}: no test_unseen_style clips; the ablation table needs SynthTalk")
    reqs = make_requests(manifest, seed)
    seen_ids = sorted({c.identity for c in manifest.split("train")})
    clf_seen, clf_unseen, held = style_classifiers(manifest, seen_ids)
    rows = {"ground_truth": evaluate_expressions(None, reqs, clf_seen, clf_unseen, held)}
    timings, spaces = {}, {}
    for v in variants:
        t0 = time.perf_counter()
        path = train_variant(v, manifest, cache_root, preset, seed, steps, device, progress)
        timings[v] = round(time.perf_counter() - t0, 1)
        rows[v] = evaluate_expressions(path, reqs, clf_seen, clf_unseen, held)
        if v in ("vast", "no_flow", "no_enhancer"):
            spaces[v] = style_space(path, manifest)
    return {"rows": rows, "train_seconds": timings, "style_space": spaces,
            "n_requests": len(reqs)}
