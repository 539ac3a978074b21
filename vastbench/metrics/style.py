"""Style metrics: does the output speak in the prompt's style?

Both sides are measured the same way, so the comparison is symmetric and fair
across systems: the generated video and the style-prompt video are each run
through the frozen face capture (:mod:`vastbench.evalnets.face_capture`), and
their captured expression + pose sequences are embedded by the frozen,
independent style network (:mod:`vastbench.evalnets.style_net`; never VAST's own
encoder).

- ``style_sim``: cosine similarity of the two unit style embeddings (higher is
  better; a clip against itself gives 1).
- ``style_param_err`` (SynthTalk only): the 13 style parameters regressed from
  the generated clip's captured expressions (ridge on
  :func:`~vastbench.evalnets.style_stats.window_features`, shipped inside the
  style-net asset) against the prompt's *true* style parameters, RMS over
  parameters, each in units of its spread over the training styles (lower is
  better).  The truth is read from the prompt's feature file
  (``<dataset>/features/<prompt id>.npz``, beside ``video/``); a prompt without
  one is a per-clip error.

Both need at least 25 frames (1 s) per video; shorter clips are per-clip errors.

On an ingested dataset (:class:`~vastbench.metrics.base.CaptureMetric`) both videos
go through MediaPipe and the dataset's face model instead, so their expressions
are the dataset's PCA coefficients, which the style network (trained on
SynthTalk's 11 blendshapes) cannot embed.  ``style_sim`` is then labelled
``Style-Sim*`` and is the cosine similarity of the two clips' expression
statistics (per channel of expression and pose: mean, std, mean absolute
velocity, 10-90 % range; :func:`statistics_features`), each standardized by its
mean and spread over 3 s windows of the dataset's train clips (their stored
ground truth, the same space).  A clip against itself still gives 1.
``style_param_err`` needs SynthTalk's true style parameters and is a per-clip
error there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vastbench.errors import VastbenchError
from vastbench.evalnets import style_net
from vastbench.metrics.base import STYLE_PROMPT, CaptureMetric, EvalSample

STATS_MAX_CLIPS = 400   # train clips whose windows standardize the statistics (sorted by id: deterministic)


def style_similarity(net: style_net.StyleNet, a: dict, b: dict, what_a: str = "clip a", what_b: str = "clip b") -> float:
    """Cosine similarity of the style embeddings of two captured sequences (dicts with expression, pose)."""
    ea = net.embed(a["expression"], a["pose"], what_a)
    eb = net.embed(b["expression"], b["pose"], what_b)
    return float(np.clip(ea @ eb, -1.0, 1.0))


def statistics_features(expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Per channel of expression (T, E) and pose (T, 6): mean, std, mean |velocity|, 10-90 % range."""
    from vastbench.evalnets.style_stats import window_features

    d = np.shape(expression)[1] + np.shape(pose)[1]
    return window_features(np.asarray(expression), np.asarray(pose))[: 4 * d]   # no SynthTalk-specific cues


def dataset_statistics(manifest) -> dict[str, np.ndarray]:
    """Mean and spread of :func:`statistics_features` over 3 s windows of the train clips' stored expressions."""
    from vastbench.evalnets.style_stats import windows

    clips = sorted(manifest.split("train"), key=lambda c: c.clip_id)[:STATS_MAX_CLIPS]
    feats = []
    for clip in clips:
        with np.load(clip.path("features")) as z:
            e, p = z["expression"], z["pose"]
        feats += [statistics_features(we, wp) for we, wp in windows(e, p) if len(we) >= style_net.MIN_FRAMES]
    if len(feats) < 2:
        raise VastbenchError(f"{manifest.path}: Style-Sim* needs train clips of at least "
                             f"{style_net.MIN_FRAMES} frames to standardize its statistics")
    x = np.stack(feats)
    return {"mean": x.mean(0), "std": np.maximum(x.std(0), 1e-6), "clips": len(clips), "windows": len(x)}


def statistics_similarity(a: dict, b: dict, stats: dict, what_a: str = "clip a", what_b: str = "clip b") -> float:
    """Cosine similarity of the standardized :func:`statistics_features` of two captured sequences."""
    vecs = []
    for seq, what in ((a, what_a), (b, what_b)):
        if len(seq["expression"]) < style_net.MIN_FRAMES:
            raise VastbenchError(f"{what}: {len(seq['expression'])} frames is too short for a style comparison; "
                                 f"it needs at least {style_net.MIN_FRAMES} frames (1 s at 25 fps)")
        vecs.append((statistics_features(seq["expression"], seq["pose"]) - stats["mean"]) / stats["std"])
    va, vb = vecs
    return float(np.clip(va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-12), -1.0, 1.0))


def prompt_style_params(sample: EvalSample) -> np.ndarray:
    """The prompt's true SynthTalk style parameters, from its feature file."""
    if "prompt_style_params" in sample.cache:
        return np.asarray(sample.cache["prompt_style_params"])
    if sample.prompt is None:
        raise VastbenchError(f"request {sample.request.request_id}: style_param_err needs a style prompt and the request has none")
    p = Path(sample.prompt)
    feats = p.parent.parent / "features" / f"{p.stem}.npz"
    if not feats.exists():
        raise VastbenchError(f"style_param_err needs the prompt's ground-truth style parameters ({feats} not found); "
                             "it applies to SynthTalk prompts only, drop it from the suite for other data")
    with np.load(feats) as z:
        if "style_params" not in z.files:
            raise VastbenchError(f"{feats} has no style_params; style_param_err applies to SynthTalk prompts only")
        params = z["style_params"].astype(np.float64)
    sample.cache["prompt_style_params"] = params
    return params


class _StyleMetric(CaptureMetric):
    needs = frozenset({STYLE_PROMPT})

    def describe(self) -> dict:
        out = super().describe()
        out["style_net"] = style_net.load_shipped().sha256
        return out


class StyleSim(_StyleMetric):
    name = "style_sim"
    higher_is_better = True
    label = "Style-Sim"

    def bind_dataset(self, manifest) -> None:
        super().bind_dataset(manifest)
        self._stats = None
        self.label = type(self).label if self.capture_kind == "synthtalk" else "Style-Sim*"

    def statistics(self) -> dict:
        if getattr(self, "_stats", None) is None:
            self._stats = dataset_statistics(self.capture.manifest)
        return self._stats

    def describe(self) -> dict:
        if self.capture_kind == "synthtalk":
            return super().describe()
        out = CaptureMetric.describe(self)
        out["style_net"] = None
        out["substitute"] = "cosine similarity of standardized expression statistics (Style-Sim*)"
        return out

    def __call__(self, sample: EvalSample) -> float:
        gen = self.captured(sample, "generated")
        prompt = self.captured(sample, "prompt")
        if self.capture_kind == "synthtalk":
            return style_similarity(style_net.load_shipped(), gen, prompt, str(sample.generated), str(sample.prompt))
        return statistics_similarity(gen, prompt, self.statistics(), str(sample.generated), str(sample.prompt))


class StyleParamErr(_StyleMetric):
    name = "style_param_err"
    higher_is_better = False
    label = "Style-Param Err"

    def __call__(self, sample: EvalSample) -> float:
        params = prompt_style_params(sample)   # first: without SynthTalk's truth there is nothing to capture for
        gen = self.captured(sample, "generated")
        return style_net.load_shipped().style_param_error(gen["expression"], gen["pose"], params, str(sample.generated))
