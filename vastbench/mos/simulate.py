"""Simulated judges, for demos and tests.  Every row has ``simulated=True``.

Generative model (per criterion ``c``; judges ``j``, items ``i``, systems ``s``)::

    q[s,i,c] = m[s,c] + v[i,c] + w[s,i,c]                      clip's latent quality
    L[j,s,i,c] = 3 + (1 + a[j]) * (q[s,i,c] - 3) + b[j] + e     judge's latent opinion
    score = clip(round(L), 1, 5)

with ``v ~ N(0, item_sd^2)`` (content difficulty, shared by all systems),
``w ~ N(0, clip_sd^2)`` (system x item interaction), ``b ~ N(0,
judge_bias_sd^2)`` (lenient/severe judges), ``a ~ N(0, judge_scale_sd^2)``
(judges who use more or less of the scale -- this makes a judge x system
interaction), ``e ~ N(0, noise_sd^2)``.  Judge effects are shared by the
three criteria; item, clip and noise effects are drawn per criterion.

Rounding and clipping make ``m[s,c]`` *not* the expected score: the "true
MOS" that an estimator targets is ``E[score]`` over judges, items and noise.
:func:`expected_mos` computes it exactly (conditionally on ``a`` the latent is
Gaussian, so ``E[score] = 1 + sum_{k=1..4} Phi((mu_a - k - 0.5)/tau_a)``,
integrated over ``a`` by Gauss-Hermite quadrature); it is also stored in
``df.attrs["true_mos"]``.  Outlier judges are excluded from that target.

Outlier judges: ``"random"`` (uniform 1..5, ignores the clip and fails
traps), ``"inverted"`` (``6 - score`` of a consistent judge; attentive, so
passes traps -- only BT.500 screening catches them).  Straight-liners give one
score to everything; fast judges leave most pages before the clip ends.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from vastbench.errors import VastbenchError
from vastbench.mos.schema import CRITERION_NAMES, RATING_COLUMNS

#: Default latent means per system (all criteria), a typical 4-system study.
DEFAULT_SYSTEM_EFFECTS: dict[str, float] = {"ground_truth": 4.4, "vast": 3.9, "baseline_a": 3.3, "baseline_b": 2.7}

#: criterion -> (metric, higher_is_better) used by :func:`ratings_from_metrics`.
DEFAULT_METRIC_MAPPING: dict[str, tuple[str, bool]] = {
    "sync": ("lse_c", True),
    "expressiveness": ("style_sim", True),
    "naturalness": ("ssim", True),
}

GOLD_SYSTEM, TRAP_SYSTEM, TRAINING_SYSTEM = "__gold__", "__trap__", "__training__"
_GOLD_LATENT = {"sync": 1.0, "expressiveness": 3.2, "naturalness": 3.4}  # shifted-audio clip
_TRAP_ANSWER = 2  # instructed response: "select 2 for every question on this page"


def _clip_id(study: str, system: str, item: str) -> str:
    return "c" + hashlib.sha1(f"{study}|{system}|{item}".encode()).hexdigest()[:10]


def _effects_table(system_effects, criteria: Sequence[str]) -> dict[tuple[str, str], float]:
    if system_effects is None:
        system_effects = DEFAULT_SYSTEM_EFFECTS
    out: dict[tuple[str, str], float] = {}
    for k, v in system_effects.items():
        if isinstance(k, tuple):
            if len(k) != 2:
                raise VastbenchError(f"system_effects key {k!r} must be (system, criterion); use {{('vast', 'sync'): 4.0}}")
            if k[1] in criteria:
                out[(str(k[0]), str(k[1]))] = float(v)
        else:
            for c in criteria:
                out.setdefault((str(k), c), float(v))
    if not out:
        raise VastbenchError("system_effects gives no mean for the requested criteria; pass {system: mean} or {(system, criterion): mean}")
    return out


def expected_mos(
    system_effects=None,
    *,
    criteria: Sequence[str] | None = None,
    judge_bias_sd: float = 0.3,
    judge_scale_sd: float = 0.1,
    item_sd: float = 0.3,
    clip_sd: float = 0.15,
    noise_sd: float = 0.6,
    n_quad: int = 48,
) -> dict[tuple[str, str], float]:
    """Exact ``E[clip(round(L), 1, 5)]`` per (system, criterion) under the
    model of this module -- the target a MOS CI should cover."""
    criteria = list(criteria or CRITERION_NAMES)
    eff = _effects_table(system_effects, criteria)
    x, w = np.polynomial.hermite_e.hermegauss(n_quad)  # weight exp(-x^2/2)
    w = w / w.sum()
    a = judge_scale_sd * x if judge_scale_sd > 0 else np.zeros(1)
    wa = w if judge_scale_sd > 0 else np.ones(1)
    ks = np.arange(1, 5)[:, None] + 0.5
    out = {}
    for key, m in eff.items():
        mu = 3 + (1 + a) * (m - 3)
        tau = np.sqrt((1 + a) ** 2 * (item_sd**2 + clip_sd**2) + judge_bias_sd**2 + noise_sd**2)
        if np.all(tau == 0):
            val = float(np.clip(np.round(m), 1, 5))
        else:
            val = float(np.sum(wa * (1 + stats.norm.cdf((mu[None, :] - ks) / tau[None, :]).sum(axis=0))))
        out[key] = val
    return out


def _assignment(systems, items, judges, ratings_per_clip, rng) -> pd.DataFrame:
    """Full factorial, or a balanced incomplete design: the same k judges rate
    every system's rendering of an item (keeps items paired), judge sets
    rotate over items so every judge gets the same load (when I*k % J == 0)."""
    J = len(judges)
    rows = []
    if ratings_per_clip is None or ratings_per_clip >= J:
        for j in judges:
            for s in systems:
                for i in items:
                    rows.append((j, s, i))
    else:
        k = int(ratings_per_clip)
        if k < 1:
            raise VastbenchError(f"ratings_per_clip={k} must be >= 1")
        perm = rng.permutation(J)
        for ii, i in enumerate(items):
            js = [judges[perm[(ii * k + t) % J]] for t in range(k)]
            for j in js:
                for s in systems:
                    rows.append((j, s, i))
    return pd.DataFrame(rows, columns=["judge", "system", "item"])


def _rate(
    quality: pd.DataFrame,
    assign: pd.DataFrame,
    judges: list[str],
    *,
    criteria: Sequence[str],
    judge_bias_sd: float,
    judge_scale_sd: float,
    noise_sd: float,
    outliers: dict[str, str],
    straightliners: Sequence[str],
    fast: Sequence[str],
    n_gold: int,
    n_trap: int,
    n_training: int,
    items: list[str],
    durations: dict[str, float],
    rng: np.random.Generator,
    study: str,
) -> pd.DataFrame:
    J = len(judges)
    bias = dict(zip(judges, rng.normal(0, judge_bias_sd, J)))
    scale = dict(zip(judges, rng.normal(0, judge_scale_sd, J)))
    straight_score = {j: int(rng.integers(3, 5)) for j in straightliners}

    pages = assign.copy()
    pages["kind"] = "regular"
    extra = []
    for j in judges:
        for g in range(n_gold):
            extra.append((j, GOLD_SYSTEM, f"gold{g:02d}", "gold"))
        for t in range(n_trap):
            extra.append((j, TRAP_SYSTEM, f"trap{t:02d}", "trap"))
        for t in range(n_training):
            extra.append((j, TRAINING_SYSTEM, f"training{t:02d}", "training"))
    if extra:
        pages = pd.concat([pages, pd.DataFrame(extra, columns=["judge", "system", "item", "kind"])], ignore_index=True)

    # durations and time on page (one page shows one clip and all criteria)
    def dur(item):
        if item not in durations:
            durations[item] = float(np.round(rng.uniform(3.0, 8.0), 2))
        return durations[item]

    pages["clip_duration_s"] = [dur(i) for i in pages["item"]]
    t_extra = rng.gamma(2.0, 2.5, len(pages))
    top = pages["clip_duration_s"].to_numpy() + t_extra
    is_fast = pages["judge"].isin(list(fast)).to_numpy() & (rng.random(len(pages)) < 0.7)
    top = np.where(is_fast, pages["clip_duration_s"].to_numpy() * rng.uniform(0.15, 0.9, len(pages)), top)
    pages["time_on_page_s"] = np.round(top, 2)
    # presentation order, randomized per judge; timestamps follow it
    pages["_order"] = rng.random(len(pages))
    pages.loc[pages["kind"] == "training", "_order"] -= 1.0  # training first
    pages = pages.sort_values(["judge", "_order"], kind="stable").reset_index(drop=True)
    base = datetime(2024, 1, 1, 9, 0, 0)
    starts = {j: base + timedelta(hours=k) for k, j in enumerate(judges)}
    elapsed = pages.groupby("judge")["time_on_page_s"].cumsum() - pages["time_on_page_s"]
    pages["created_at"] = [
        (starts[j] + timedelta(seconds=float(e) + float(t))).isoformat(timespec="seconds")
        for j, e, t in zip(pages["judge"], elapsed, pages["time_on_page_s"])
    ]

    rows = pages.loc[pages.index.repeat(len(criteria))].reset_index(drop=True)
    rows["criterion"] = list(criteria) * len(pages)
    q = quality.set_index(["system", "item", "criterion"])["quality"]
    key = pd.MultiIndex.from_frame(rows[["system", "item", "criterion"]])
    qv = np.array(q.reindex(key).to_numpy(dtype=float), copy=True)
    gold = (rows["kind"] == "gold").to_numpy()
    qv[gold] = rows.loc[gold, "criterion"].map(_GOLD_LATENT).fillna(3.0).to_numpy()
    train = (rows["kind"] == "training").to_numpy()
    qv[train] = 4.0
    a = rows["judge"].map(scale).to_numpy()
    b = rows["judge"].map(bias).to_numpy()
    latent = 3 + (1 + a) * (qv - 3) + b + rng.normal(0, noise_sd, len(rows))
    score = np.clip(np.round(latent), 1, 5)
    trap = (rows["kind"] == "trap").to_numpy()
    score[trap] = _TRAP_ANSWER
    for j, kind in outliers.items():
        m = (rows["judge"] == j).to_numpy()
        if kind == "random":
            score[m] = rng.integers(1, 6, m.sum())
        elif kind == "inverted":
            score[m & ~trap] = 6 - score[m & ~trap]
    for j in straightliners:
        m = (rows["judge"] == j).to_numpy()
        score[m] = straight_score[j]
    if np.isnan(score).any():
        raise VastbenchError("simulation: a (system, item, criterion) has no latent quality; give every system a mean for every criterion")
    rows["score"] = score.astype(np.int64)
    rows["expected"] = None
    rows.loc[gold & (rows["criterion"] == "sync").to_numpy(), "expected"] = "<=2"
    rows.loc[trap, "expected"] = f"=={_TRAP_ANSWER}"
    rows["study"] = study
    rows["clip"] = [_clip_id(study, s, i) for s, i in zip(rows["system"], rows["item"])]
    rows["simulated"] = True
    out = rows[list(RATING_COLUMNS)].copy()
    out["expected"] = out["expected"].astype(object)
    return out


def _names(prefix: str, n_or_list, width: int = 2) -> list[str]:
    if isinstance(n_or_list, (int, np.integer)):
        return [f"{prefix}{k:0{width}d}" for k in range(int(n_or_list))]
    return [str(x) for x in n_or_list]


def _pick_special(judges, rng, outlier_judges, outlier_kind, straightliners, fast_judges):
    pool = list(rng.permutation(len(judges)))
    taken = []

    def take(spec):
        if isinstance(spec, (int, np.integer)):
            chosen = []
            for _ in range(int(spec)):
                if not pool:
                    raise VastbenchError("simulation: more outlier/straight-lining/fast judges than judges; lower their counts")
                chosen.append(judges[pool.pop(0)])
            return chosen
        return [str(j) for j in spec]

    outl = take(outlier_judges)
    kinds = {}
    for k, j in enumerate(outl):
        kind = outlier_kind if outlier_kind != "mixed" else ("random", "inverted")[k % 2]
        if kind not in ("random", "inverted"):
            raise VastbenchError(f"outlier_kind={outlier_kind!r}; use 'random', 'inverted' or 'mixed'")
        kinds[j] = kind
    taken += outl
    straight = take(straightliners)
    fast = take(fast_judges)
    return kinds, straight, fast


def simulate_ratings(
    design: pd.DataFrame | None = None,
    system_effects: Mapping | None = None,
    *,
    n_items: int | Sequence[str] = 20,
    n_judges: int | Sequence[str] = 15,
    ratings_per_clip: int | None = None,
    criteria: Sequence[str] | None = None,
    judge_bias_sd: float = 0.3,
    judge_scale_sd: float = 0.1,
    item_sd: float = 0.3,
    clip_sd: float = 0.15,
    noise_sd: float = 0.6,
    outlier_judges: int | Sequence[str] = 0,
    outlier_kind: str = "random",
    straightliners: int | Sequence[str] = 0,
    fast_judges: int | Sequence[str] = 0,
    n_gold: int = 0,
    n_trap: int = 0,
    n_training: int = 0,
    seed: int = 0,
    study: str = "simulated",
) -> pd.DataFrame:
    """Simulated ratings in the schema of :data:`RATING_COLUMNS`.

    ``design``: ``None`` for a full factorial (every judge rates every
    system's clip of every item on every criterion; with ``ratings_per_clip=k``
    a balanced incomplete design where k judges rate each item, for all
    systems), or an explicit assignment DataFrame with columns ``judge,
    system, item``.  ``system_effects``: ``{system: mean}`` or ``{(system,
    criterion): mean}`` latent means (see module docstring; default
    :data:`DEFAULT_SYSTEM_EFFECTS`).  ``n_gold``/``n_trap``/``n_training``:
    gold (shifted-audio, expected sync ``<=2``), trap (instructed response
    ``==2``) and training clips shown to every judge.

    ``df.attrs`` carries the ground truth: ``true_mos`` {(system, criterion):
    E[score]}, ``judge_roles`` {judge: "consistent" | "random" | "inverted" |
    "straightliner" | "fast"}, and the generating parameters.
    """
    criteria = list(criteria or CRITERION_NAMES)
    bad = [c for c in criteria if c not in CRITERION_NAMES]
    if bad:
        raise VastbenchError(f"unknown criteria {bad}; use {', '.join(CRITERION_NAMES)}")
    rng = np.random.default_rng(seed)
    eff = _effects_table(system_effects, criteria)
    systems = sorted({s for s, _ in eff}, key=list(dict.fromkeys(s for s, _ in eff)).index)
    if design is not None:
        need = {"judge", "system", "item"} - set(design.columns)
        if need:
            raise VastbenchError(f"design is missing columns {sorted(need)}; give one row per (judge, system, item) to rate")
        assign = design[["judge", "system", "item"]].astype(str).drop_duplicates().reset_index(drop=True)
        judges = list(dict.fromkeys(assign["judge"]))
        items = list(dict.fromkeys(assign["item"]))
        unknown = sorted(set(assign["system"]) - set(systems))
        if unknown:
            raise VastbenchError(f"design names systems without a mean: {unknown}; add them to system_effects")
    else:
        items = _names("item", n_items, 3)
        judges = _names("judge", n_judges)
        assign = _assignment(systems, items, judges, ratings_per_clip, rng)
    # latent clip quality
    q_rows = []
    for c in criteria:
        v = dict(zip(items, rng.normal(0, item_sd, len(items))))
        for s in systems:
            if (s, c) not in eff:
                continue
            w = rng.normal(0, clip_sd, len(items))
            for k, i in enumerate(items):
                q_rows.append((s, i, c, eff[(s, c)] + v[i] + w[k]))
    quality = pd.DataFrame(q_rows, columns=["system", "item", "criterion", "quality"])
    outl, straight, fast = _pick_special(judges, rng, outlier_judges, outlier_kind, straightliners, fast_judges)
    df = _rate(
        quality, assign, judges, criteria=criteria, judge_bias_sd=judge_bias_sd, judge_scale_sd=judge_scale_sd,
        noise_sd=noise_sd, outliers=outl, straightliners=straight, fast=fast, n_gold=n_gold, n_trap=n_trap,
        n_training=n_training, items=items, durations={}, rng=rng, study=study,
    )
    roles = {j: "consistent" for j in judges}
    roles.update(outl)
    roles.update({j: "straightliner" for j in straight})
    roles.update({j: "fast" for j in fast})
    df.attrs["true_mos"] = expected_mos(
        eff, criteria=criteria, judge_bias_sd=judge_bias_sd, judge_scale_sd=judge_scale_sd,
        item_sd=item_sd, clip_sd=clip_sd, noise_sd=noise_sd,
    )
    df.attrs["judge_roles"] = roles
    df.attrs["params"] = dict(
        judge_bias_sd=judge_bias_sd, judge_scale_sd=judge_scale_sd, item_sd=item_sd, clip_sd=clip_sd,
        noise_sd=noise_sd, seed=seed,
    )
    return df


def ratings_from_metrics(
    per_clip_metrics: pd.DataFrame,
    mapping: Mapping | None = None,
    *,
    n_judges: int | Sequence[str] = 15,
    ratings_per_clip: int | None = None,
    judge_bias_sd: float = 0.3,
    judge_scale_sd: float = 0.1,
    clip_sd: float = 0.2,
    noise_sd: float = 0.6,
    outlier_judges: int | Sequence[str] = 0,
    outlier_kind: str = "random",
    n_gold: int = 0,
    n_trap: int = 0,
    seed: int = 0,
    study: str = "simulated-from-metrics",
) -> pd.DataFrame:
    """Simulated ratings whose latent clip quality follows objective metrics.

    ``per_clip_metrics``: long table ``system, item, metric, value``.
    ``mapping``: ``{criterion: metric}``, ``{criterion: (metric,
    higher_is_better)}`` or ``{criterion: {"metric": m, "higher_is_better":
    bool, "lo": x, "hi": y}}``; default :data:`DEFAULT_METRIC_MAPPING`
    (criteria whose metric is absent are skipped).  The metric value is
    mapped linearly to a latent quality in [1, 5] (``lo`` -> 1, ``hi`` -> 5,
    default the 5th/95th percentiles over clips, swapped when lower is
    better), plus ``clip_sd`` unexplained clip variation; judges then rate as
    in :func:`simulate_ratings`.  For demos only -- label results simulated.
    """
    need = {"system", "item", "metric", "value"} - set(per_clip_metrics.columns)
    if need:
        raise VastbenchError(f"per_clip_metrics is missing columns {sorted(need)}; give a long table system, item, metric, value")
    rng = np.random.default_rng(seed)
    mapping = dict(mapping or DEFAULT_METRIC_MAPPING)
    m = per_clip_metrics.copy()
    m["system"], m["item"], m["metric"] = m["system"].astype(str), m["item"].astype(str), m["metric"].astype(str)
    m["value"] = pd.to_numeric(m["value"], errors="coerce")
    m = m.dropna(subset=["value"]).groupby(["system", "item", "metric"], as_index=False)["value"].mean()
    q_rows = []
    criteria = []
    for crit, spec in mapping.items():
        if crit not in CRITERION_NAMES:
            raise VastbenchError(f"mapping names unknown criterion {crit!r}; use {', '.join(CRITERION_NAMES)}")
        if isinstance(spec, str):
            spec = {"metric": spec}
        elif isinstance(spec, tuple):
            spec = {"metric": spec[0], "higher_is_better": spec[1]}
        sub = m[m["metric"] == spec["metric"]]
        if sub.empty:
            continue
        hib = bool(spec.get("higher_is_better", True))
        lo = spec.get("lo", float(np.quantile(sub["value"], 0.05 if hib else 0.95)))
        hi = spec.get("hi", float(np.quantile(sub["value"], 0.95 if hib else 0.05)))
        span = (hi - lo) if hi != lo else 1.0
        qual = 1 + 4 * np.clip((sub["value"].to_numpy() - lo) / span, 0, 1)
        qual = qual + rng.normal(0, clip_sd, len(qual))
        criteria.append(crit)
        q_rows += list(zip(sub["system"], sub["item"], [crit] * len(sub), qual))
    if not q_rows:
        raise VastbenchError(
            f"none of the mapped metrics ({', '.join(str(v) for v in mapping.values())}) is in per_clip_metrics "
            f"(has {', '.join(sorted(m['metric'].unique())[:8])}); pass mapping={{criterion: metric}}"
        )
    quality = pd.DataFrame(q_rows, columns=["system", "item", "criterion", "quality"])
    # only (system, item) pairs with a quality for every mapped criterion
    full = quality.groupby(["system", "item"])["criterion"].nunique()
    full = full[full == len(criteria)].reset_index()[["system", "item"]]
    quality = quality.merge(full, on=["system", "item"])
    systems = list(dict.fromkeys(full["system"]))
    items = list(dict.fromkeys(full["item"]))
    judges = _names("judge", n_judges)
    assign = _assignment(systems, items, judges, ratings_per_clip, rng).merge(full, on=["system", "item"])
    outl, straight, fast = _pick_special(judges, rng, outlier_judges, outlier_kind, 0, 0)
    df = _rate(
        quality, assign, judges, criteria=criteria, judge_bias_sd=judge_bias_sd, judge_scale_sd=judge_scale_sd,
        noise_sd=noise_sd, outliers=outl, straightliners=straight, fast=fast, n_gold=n_gold, n_trap=n_trap,
        n_training=0, items=items, durations={}, rng=rng, study=study,
    )
    roles = {j: "consistent" for j in judges}
    roles.update(outl)
    df.attrs["judge_roles"] = roles
    return df


__all__ = [
    "simulate_ratings", "ratings_from_metrics", "expected_mos",
    "DEFAULT_SYSTEM_EFFECTS", "DEFAULT_METRIC_MAPPING", "GOLD_SYSTEM", "TRAP_SYSTEM", "TRAINING_SYSTEM",
]
