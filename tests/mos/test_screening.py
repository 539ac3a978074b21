"""Judge screening: ITU-R BT.500 and P.808-style rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vastbench.errors import VastbenchError
from vastbench.mos.screening import apply_screening, bt500_counts, excluded_judges, screen_judges
from vastbench.mos.simulate import simulate_ratings

# system means symmetric around the scale midpoint: a random judge then
# deviates up and down about equally, which is what BT.500 rejects
SYMMETRIC = {"s1": 4.5, "s2": 3.6, "s3": 2.4, "s4": 1.5}


def _roles(df, screening):
    return screening.assign(role=screening["judge"].map(df.attrs["judge_roles"]))


@pytest.mark.parametrize("seed", [0, 1])
def test_bt500_flags_planted_outliers_only(seed):
    df = simulate_ratings(None, SYMMETRIC, n_items=20, n_judges=12, outlier_judges=2, outlier_kind="random", seed=seed)
    s = _roles(df, screen_judges(df))
    out = s[s["role"] == "random"]
    cons = s[s["role"] == "consistent"]
    assert len(out) == 2 and out["flag_bt500"].all()
    assert not cons["flag_bt500"].any()
    assert not cons["excluded"].any()
    assert out["excluded"].all() and out["reason"].str.contains("BT.500").all()
    assert (s["bt500_n"] == 20 * 4 * 3).all()  # presentations = clip x criterion


def test_bt500_counts_by_hand():
    # one presentation, 10 judges: nine 4s and 3s, one 1
    scores = [4, 4, 4, 3, 3, 4, 3, 4, 3, 1]
    df = pd.DataFrame({"judge": [f"j{k}" for k in range(10)], "clip": "c", "criterion": "sync", "score": scores})
    u = np.mean(scores)
    dev = np.array(scores) - u
    beta2 = np.mean(dev**4) / np.mean(dev**2) ** 2
    S = np.std(scores, ddof=1)
    thr = (2 if 2 <= beta2 <= 4 else np.sqrt(20)) * S
    res = bt500_counts(df, min_ratings=4).set_index("judge")
    assert res.loc["j9", "bt500_Q"] == int(1 <= u - thr)
    assert res["bt500_P"].sum() == 0
    assert (res["bt500_n"] == 1).all()
    # unanimous presentation: counts in n, nobody deviates
    df2 = df.assign(score=4)
    res2 = bt500_counts(df2).set_index("judge")
    assert (res2["bt500_P"] + res2["bt500_Q"] == 0).all() and (res2["bt500_n"] == 1).all()
    # too few judges on a presentation: not eligible
    assert (bt500_counts(df.head(3))["bt500_n"] == 0).all()


def test_p808_rules():
    df = simulate_ratings(n_items=6, n_judges=10, outlier_judges=["judge00", "judge01"], outlier_kind="mixed",
                          straightliners=["judge02"], fast_judges=["judge03"], n_gold=3, n_trap=2, seed=3)
    s = screen_judges(df).set_index("judge")
    # judge00 random: fails traps; judge01 inverted: attentive (passes traps) but fails gold
    assert s.loc["judge00", "flag_trap"]
    assert s.loc["judge01", "flag_gold"] and not s.loc["judge01", "flag_trap"]
    assert s.loc["judge02", "flag_straightline"] and s.loc["judge02", "rating_var"] < 0.1
    assert s.loc["judge03", "flag_too_fast"] and s.loc["judge03", "fast_frac"] > 0.1
    consistent = [f"judge{k:02d}" for k in range(4, 10)]
    assert not s.loc[consistent, "excluded"].any()
    assert set(excluded_judges(s.reset_index())) == {"judge00", "judge01", "judge02", "judge03"}
    assert "straight-lining" in s.loc["judge02", "reason"]
    kept = apply_screening(df, s.reset_index())
    assert set(kept["judge"]) == set(consistent)


def test_rules_select_exclusion_and_low_corr():
    df = simulate_ratings(n_items=8, n_judges=8, outlier_judges=["judge05"], outlier_kind="inverted", seed=4)
    base = screen_judges(df, rules=("bt500",)).set_index("judge")
    assert base.loc["judge05", "corr_others"] < 0
    s = screen_judges(df, rules=("low_corr",)).set_index("judge")
    assert s.loc["judge05", "excluded"] and "low correlation" in s.loc["judge05", "reason"]
    assert s["excluded"].sum() == 1
    with pytest.raises(VastbenchError, match="unknown screening rules"):
        screen_judges(df, rules=("vibes",))


def test_judge_with_one_rating_is_screened_not_fatal():
    df = simulate_ratings(n_items=4, n_judges=5, criteria=["sync"], seed=0)
    lone = df.iloc[[0]].assign(judge="lonely")
    s = screen_judges(pd.concat([df, lone], ignore_index=True)).set_index("judge")
    assert s.loc["lonely", "n_regular"] == 1
    assert not s.loc["lonely", "excluded"]
    assert "straight-lining not checked" in s.loc["lonely", "note"]
    assert any("lonely" in p for p in s.attrs["problems"])
