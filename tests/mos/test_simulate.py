"""Simulated judges: schema, ground truth, designs, metric-driven ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vastbench.errors import VastbenchError
from vastbench.mos.schema import CRITERION_NAMES, RATING_COLUMNS, validate_ratings
from vastbench.mos.simulate import expected_mos, ratings_from_metrics, simulate_ratings


def test_schema_and_labels():
    df = simulate_ratings(n_items=4, n_judges=3, n_gold=1, n_trap=1, n_training=1, seed=0)
    assert list(df.columns) == list(RATING_COLUMNS)
    assert df["simulated"].all()
    assert df["score"].between(1, 5).all() and df["score"].dtype.kind == "i"
    assert set(df["criterion"]) == set(CRITERION_NAMES)
    assert set(df["kind"]) == {"regular", "gold", "trap", "training"}
    clean, problems = validate_ratings(df, "sim")
    assert problems == [] and len(clean) == len(df)
    # clip ids reveal neither system nor item
    assert not any(s in c for c in df["clip"] for s in ("vast", "baseline", "item"))
    gold = df[(df["kind"] == "gold") & (df["criterion"] == "sync")]
    assert (gold["expected"] == "<=2").all()
    assert (df.loc[df["kind"] == "trap", "expected"] == "==2").all()
    # full factorial: every judge rates every regular clip once per criterion
    reg = df[df["kind"] == "regular"]
    assert len(reg) == 4 * 4 * 3 * 3
    assert not reg.duplicated(["judge", "clip", "criterion"]).any()


def test_reproducible():
    a = simulate_ratings(n_items=3, n_judges=3, seed=5)
    b = simulate_ratings(n_items=3, n_judges=3, seed=5)
    c = simulate_ratings(n_items=3, n_judges=3, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["score"].equals(c["score"])


def test_expected_mos_matches_monte_carlo():
    """The true MOS is E[clip(round(latent))], not the latent mean."""
    p = dict(judge_bias_sd=0.4, judge_scale_sd=0.2, item_sd=0.3, clip_sd=0.2, noise_sd=0.7)
    truth = expected_mos({"x": 4.3, "y": 1.8}, criteria=["sync"], **p)
    rng = np.random.default_rng(0)
    n = 400_000
    for s, m in (("x", 4.3), ("y", 1.8)):
        a = rng.normal(0, p["judge_scale_sd"], n)
        q = m + rng.normal(0, p["item_sd"], n) + rng.normal(0, p["clip_sd"], n)
        lat = 3 + (1 + a) * (q - 3) + rng.normal(0, p["judge_bias_sd"], n) + rng.normal(0, p["noise_sd"], n)
        mc = np.clip(np.round(lat), 1, 5).mean()
        assert abs(truth[(s, "sync")] - mc) < 0.01
    # rounding/clipping pulls the target toward the middle of the scale
    assert truth[("x", "sync")] < 4.3 and truth[("y", "sync")] > 1.8
    # no noise at all: exactly the rounded latent
    t0 = expected_mos({"z": 3.7}, criteria=["sync"], judge_bias_sd=0, judge_scale_sd=0, item_sd=0, clip_sd=0, noise_sd=0)
    assert t0[("z", "sync")] == 4.0


def test_true_mos_attr_and_roles():
    df = simulate_ratings(n_items=3, n_judges=6, outlier_judges=2, outlier_kind="mixed", straightliners=1,
                          fast_judges=1, seed=1)
    roles = df.attrs["judge_roles"]
    assert sorted(roles.values()).count("consistent") == 2
    assert {"random", "inverted", "straightliner", "fast"} <= set(roles.values())
    assert set(df.attrs["true_mos"]) == {(s, c) for s in df["system"].unique() for c in CRITERION_NAMES}
    sl = [j for j, r in roles.items() if r == "straightliner"][0]
    assert df.loc[df["judge"] == sl, "score"].nunique() == 1


def test_balanced_incomplete_design():
    df = simulate_ratings(n_items=12, n_judges=6, ratings_per_clip=3, criteria=["sync"], seed=2)
    reg = df[df["kind"] == "regular"]
    per_clip = reg.groupby("clip")["judge"].nunique()
    assert (per_clip == 3).all()
    load = reg.groupby("judge").size()
    assert load.nunique() == 1  # every judge sees the same number of clips
    # the same judges rate every system's clip of an item (paired design)
    sets = reg.groupby(["item", "system"])["judge"].apply(frozenset).unstack()
    assert (sets.nunique(axis=1) == 1).all()


def test_explicit_design_and_errors():
    design = pd.DataFrame({"judge": ["j1", "j1", "j2"], "system": ["a", "b", "a"], "item": ["i1", "i1", "i1"]})
    df = simulate_ratings(design, {"a": 4.0, "b": 2.0}, criteria=["naturalness"], seed=0)
    assert len(df) == 3
    with pytest.raises(VastbenchError, match="without a mean"):
        simulate_ratings(design, {"a": 4.0}, criteria=["naturalness"])
    with pytest.raises(VastbenchError, match="unknown criteria"):
        simulate_ratings(criteria=["beauty"])


def _metrics(seed=0):
    rng = np.random.default_rng(seed)
    level = {"a": 0.1, "b": 0.5, "c": 0.9}
    rows = [(s, f"item{i:02d}", "lse_c", 2 + 6 * v + rng.normal(0, 0.5)) for s, v in level.items() for i in range(8)]
    return pd.DataFrame(rows, columns=["system", "item", "metric", "value"])


def test_ratings_from_metrics():
    m = _metrics()
    df = ratings_from_metrics(m, {"sync": "lse_c"}, n_judges=5, seed=0)
    assert df["simulated"].all() and set(df["criterion"]) == {"sync"}
    mos = df.groupby("system")["score"].mean()
    assert mos["a"] < mos["b"] < mos["c"]
    with pytest.raises(VastbenchError, match="none of the mapped metrics"):
        ratings_from_metrics(m, {"naturalness": "fid"})


def test_csv_round_trip(tmp_path):
    df = simulate_ratings(n_items=3, n_judges=3, n_gold=1, n_trap=1, seed=0)
    path = tmp_path / "ratings.csv"
    df.to_csv(path, index=False)
    clean, problems = validate_ratings(pd.read_csv(path), str(path))
    assert problems == [] and len(clean) == len(df)
    assert (clean["score"].to_numpy() == df["score"].to_numpy()).all() and clean["simulated"].all()
