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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vastbench.errors import VastbenchError
from vastbench.evalnets import face_capture, style_net
from vastbench.metrics.base import STYLE_PROMPT, EvalSample, Metric


def style_similarity(net: style_net.StyleNet, a: dict, b: dict, what_a: str = "clip a", what_b: str = "clip b") -> float:
    """Cosine similarity of the style embeddings of two captured sequences (dicts with expression, pose)."""
    ea = net.embed(a["expression"], a["pose"], what_a)
    eb = net.embed(b["expression"], b["pose"], what_b)
    return float(np.clip(ea @ eb, -1.0, 1.0))


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


class _StyleMetric(Metric):
    needs = frozenset({STYLE_PROMPT})

    def describe(self) -> dict:
        out = super().describe()
        out["style_net"] = style_net.load_shipped().sha256
        out["face_capture"] = face_capture.load_shipped().sha256
        return out


class StyleSim(_StyleMetric):
    name = "style_sim"
    higher_is_better = True
    label = "Style-Sim"

    def __call__(self, sample: EvalSample) -> float:
        gen = face_capture.capture_sample(sample, "generated")
        prompt = face_capture.capture_sample(sample, "prompt")
        return style_similarity(style_net.load_shipped(), gen, prompt, str(sample.generated), str(sample.prompt))


class StyleParamErr(_StyleMetric):
    name = "style_param_err"
    higher_is_better = False
    label = "Style-Param Err"

    def __call__(self, sample: EvalSample) -> float:
        gen = face_capture.capture_sample(sample, "generated")
        return style_net.load_shipped().style_param_error(gen["expression"], gen["pose"], prompt_style_params(sample),
                                                          str(sample.generated))
