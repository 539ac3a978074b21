"""MOS statistics: validation, CIs, pairwise tests, agreement, metrics, power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vastbench.errors import VastbenchError
from vastbench.mos import stats as S
from vastbench.mos.schema import CRITERIA, RATING_COLUMNS, check_expected, parse_expected, validate_ratings
from vastbench.mos.simulate import simulate_ratings

VAR = dict(judge_bias_sd=0.45, judge_scale_sd=0.1, item_sd=0.4, clip_sd=0.2, noise_sd=0.6)


@pytest.fixture(scope="module")
def ratings():
    return simulate_ratings(None, {"ref": 4.0, "a": 3.6, "b": 3.0}, n_items=16, n_judges=10, seed=11, **VAR)


# ---------------------------------------------------------------- schema


def test_criteria_worded_from_guideline():
    assert set(CRITERIA) == {"sync", "expressiveness", "naturalness"}
    for c in CRITERIA.values():
        assert sorted(c.anchors) == [1, 2, 3, 4, 5] and c.label and c.short and c.question.endswith("?")
    assert "lip movements match the audio" in CRITERIA["sync"].question
    assert "monotonous" in CRITERIA["expressiveness"].anchors[1]


def test_expected_rules():
    assert check_expected(2, "<=2") and not check_expected(3, "<=2")
    assert check_expected(4, "==4") and check_expected(4, 4.0) and check_expected(4, "4")
    assert check_expected(2, "!=1") and not check_expected(1, "!=1")
    assert check_expected(3, ">=2&<=3") and not check_expected(4, ">=2&<=3")
    assert check_expected(5, None) is None and parse_expected(float("nan")) is None
    with pytest.raises(ValueError):
        parse_expected("about 3")


def _bad_input(df):
    bad = df.copy()
    bad["score"] = bad["score"].astype(object)
    bad.loc[0, "score"] = 7  # outside 1..5
    bad.loc[1, "score"] = 0
    bad.loc[2, "score"] = "x"  # not a number
    bad.loc[3, "criterion"] = None  # missing criterion
    bad.loc[bad["system"] == "b", "score"] = 9  # a system left with no usable rating
    lone = df[df["system"] == "ref"].iloc[[5]].assign(judge="lonely")  # a judge with one rating
    return pd.concat([bad, lone], ignore_index=True)


def test_bad_input_reported_rest_analysed(ratings):
    bad = _bad_input(ratings)
    clean, problems = validate_ratings(bad, "ratings.csv")
    text = "\n".join(problems)
    assert all(p.startswith("ratings.csv: ") and "\n" not in p for p in problems)
    assert "score outside 1..5" in text and "not a number" in text
    assert "missing criterion" in text
    assert "lonely" in text and "fewer than 2" in text
    assert "system 'b' has no usable regular ratings" in text
    assert list(clean.columns) == list(RATING_COLUMNS)
    assert clean["score"].between(1, 5).all()
    table = S.mos_table(bad, source="ratings.csv")
    assert set(table["system"]) == {"ref", "a"} and len(table) == 6
    assert table["ci_lo"].notna().all() and table.attrs["problems"] == problems
    pw = S.pairwise_vs_reference(bad, "ref", "sync")
    assert list(pw["system"]) == ["a"]


def test_validation_errors_and_cleanup():
    df = simulate_ratings(n_items=2, n_judges=2, criteria=["sync"], seed=0)
    with pytest.raises(VastbenchError, match="required rating columns missing: score"):
        validate_ratings(df.drop(columns=["score"]), "x.csv")
    with pytest.raises(VastbenchError, match="no usable regular ratings"):
        validate_ratings(df.assign(score=9), "x.csv")
    # duplicates: latest kept; a clip mapped to two systems dropped; optional column filled
    dup = pd.concat([df.iloc[[0]].assign(score=1, created_at="2030-01-01T00:00:00"), df], ignore_index=True)
    clean, problems = validate_ratings(dup.drop(columns=["time_on_page_s"]), "x.csv")
    assert len(clean) == len(df) and any("repeated rating" in p for p in problems)
    assert clean.loc[(clean["judge"] == df.loc[0, "judge"]) & (clean["clip"] == df.loc[0, "clip"]), "score"].item() == 1
    assert any("'time_on_page_s' missing" in p for p in problems)
    clash = df.copy()
    clash.loc[0, "system"] = "other"
    _, problems = validate_ratings(clash, "x.csv")
    assert any("map to several systems" in p for p in problems)


# ---------------------------------------------------------------- MOS CIs


def test_mos_table_columns_and_mixed_wider_than_naive(ratings):
    t = S.mos_table(ratings)
    assert len(t) == 9 and t["simulated"].all()
    assert t["ci_method"].str.startswith("mixed model (reml").all()
    assert np.allclose(t["mos"], t["mixed_mos"])  # balanced design
    naive = t["naive_hi"] - t["naive_lo"]
    mixed = t["mixed_hi"] - t["mixed_lo"]
    assert (mixed > 1.5 * naive).all()
    assert ((t["ci_lo"] <= t["mos"]) & (t["mos"] <= t["ci_hi"])).all()
    vc = t.attrs["variance_components"]["naturalness"]
    assert vc["judge"] > 0.05 and vc["item"] > 0.03 and vc["residual"] > 0.2


def test_without_judge_item_variance_mixed_close_to_naive():
    df = simulate_ratings(None, {"a": 3.5, "b": 2.5}, n_items=12, n_judges=8, criteria=["sync"], judge_bias_sd=0,
                          judge_scale_sd=0, item_sd=0, clip_sd=0, noise_sd=0.8, seed=3)
    t = S.mos_table(df)
    ratio = (t["mixed_hi"] - t["mixed_lo"]) / (t["naive_hi"] - t["naive_lo"])
    assert ratio.between(0.8, 1.5).all()


def test_crowdmos_and_mixed_agree_roughly(ratings):
    t = S.mos_table(ratings)
    ratio = t["crowdmos_se"] / t["mixed_se"]
    assert ratio.between(0.6, 1.6).all(), ratio.tolist()


def test_reml_matches_statsmodels():
    df = simulate_ratings(None, {"a": 3.8, "b": 3.1}, n_items=8, n_judges=6, criteria=["naturalness"], seed=4, **VAR)
    f1 = S.fit_mixed(df, "naturalness")
    f2 = S.fit_mixed(df, "naturalness", engine="statsmodels")
    assert f1.method == "reml" and f2.method == "statsmodels"
    np.testing.assert_allclose(f1.beta, f2.beta, atol=1e-6)
    for k in ("judge", "item", "residual"):
        assert abs(f1.components[k] - f2.components[k]) < 2e-3 * max(1.0, f2.components[k])
    np.testing.assert_allclose(np.sqrt(np.diag(f1.cov)), np.sqrt(np.diag(f2.cov)), rtol=0.02)


def test_mixed_fallbacks_are_recorded(ratings, monkeypatch):
    def boom(*a, **k):
        raise np.linalg.LinAlgError("forced")

    monkeypatch.setattr(S, "_fit_reml", boom)
    f = S.fit_mixed(ratings, "sync")
    assert f.method == "statsmodels" and "REML failed" in f.notes[0]
    monkeypatch.setattr(S, "_fit_statsmodels", boom)
    t = S.mos_table(ratings, "sync")
    assert t["ci_method"].str.startswith("t over items (mixed model failed").all()
    assert np.allclose(t["ci_hi"] - t["ci_lo"], t["t_hi"] - t["t_lo"])


def test_single_system_and_unknown_criterion(ratings):
    one = ratings[ratings["system"] == "ref"]
    t = S.mos_table(one, "sync")
    assert len(t) == 1 and np.isfinite(t["ci_half"]).all()
    assert any("same grouping" in n for n in t.attrs["notes"]["sync"])
    with pytest.raises(VastbenchError, match="unknown criterion"):
        S.mos_table(ratings, "beauty")


# ---------------------------------------------------------------- pairwise


def test_holm_matches_statsmodels_and_hand():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(S.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(S.holm(p), multipletests(p, method="holm")[1])
    out = S.holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.02, 0.04])


def test_pairwise_vs_reference(ratings):
    pw = S.pairwise_vs_reference(ratings, "ref")
    assert len(pw) == 6 and pw["simulated"].all()
    assert (pw["p_mixed_holm"] >= pw["p_mixed"] - 1e-12).all()
    assert (pw["p_wilcoxon_holm"] >= pw["p_wilcoxon"] - 1e-12).all()
    b = pw[pw["system"] == "b"]
    assert (b["mixed_diff"] < -0.5).all() and b["significant"].all() and (b["p_wilcoxon_holm"] < 0.01).all()
    assert (b["rank_biserial"] < -0.8).all() and (b["d_z"] < -1).all()
    assert ((pw["mixed_lo"] <= pw["mixed_diff"]) & (pw["mixed_diff"] <= pw["mixed_hi"])).all()
    # Holm family = all: 6 comparisons instead of 2 per criterion
    pa = S.pairwise_vs_reference(ratings, "ref", family="all")
    assert (pa["p_mixed_holm"] >= pw["p_mixed_holm"] - 1e-12).all()
    with pytest.raises(VastbenchError, match="reference system"):
        S.pairwise_vs_reference(ratings, "nope")


def test_rank_biserial():
    assert S.rank_biserial(np.array([1.0, 2.0, 0.5])) == 1.0
    assert S.rank_biserial(np.array([-1.0, -2.0])) == -1.0
    assert S.rank_biserial(np.array([0.0, 0.0])) == 0.0
    assert S.rank_biserial(np.array([1.0, -2.0])) == pytest.approx((1 - 2) / 3)


# ---------------------------------------------------------------- agreement


def test_agreement_identical_and_random():
    same = simulate_ratings(n_items=8, n_judges=5, judge_bias_sd=0, judge_scale_sd=0, noise_sd=0, item_sd=0.8, seed=1)
    a = S.agreement(same)
    assert a["alpha"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in a["alpha_per_criterion"].values())
    j = a["judges"]
    assert set(j["criterion"]) == {"all", "sync", "expressiveness", "naturalness"}
    assert (j.loc[j["criterion"] == "all", "pearson"] > 0.99).all()
    rnd = same.assign(score=np.random.default_rng(0).integers(1, 6, len(same)))
    r = S.agreement(rnd)
    assert abs(r["alpha"]) < 0.1
    assert r["judges"]["pearson"].abs().max() < 0.5


# ---------------------------------------------------------------- metrics vs MOS


def _metric_table(df, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    reg = df[(df["kind"] == "regular") & (df["criterion"] == "sync")]
    cm = reg.groupby(["system", "item"], as_index=False)["score"].mean()
    return pd.DataFrame({"system": cm["system"], "item": cm["item"], "metric": "lse_c",
                         "value": 2 * cm["score"] + rng.normal(0, noise, len(cm))})


def test_metric_mos_correlation(ratings):
    m = _metric_table(ratings)
    r = S.metric_mos_correlation(m, ratings, n_boot=500)
    assert list(r["level"]) == ["clip", "system"] and (r["metric"] == "lse_c").all()
    clip = r[r["level"] == "clip"].iloc[0]
    assert clip["n"] == 48 and clip["pearson"] > 0.8
    assert clip["pearson_lo"] < clip["pearson"] < clip["pearson_hi"]
    assert clip["spearman_lo"] <= clip["spearman"] <= clip["spearman_hi"]
    sysrow = r[r["level"] == "system"].iloc[0]
    assert sysrow["n"] == 3 and np.isnan(sysrow["pearson_lo"])  # Fisher CI needs > 3 systems
    with pytest.raises(VastbenchError, match="no \\(metric, criterion\\) pair"):
        S.metric_mos_correlation(m.assign(metric="fid"), ratings)


# ---------------------------------------------------------------- power


def test_power_increases_with_judges():
    comps = {"judge": 0.2, "item": 0.1, "clip": 0.05, "judge_system": 0.03, "residual": 0.45}
    p = S.power_analysis(comps, 0.25, judges_grid=[3, 8, 20], items_grid=[10], n_sim=400, seed=1)
    pw = p.sort_values("judges")["power"].to_numpy()
    assert pw[0] < pw[1] < pw[2]
    assert (p["expected_ci_half"].diff().dropna() < 0).all()
    assert p.attrs["smallest_design"] is None or p.attrs["smallest_design"]["power"] >= 0.8
    # null effect: size close to alpha
    p0 = S.power_analysis(comps, 0.0, judges_grid=[8], items_grid=[20], n_sim=2000, seed=2)
    assert p0["power"].item() < 0.08


def test_power_from_ratings_and_smallest(ratings):
    p = S.power_analysis(ratings, 0.4, judges_grid=[4, 10], items_grid=[8, 30], n_sim=300, criterion="sync")
    assert p["smallest"].sum() == 1
    best = p[p["smallest"]].iloc[0]
    reach = p[p["power"] >= 0.8]
    assert best["n_ratings"] == reach["n_ratings"].min()
    with pytest.raises(VastbenchError):
        S.power_analysis({"clip": 0.1}, 0.3)


# ---------------------------------------------------------------- coverage


def test_coverage_study_smoke():
    r = S.coverage_study(n_rep=3, seed=1, n_judges=6, n_items=8)
    assert r["n_intervals_mean"] == 9 and r["n_intervals_diff"] == 6 and r["simulated"]
    assert 0 <= r["mixed_mean_coverage"] <= 1 and r["mixed_mean_width"] > r["naive_mean_width"]


@pytest.mark.slow
def test_coverage_study_200():
    from threadpoolctl import threadpool_limits

    # Small dense algebra: one BLAS thread is several times faster than two competing ones.
    with threadpool_limits(1, user_api="blas"):
        r = S.coverage_study(n_rep=200, seed=0)
    assert 0.92 <= r["mixed_mean_coverage"] <= 0.98
    assert 0.92 <= r["mixed_diff_coverage"] <= 0.98
    assert r["naive_mean_coverage"] < 0.8
