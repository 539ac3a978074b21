"""Study design: balance, blinding, tokens, anchors, bad run directories."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from tests.mos.conftest import make_study, tokens
from vastbench.errors import VastbenchError
from vastbench.mos.design import StudyDir, balanced_assignment, order_without_repeats


def _key(sd: StudyDir) -> dict[str, dict]:
    return sd.load_key()


def test_balanced_design(study):
    sd = StudyDir(study.study_dir)
    st, key = sd.load(), _key(sd)
    kinds = Counter(c["kind"] for c in st["clips"])
    assert kinds["regular"] == 6 * 3 and kinds["training"] == 2 and kinds["gold"] >= 2 and kinds["trap"] >= 1
    per_clip = Counter()
    for j in st["judges"]:
        seq = j["sequence"]
        assert len(seq) == len(set(seq)), "a judge sees a clip once"
        assert [key[c]["kind"] for c in seq[:2]] == ["training", "training"], "training comes first"
        items = [key[c]["item"] for c in seq]
        assert all(a != b for a, b in zip(items, items[1:])), f"{j['judge_id']} sees the same content twice in a row"
        reg = [c for c in seq if key[c]["kind"] == "regular"]
        by_system = Counter(key[c]["system"] for c in reg)
        assert set(by_system) == {"ground_truth", "static", "shifted_audio"}
        assert len(set(by_system.values())) == 1, f"{j['judge_id']} sees systems unequally: {by_system}"
        assert Counter(key[c]["kind"] for c in seq)["gold"] == 2 and Counter(key[c]["kind"] for c in seq)["trap"] == 1
        per_clip.update(reg)
    assert set(per_clip.values()) == {2}, "every regular clip gets exactly K ratings"
    assert len(per_clip) == 18
    gold = {c["clip_id"]: c for c in st["clips"] if c["kind"] == "gold"}
    for cid, c in gold.items():
        rule = {"shifted_audio": {"sync": "<=2"}, "ground_truth": {"naturalness": "!=1"}}[key[cid]["generator"]]
        assert c["expected"] == rule
    for c in st["clips"]:
        if c["kind"] == "trap":
            assert set(c["expected"]) == {"sync", "expressiveness", "naturalness"} and c["instruction"]
        if c["kind"] == "training":
            assert c["expected"] and c["feedback"]


def test_blind_names_and_tokens(study):
    sd = StudyDir(study.study_dir)
    text = sd.study_json.read_text()
    for label in ("ground_truth", "static", "shifted_audio", "r0000"):
        assert label not in text, f"study.json reveals {label}"
    files = sorted(p.name for p in sd.clips_dir.iterdir())
    assert files and all(len(f) == 24 and f.endswith(".mp4") for f in files)
    assert not any(lab in f for f in files for lab in ("ground", "static", "shift", "r00"))
    toks = tokens(sd.root)
    assert len(set(toks.values())) == len(toks) == 4
    # random (secrets), not derived from the judge's id
    assert all(len(t) >= 32 and not t.isdigit() and judge not in t for judge, t in toks.items())
    assert (sd.private_dir.stat().st_mode & 0o077) == 0 and (sd.key_path.stat().st_mode & 0o077) == 0
    st = sd.load()
    assert all("token" not in k or k == "token_sha256" for j in st["judges"] for k in j)
    assert all(j["token_sha256"] not in toks.values() for j in st["judges"])
    assert st["admin_hash"].startswith("scrypt$") and "battery" not in text


def test_seed_is_recorded_and_reproducible(mos_run, tmp_path):
    a = StudyDir(make_study(mos_run, tmp_path / "a", seed=7).study_dir)
    b = StudyDir(make_study(mos_run, tmp_path / "b", seed=7).study_dir)
    sa, sb, ka, kb = a.load(), b.load(), _key(a), _key(b)
    assert sa["options"]["seed"] == 7 and [j["seed"] for j in sa["judges"]] == [j["seed"] for j in sb["judges"]]
    desc = lambda st, k: [[(k[c]["system"], k[c]["item"], k[c]["kind"]) for c in j["sequence"]] for j in st["judges"]]  # noqa: E731
    assert desc(sa, ka) == desc(sb, kb), "same seed, same design (only the random names differ)"


@pytest.mark.parametrize("items,judges,k", [(20, 15, 5), (6, 4, 2), (7, 3, 3), (5, 8, 20)])
def test_balanced_assignment_loads(items, judges, k):
    out = balanced_assignment([f"i{n}" for n in range(items)], judges, k, np.random.default_rng(0))
    loads = [len(x) for x in out]
    assert max(loads) - min(loads) <= 1
    counts = Counter(i for x in out for i in x)
    assert set(counts.values()) == {min(k, judges)}
    assert all(len(x) == len(set(x)) for x in out)


def test_order_without_repeats_is_feasible_when_possible():
    rng = np.random.default_rng(1)
    for trial in range(50):
        entries = [(f"c{n}", f"i{n % 5}") for n in range(15)] + [(f"x{n}", "i0") for n in range(4)]
        out = order_without_repeats(entries, rng)
        assert sorted(out) == sorted(entries)
        assert all(a[1] != b[1] for a, b in zip(out, out[1:]))


def test_missing_system_clip_drops_the_item(mos_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mos_run, run)
    (run / "systems" / "static" / "clips" / "r0001.mp4").unlink()
    res = make_study(run, tmp_path / "s")
    key = _key(StudyDir(res.study_dir))
    assert "r0001" not in {r["item"] for r in key.values() if r["kind"] == "regular"}
    assert any("lack a clip" in n for n in res.notes)


def test_corrupt_run_clip_is_a_clear_error(mos_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(mos_run, run)
    (run / "systems" / "static" / "clips" / "r0002.mp4").write_bytes(b"not a video")
    with pytest.raises(VastbenchError, match=r"r0002\.mp4.*(corrupt|cannot)"):
        make_study(run, tmp_path / "s")


def test_bad_options(mos_run, tmp_path):
    with pytest.raises(VastbenchError, match="--systems nope"):
        make_study(mos_run, tmp_path / "a", systems=["nope"])
    with pytest.raises(VastbenchError, match="--judges"):
        make_study(mos_run, tmp_path / "b", judges=0)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(VastbenchError, match="not empty"):
        make_study(mos_run, tmp_path / "c")


def test_systems_subset_without_anchor(mos_run, tmp_path):
    res = make_study(mos_run, tmp_path / "s", systems=["static", "ground_truth"], judges=2, ratings_per_clip=1)
    sd = StudyDir(res.study_dir)
    key = _key(sd)
    assert {r["system"] for r in key.values() if r["kind"] == "regular"} == {"static", "ground_truth"}
    # the shifted_audio control still serves as the sync gold anchor though it is not rated as a system
    assert "shifted_audio" in {r["system"] for r in key.values() if r["kind"] == "gold"}
    json.loads(sd.study_json.read_text())
    with open(sd.links_path, newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
