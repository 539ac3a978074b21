"""Judge screening: ITU-R BT.500 observer screening + P.808-style rules.

:func:`screen_judges` returns one row per judge with each rule's numbers, its
flag, a one-line ``reason`` and ``excluded``; :func:`apply_screening` drops
the excluded judges' ratings.  Screening is advisory data: report it next to
the MOS (how many judges were excluded and why).

ITU-R BT.500 (Annex 2, "screening of the observers"), mapped onto our data
--------------------------------------------------------------------------
BT.500 scores ``u_ijkr`` of observer i for test condition j, sequence k,
repetition r.  Here a test condition is a *system*, a sequence is an *item*
(the same content rendered by each system), and every judge sees each clip
once, so R = 1; each of the three criteria is its own rating scale, so a
**presentation** is a (clip, criterion) pair -- clip = (system, item).  For
each presentation rated by at least ``bt500_min_ratings`` judges:

* mean ``u``, standard deviation ``S`` (n-1) and kurtosis
  ``beta2 = m4 / m2^2`` (population moments) over its judges;
* threshold ``2 S`` when ``2 <= beta2 <= 4`` (close to normal), else
  ``sqrt(20) S``;
* for each judge: ``P += 1`` if ``score >= u + threshold``, ``Q += 1`` if
  ``score <= u - threshold`` (presentations with ``S = 0`` count, but no
  judge can deviate there -- with a 5-point scale, ">=" would otherwise flag
  everyone on a unanimous clip).

BT.500 divides by J*K*R, the number of presentations every observer saw.  In
balanced incomplete designs judges see different subsets, so we divide by the
number of eligible presentations *the judge rated* (identical in a complete
design).  A judge is rejected when ``(P+Q)/n > 0.05`` and
``|(P-Q)/(P+Q)| < 0.3`` (deviations in both directions: inconsistent, not
merely severe or lenient).

P.808-style rules
-----------------
* ``gold``: gold pages whose ``expected`` rule fails (e.g. shifted audio rated
  above 2 on sync); flag when the failed fraction > ``max_gold_fail_frac``.
* ``trap``: instructed-response pages ("select 2") answered otherwise; flag
  when failures > ``max_trap_failures`` (default: any).
* ``straightline``: variance of the judge's regular scores (all criteria)
  < ``min_variance`` (0.1), with at least ``min_ratings`` ratings.
* ``too_fast``: fraction of pages (regular/gold/trap) with ``time_on_page_s <
  clip_duration_s`` > ``max_fast_frac``.
* ``low_corr`` (opt-in, not in the default ``rules``): Pearson correlation of
  the judge's regular scores with the mean of the other judges on the same
  (clip, criterion) < ``min_corr``.  BT.500 lets through a judge whose
  deviations are one-sided (its asymmetry test), e.g. an inverted-scale judge
  who is also lenient; this rule and the gold clips catch such judges.
A page is one clip shown to one judge (all criteria); a page fails a rule
when any of its rows fails.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from vastbench.errors import VastbenchError
from vastbench.mos.schema import check_expected, parse_expected, validate_ratings

RULES: tuple[str, ...] = ("bt500", "gold", "trap", "straightline", "too_fast")
#: Rules that are computed and may be opted into via ``rules=``.
OPTIONAL_RULES: tuple[str, ...] = ("low_corr",)


def bt500_counts(reg: pd.DataFrame, min_ratings: int = 4) -> pd.DataFrame:
    """BT.500 P/Q counts per judge from regular ratings (see module docstring).

    Columns: judge, bt500_n (eligible presentations rated), bt500_P, bt500_Q,
    bt500_ratio ((P+Q)/n), bt500_asym (|P-Q|/(P+Q), NaN when P+Q = 0).
    """
    r = reg[["judge", "clip", "criterion", "score"]].copy()
    r["score"] = r["score"].astype(float)
    g = r.groupby(["clip", "criterion"])["score"]
    n = g.transform("count")
    mean = g.transform("mean")
    dev = r["score"] - mean
    m2 = (dev**2).groupby([r["clip"], r["criterion"]]).transform("mean")
    m4 = (dev**4).groupby([r["clip"], r["criterion"]]).transform("mean")
    S = np.sqrt(m2 * n / (n - 1).where(n > 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        beta2 = m4 / m2**2
    normal = (beta2 >= 2) & (beta2 <= 4)
    thr = np.where(normal, 2.0, math.sqrt(20.0)) * S
    elig = n >= min_ratings
    pos = elig & (S > 0) & (r["score"] >= mean + thr)
    neg = elig & (S > 0) & (r["score"] <= mean - thr)
    out = pd.DataFrame({"judge": r["judge"], "n": elig.astype(int), "P": pos.astype(int), "Q": neg.astype(int)})
    agg = out.groupby("judge").sum()
    res = pd.DataFrame({
        "judge": agg.index,
        "bt500_n": agg["n"].to_numpy(),
        "bt500_P": agg["P"].to_numpy(),
        "bt500_Q": agg["Q"].to_numpy(),
    })
    pq = res["bt500_P"] + res["bt500_Q"]
    res["bt500_ratio"] = np.where(res["bt500_n"] > 0, pq / res["bt500_n"].where(res["bt500_n"] > 0), np.nan)
    res["bt500_asym"] = np.where(pq > 0, (res["bt500_P"] - res["bt500_Q"]).abs() / pq.where(pq > 0), np.nan)
    return res.reset_index(drop=True)


def _page_fail(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (judge, clip) page of gold/trap rows: checked (has a rule) and failed."""
    checked = rows["expected"].map(lambda e: parse_expected(e) is not None)
    failed = [bool(c) and not check_expected(s, e) for c, s, e in zip(checked, rows["score"], rows["expected"])]
    t = pd.DataFrame({"judge": rows["judge"].to_numpy(), "clip": rows["clip"].to_numpy(),
                      "checked": checked.to_numpy(bool), "failed": np.asarray(failed, bool)})
    page = t.groupby(["judge", "clip"]).agg(checked=("checked", "any"), failed=("failed", "any")).reset_index()
    page = page[page["checked"]]
    return page.groupby("judge").agg(n=("checked", "size"), failed=("failed", "sum"))


def screen_judges(
    df: pd.DataFrame,
    *,
    rules: Iterable[str] = RULES,
    bt500_min_ratings: int = 4,
    max_gold_fail_frac: float = 1 / 3,
    max_trap_failures: int = 0,
    min_variance: float = 0.1,
    min_ratings: int = 5,
    max_fast_frac: float = 0.1,
    min_corr: float = 0.25,
    source: str = "ratings",
) -> pd.DataFrame:
    """Screen every judge; see the module docstring for each rule.

    ``rules``: which rules may *exclude* a judge (all are always computed).
    Returns a DataFrame, one row per judge: n_regular, n_pages, the BT.500
    columns (:func:`bt500_counts`) and ``flag_bt500``, ``gold_n``,
    ``gold_failed``, ``flag_gold``, ``trap_n``, ``trap_failed``,
    ``flag_trap``, ``rating_var``, ``flag_straightline``, ``fast_frac``,
    ``flag_too_fast``, ``corr_others``, ``flag_low_corr``, ``excluded``, ``reason`` (one line; empty when kept),
    ``note`` (e.g. too few ratings to screen).  ``attrs["problems"]`` holds
    the validation lines.
    """
    rules = tuple(rules)
    bad = [r for r in rules if r not in RULES + OPTIONAL_RULES]
    if bad:
        raise VastbenchError(f"unknown screening rules {bad}; use any of {', '.join(RULES + OPTIONAL_RULES)}")
    clean, problems = validate_ratings(df, source)
    judges = sorted(set(clean["judge"]))
    reg = clean[clean["kind"] == "regular"]
    out = pd.DataFrame({"judge": judges})
    out["n_regular"] = out["judge"].map(reg.groupby("judge").size()).fillna(0).astype(int)
    scored = clean[clean["kind"].isin(("regular", "gold", "trap"))]
    out["n_pages"] = out["judge"].map(scored.groupby("judge")["clip"].nunique()).fillna(0).astype(int)

    bt = bt500_counts(reg, bt500_min_ratings).set_index("judge")
    for c in ("bt500_n", "bt500_P", "bt500_Q"):
        out[c] = out["judge"].map(bt[c]).fillna(0).astype(int)
    for c in ("bt500_ratio", "bt500_asym"):
        out[c] = out["judge"].map(bt[c]).astype(float)
    out["flag_bt500"] = (out["bt500_ratio"] > 0.05) & (out["bt500_asym"] < 0.3)

    for kind in ("gold", "trap"):
        rows = clean[clean["kind"] == kind]
        pf = _page_fail(rows) if len(rows) else pd.DataFrame(columns=["n", "failed"])
        out[f"{kind}_n"] = out["judge"].map(pf["n"]).fillna(0).astype(int)
        out[f"{kind}_failed"] = out["judge"].map(pf["failed"]).fillna(0).astype(int)
    out["flag_gold"] = (out["gold_n"] > 0) & (out["gold_failed"] > max_gold_fail_frac * out["gold_n"] + 1e-9)
    out["flag_trap"] = out["trap_failed"] > max_trap_failures

    var = reg.groupby("judge")["score"].var(ddof=1)
    out["rating_var"] = out["judge"].map(var).astype(float)
    out["flag_straightline"] = (out["n_regular"] >= min_ratings) & (out["rating_var"] < min_variance)

    timed = scored.groupby(["judge", "clip"]).agg(t=("time_on_page_s", "max"), d=("clip_duration_s", "max")).reset_index()
    timed = timed[np.isfinite(timed["t"]) & np.isfinite(timed["d"])]
    fast = (timed["t"] < timed["d"]).groupby(timed["judge"]).mean()
    out["fast_frac"] = out["judge"].map(fast).astype(float)
    out["flag_too_fast"] = out["fast_frac"] > max_fast_frac

    r = reg[["judge", "clip", "criterion", "score"]].copy()
    r["score"] = r["score"].astype(float)
    g = r.groupby(["clip", "criterion"])["score"]
    cnt = g.transform("count")
    r["others"] = (g.transform("sum") - r["score"]) / (cnt - 1).where(cnt > 1)
    r = r[cnt > 1]

    def _pearson(sub):
        x, y = sub["score"].to_numpy(), sub["others"].to_numpy()
        if len(x) < 3 or x.std() == 0 or y.std() == 0:
            return np.nan
        return float(np.corrcoef(x, y)[0, 1])

    corr = {j: _pearson(sub) for j, sub in r.groupby("judge")}
    out["corr_others"] = out["judge"].map(corr).astype(float)
    out["flag_low_corr"] = out["corr_others"] < min_corr

    reasons, notes = [], []
    for _, r in out.iterrows():
        parts = []
        if r["flag_bt500"]:
            parts.append(f"BT.500: (P+Q)/n={r['bt500_P'] + r['bt500_Q']}/{r['bt500_n']}={r['bt500_ratio']:.1%} > 5% "
                         f"with |P-Q|/(P+Q)={r['bt500_asym']:.2f} < 0.3")
        if r["flag_gold"]:
            parts.append(f"gold: failed {r['gold_failed']}/{r['gold_n']} > {max_gold_fail_frac:.0%}")
        if r["flag_trap"]:
            parts.append(f"trap: failed {r['trap_failed']}/{r['trap_n']}")
        if r["flag_straightline"]:
            parts.append(f"straight-lining: rating variance {r['rating_var']:.3f} < {min_variance}")
        if r["flag_low_corr"]:
            parts.append(f"low correlation with the other judges: r={r['corr_others']:.2f} < {min_corr}")
        if r["flag_too_fast"]:
            parts.append(f"too fast: {r['fast_frac']:.0%} of pages left before the clip ended > {max_fast_frac:.0%}")
        reasons.append(parts)
        nt = []
        if r["bt500_n"] == 0:
            nt.append("no presentation with enough judges for BT.500")
        if r["n_regular"] < min_ratings:
            nt.append(f"only {r['n_regular']} regular rating(s): straight-lining not checked")
        if not np.isfinite(r["fast_frac"]):
            nt.append("no timing data")
        notes.append("; ".join(nt))
    flag_col = {"bt500": "flag_bt500", "gold": "flag_gold", "trap": "flag_trap", "straightline": "flag_straightline",
                "too_fast": "flag_too_fast", "low_corr": "flag_low_corr"}
    out["excluded"] = False
    for rname in rules:
        out["excluded"] |= out[flag_col[rname]].astype(bool)
    prefixes = {"bt500": "BT.500", "gold": "gold", "trap": "trap", "straightline": "straight", "too_fast": "too fast", "low_corr": "low corr"}
    out["reason"] = [
        "; ".join(p for p in parts if any(p.startswith(prefixes[rn]) for rn in rules)) if ex else ""
        for parts, ex in zip(reasons, out["excluded"])
    ]
    out["note"] = notes
    out.attrs["problems"] = problems
    out.attrs["rules"] = list(rules)
    return out


def excluded_judges(screening: pd.DataFrame) -> list[str]:
    """Judges marked ``excluded`` by :func:`screen_judges`."""
    return sorted(screening.loc[screening["excluded"].astype(bool), "judge"].astype(str))


def apply_screening(df: pd.DataFrame, screening: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the excluded judges' rows (all kinds)."""
    ex = set(excluded_judges(screening))
    return df[~df["judge"].astype(str).isin(ex)].reset_index(drop=True)


__all__ = ["RULES", "OPTIONAL_RULES", "bt500_counts", "screen_judges", "excluded_judges", "apply_screening"]
