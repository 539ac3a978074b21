"""``vastbench mos analyze`` as a library: recovery of known effects, screening in the
report, reproducing the table from the exported CSV, bad input."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vastbench.errors import VastbenchError
from vastbench.mos.analyze import AnalysisOptions, analyze_ratings, frame, run_analysis
from vastbench.mos.simulate import simulate_ratings
from vastbench.report.mos_tables import mos_table

QUICK = dict(power_sims=100, plots=False)
EFFECTS = {"ref": 3.9, "a": 3.5, "b": 2.9}
# symmetric around the scale midpoint, so a random judge deviates both ways (what BT.500 rejects)
SYMMETRIC = {"s1": 4.5, "s2": 3.6, "s3": 2.4, "s4": 1.5}


@pytest.fixture(scope="module")
def known():
    df = simulate_ratings(None, EFFECTS, n_items=10, n_judges=8, seed=0)
    return df, analyze_ratings(df, AnalysisOptions(reference="ref", **QUICK))


def test_recovers_known_system_effects(known):
    df, a = known
    truth = df.attrs["true_mos"]  # exact E[score] of the generating model
    m = frame(a["mos"]["screened"])
    inside = [r.mixed_lo <= truth[(r.system, r.criterion)] <= r.mixed_hi for r in m.itertuples()]
    naive = [r.naive_lo <= truth[(r.system, r.criterion)] <= r.naive_hi for r in m.itertuples()]
    pw = frame(a["pairwise"]["screened"])
    d_inside = [r.mixed_lo <= truth[(r.system, r.criterion)] - truth[("ref", r.criterion)] <= r.mixed_hi
                for r in pw.itertuples()]
    assert len(inside) == 9 and len(d_inside) == 6
    # one study, 15 intervals at 95%: (almost) all cover; the 200-repetition
    # coverage study is stats.coverage_study (tests/mos/test_stats.py, docs/statistics.md)
    assert np.mean(inside + d_inside) >= 0.8
    assert np.mean(naive) < np.mean(inside)  # the pooled naive CI ignores judges and items
    assert (m["mixed_hi"] - m["mixed_lo"] > m["naive_hi"] - m["naive_lo"]).all()
    # the ordering of the true effects is recovered and both big gaps are significant
    for c in ("sync", "expressiveness", "naturalness"):
        mc = m[m["criterion"] == c].set_index("system")["mos"]
        assert mc["ref"] > mc["a"] > mc["b"]
    assert pw[pw["system"] == "b"]["significant"].all()
    assert a["reference"] == "ref" and a["reference_reason"] == "given with --reference"
    assert a["simulated"] is True and a["meta"]["warning"].startswith("SIMULATED")


def test_reporting_metadata(known):
    _, a = known
    meta = a["meta"]
    assert meta["judges"] == {"total": 8, "excluded": 0, "analysed": 8, "excluded_list": []}
    assert meta["ratings"]["per_clip"] == {"mean": 8.0, "min": 8, "max": 8}
    assert meta["scale"]["min"] == 1 and meta["scale"]["max"] == 5
    assert meta["scale"]["criteria"]["sync"]["anchors"]["5"].startswith("Very good")
    assert meta["dates"]["first"].startswith("2024-01-01") and meta["dates"]["days"] >= 1
    assert "BT.500" in meta["screening"]["procedure"] and meta["screening"]["thresholds"]["min_variance"] == 0.1
    assert "mixed model" in meta["ci"]["headline"] and meta["simulated"] is True
    assert a["power"]["naturalness"]["table"] and a["power"]["naturalness"]["delta"] == 0.3


def test_screening_flags_planted_outliers_in_the_report():
    df = simulate_ratings(None, SYMMETRIC, n_items=20, n_judges=12, outlier_judges=2, outlier_kind="random", seed=0)
    planted = sorted(j for j, r in df.attrs["judge_roles"].items() if r == "random")
    a = analyze_ratings(df, AnalysisOptions(reference="s1", **QUICK))
    assert sorted(e["judge"] for e in a["excluded"]) == planted
    assert all("BT.500" in e["reason"] for e in a["excluded"])
    scr = frame(a["screening"]).set_index("judge")
    assert scr.loc[planted, "flag_bt500"].all() and not scr.drop(index=planted)["excluded"].any()
    assert a["meta"]["judges"]["excluded"] == 2 and a["meta"]["judges"]["analysed"] == 10
    # MOS with and without the excluded judges are both reported
    allj, scrn = frame(a["mos"]["all"]), frame(a["mos"]["screened"])
    assert (allj["n_judges"] == 12).all() and (scrn["n_judges"] == 10).all()
    bias = frame(a["judge_bias"]).set_index("judge")
    assert bias.loc[planted, "excluded"].all()
    tex = mos_table(a)
    for j in planted:
        assert f"{j} (BT.500)" in tex
    assert "2 excluded after screening" in tex


# --------------------------------------------------------------------------- reproduce from the CSV
_CELL = re.compile(r"(-?\d+\.\d+) \$\\pm\$ (\d+\.\d+)\}?(\$\^\{\\dagger\}\$)?")


def parse_mos_tex(tex: str) -> dict:
    """``{(system, column): (value, half, dagger)}`` from a MOS table fragment."""
    lines = tex.splitlines()
    head = next(ln for ln in lines if ln.startswith("System &"))
    cols = [c.split("$")[0].strip() for c in head.rstrip("\\ ").split("&")[1:]]
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    out = {}
    for ln in body:
        cells = [c.strip() for c in ln.rstrip("\\ ").split("&")]
        system = cells[0].replace(r"\_", "_").replace(" (ref.)", "")
        for col, cell in zip(cols, cells[1:]):
            m = _CELL.search(cell)
            if m:
                out[(system, col)] = (float(m.group(1)), float(m.group(2)), bool(m.group(3)))
    return out


def holm(p):
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.empty_like(p)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, (len(p) - k) * p[i])
        adj[i] = min(running, 1.0)
    return adj


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A ratings export with one planted inconsistent judge, analysed with the t-table."""
    d = tmp_path_factory.mktemp("export")
    df = simulate_ratings(None, SYMMETRIC, n_items=10, n_judges=9, outlier_judges=1, outlier_kind="random", seed=2)
    df.to_csv(d / "ratings.csv", index=False)
    res = run_analysis(d / "ratings.csv", d / "analysis", AnalysisOptions(ci="t", reference="s2", **QUICK))
    return d, res


def test_every_number_in_the_table_reproduces_from_the_csv(exported):
    """docs/statistics.md, "Reproducing a table": plain pandas + scipy on the exported CSV."""
    d, res = exported
    tex = (res.out_dir / "mos_SIMULATED.tex").read_text()
    table = parse_mos_tex(tex)
    csv = pd.read_csv(res.out_dir / "ratings_SIMULATED.csv")
    excluded = set(pd.read_csv(res.out_dir / "screening_SIMULATED.csv").query("excluded")["judge"])
    assert excluded, "the planted judge should be screened out"
    reg = csv[(csv["kind"] == "regular") & ~csv["judge"].isin(excluded)]
    short = {"sync": "Sync", "expressiveness": "Expr.", "naturalness": "Nat."}
    n_checked = 0
    for (system, crit), sub in reg.groupby(["system", "criterion"]):
        item_means = sub.groupby("item")["score"].mean()
        I = len(item_means)
        mean = item_means.mean()
        half = stats.t.ppf(0.975, I - 1) * item_means.std(ddof=1) / math.sqrt(I)
        val, h, _ = table[(system, short[crit])]
        assert abs(val - mean) <= 0.005 + 1e-9 and abs(h - half) <= 0.005 + 1e-9
        n_checked += 1
    assert n_checked == 12
    # daggers: Wilcoxon signed-rank on item-mean differences vs the reference, Holm per criterion
    for crit, sub in reg.groupby("criterion"):
        im = sub.groupby(["item", "system"])["score"].mean().unstack()
        others = [s for s in im.columns if s != "s2"]
        p = [stats.wilcoxon(im[s] - im["s2"], zero_method="wilcox").pvalue for s in others]
        for s, padj in zip(others, holm(p)):
            assert table[(s, short[crit])][2] == (padj < 0.05)
    # the headline (mixed) table shows the same raw means
    mixed = parse_mos_tex(mos_table(res.analysis, "mixed"))
    raw = reg.groupby(["system", "criterion"])["score"].mean()
    for (s, c), v in raw.items():
        assert abs(mixed[(s, short[c])][0] - v) <= 0.005 + 1e-9


def test_analysis_files(exported):
    _, res = exported
    names = {p.name for p in res.out_dir.iterdir()}
    for want in ("analysis_SIMULATED.json", "mos_SIMULATED.csv", "pairwise_SIMULATED.csv", "screening_SIMULATED.csv",
                 "power_SIMULATED.csv", "mos_SIMULATED.tex", "mos_SIMULATED_standalone.tex", "ratings_SIMULATED.csv"):
        assert want in names
    assert res.analysis["source"]["sha256"] and res.analysis["source"]["kind"] == "file"
    # reuse: same ratings and options -> the stored analysis, no recomputation
    again = run_analysis(res.source.path, res.out_dir, AnalysisOptions(ci="t", reference="s2", **QUICK), reuse=True)
    assert again.analysis["seconds"] == res.analysis["seconds"]


# --------------------------------------------------------------------------- bad input
def test_bad_input_clear_messages_rest_analysed():
    df = simulate_ratings(None, {"x": 4.0, "y": 3.0}, n_items=6, n_judges=6, seed=1)
    df = df[df["criterion"] != "expressiveness"].reset_index(drop=True)          # a criterion missing
    df.loc[[0, 1], "score"] = [7, 0]                                             # outside 1..5
    lone = df.iloc[[5]].assign(judge="lonely")                                   # a judge with one rating
    df = pd.concat([df, lone], ignore_index=True)
    a = analyze_ratings(df, AnalysisOptions(**QUICK), expected_systems=["x", "y", "ghost"])  # ghost: no ratings
    probs = "\n".join(a["problems"])
    assert "2 rating(s) dropped: score outside 1..5" in probs
    assert "lonely" in probs and "fewer than 2 regular ratings" in probs
    assert "system 'ghost' has no usable regular ratings" in probs
    assert "criterion 'expressiveness' has no usable regular ratings" in probs
    assert a["criteria"] == ["sync", "naturalness"] and a["systems"] == ["x", "y"]
    assert a["meta"]["missing_criteria"] == ["expressiveness"]
    m = frame(a["mos"]["screened"])
    assert len(m) == 4 and m["mos"].notna().all() and m["ci_half"].notna().all()
    tex = mos_table(a)
    assert "Expr." not in tex.split(r"\midrule")[0] and "No usable ratings for Expressiveness" in tex
    scr = frame(a["screening"]).set_index("judge")
    assert "regular rating" in scr.loc["lonely", "note"]


def test_nothing_usable_is_an_error():
    df = simulate_ratings(None, {"x": 4.0}, n_items=3, n_judges=3, seed=1).assign(score=9)
    with pytest.raises(VastbenchError, match="no usable regular ratings"):
        analyze_ratings(df, AnalysisOptions(**QUICK))
    with pytest.raises(VastbenchError, match="--ci"):
        AnalysisOptions(ci="bootstrap").check()
