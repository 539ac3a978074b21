"""Live views of a running study for the admin page: progress, QC flags, MOS.

Pure functions of what :class:`~vastbench.mos.db.Store` returns, so they are
tested without Streamlit.  These are quick live checks; the full screening
(ITU-R BT.500, P.808 rules) and the mixed-model statistics run on the export.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STRAIGHT_MIN_PAGES = 6
STRAIGHT_SHARE = 0.9


def _page_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per judge x clip with kind, score list, too-fast flag and the expected check."""
    from vastbench.mos.schema import check_expected

    if ratings.empty:
        return pd.DataFrame(columns=["judge", "clip", "kind", "n", "same", "too_fast", "failed", "checked"])
    r = ratings.copy()
    r["ok"] = [check_expected(s, e) for s, e in zip(r["score"], r["expected"])]
    r["too_fast"] = r["time_on_page_s"].astype(float) < r["clip_duration_s"].astype(float)
    g = r.groupby(["judge", "clip"], sort=False)
    return pd.DataFrame({
        "kind": g["kind"].first(),
        "n": g.size(),
        "same": g["score"].nunique() == 1,
        "too_fast": g["too_fast"].any(),
        "failed": g["ok"].agg(lambda s: any(v is False for v in s)),
        "checked": g["ok"].agg(lambda s: any(v is not None for v in s)),
    }).reset_index()


def judge_progress(store, study_id: str) -> pd.DataFrame:
    judges = store.judges(study_id)
    assign = pd.DataFrame(store.assignments(study_id), columns=["judge_id", "position", "clip_id"])
    raw = pd.DataFrame(store.raw_ratings(study_id))
    n_crit = len(store.study(study_id)["criteria"])
    rows = []
    for j in judges:
        jid = j["judge_id"]
        pages = int((assign["judge_id"] == jid).sum())
        mine = raw[raw["judge_id"] == jid] if len(raw) else raw
        done = int((mine.groupby("clip_id").size() >= n_crit).sum()) if len(mine) else 0
        rows.append({"judge": jid, "pages": pages, "rated": done,
                     "percent": round(100.0 * done / pages, 1) if pages else 0.0,
                     "last_rating": mine["updated_at"].max() if len(mine) else "",
                     "revoked": bool(j["revoked_at"]), "completed": pages > 0 and done == pages})
    return pd.DataFrame(rows, columns=["judge", "pages", "rated", "percent", "last_rating", "revoked", "completed"])


def system_progress(store, study_id: str) -> pd.DataFrame:
    """Regular pages planned vs rated per system (active judges only)."""
    clips = {c["clip_id"]: c for c in store.clips(study_id)}
    active = {j["judge_id"] for j in store.judges(study_id) if not j["revoked_at"]}
    n_crit = len(store.study(study_id)["criteria"])
    planned: dict[str, int] = {}
    for a in store.assignments(study_id):
        c = clips[a["clip_id"]]
        if a["judge_id"] in active and c["kind"] == "regular":
            planned[c["system"]] = planned.get(c["system"], 0) + 1
    counts: dict[tuple[str, str], int] = {}
    for r in store.raw_ratings(study_id):
        if r["judge_id"] in active:
            counts[(r["judge_id"], r["clip_id"])] = counts.get((r["judge_id"], r["clip_id"]), 0) + 1
    rated: dict[str, int] = {}
    for (_, cid), n in counts.items():
        c = clips[cid]
        if n >= n_crit and c["kind"] == "regular":
            rated[c["system"]] = rated.get(c["system"], 0) + 1
    rows = [{"system": s, "pages_planned": planned[s], "pages_rated": rated.get(s, 0),
             "percent": round(100.0 * rated.get(s, 0) / planned[s], 1)} for s in sorted(planned)]
    return pd.DataFrame(rows, columns=["system", "pages_planned", "pages_rated", "percent"])


def qc_flags(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per judge: gold and trap failures, too-fast pages, straight-lining."""
    pages = _page_table(ratings)
    cols = ["judge", "regular_pages", "gold_failed", "gold_checked", "trap_failed", "trap_checked",
            "too_fast_pages", "same_score_share", "flags"]
    if pages.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for judge, p in pages.groupby("judge", sort=True):
        reg = p[p["kind"] == "regular"]
        gold, trap = p[(p["kind"] == "gold") & p["checked"]], p[(p["kind"] == "trap") & p["checked"]]
        share = float(reg["same"].mean()) if len(reg) else 0.0
        scores = ratings.loc[(ratings["judge"] == judge) & (ratings["kind"] == "regular"), "score"]
        top_share = float(scores.value_counts(normalize=True).iloc[0]) if len(scores) else 0.0
        flags = []
        if int(gold["failed"].sum()):
            flags.append("gold")
        if int(trap["failed"].sum()):
            flags.append("trap")
        if int(p["too_fast"].sum()):
            flags.append("too fast")
        if len(reg) >= STRAIGHT_MIN_PAGES and (share >= STRAIGHT_SHARE or top_share >= STRAIGHT_SHARE):
            flags.append("straight-lining")
        rows.append({"judge": judge, "regular_pages": len(reg), "gold_failed": int(gold["failed"].sum()),
                     "gold_checked": len(gold), "trap_failed": int(trap["failed"].sum()), "trap_checked": len(trap),
                     "too_fast_pages": int(p["too_fast"].sum()), "same_score_share": round(max(share, top_share), 2),
                     "flags": ", ".join(flags)})
    return pd.DataFrame(rows, columns=cols)


def live_mos(ratings: pd.DataFrame) -> pd.DataFrame:
    """MOS per system and criterion over regular ratings, with a t-based 95% CI
    (ignores judge and clip effects: the analysis on the export accounts for them)."""
    from scipy import stats

    reg = ratings[ratings["kind"] == "regular"]
    rows = []
    for (system, crit), g in reg.groupby(["system", "criterion"], sort=True):
        x = g["score"].astype(float).to_numpy()
        n = len(x)
        half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rows.append({"system": system, "criterion": crit, "n": n, "mos": round(float(x.mean()), 3),
                     "ci95": round(half, 3)})
    return pd.DataFrame(rows, columns=["system", "criterion", "n", "mos", "ci95"])


def mos_table(live: pd.DataFrame, criteria: list[str]) -> pd.DataFrame:
    """Wide view: one row per system, one ``mean ± ci (n)`` column per criterion."""
    if live.empty:
        return pd.DataFrame(columns=["system", *criteria])
    cell = live.assign(cell=[f"{m:.2f} ± {c:.2f} (n={n})" if np.isfinite(c) else f"{m:.2f} (n={n})"
                             for m, c, n in zip(live["mos"], live["ci95"], live["n"])])
    wide = cell.pivot(index="system", columns="criterion", values="cell").reindex(columns=criteria)
    return wide.fillna("–").reset_index()


__all__ = ["judge_progress", "system_progress", "qc_flags", "live_mos", "mos_table"]
