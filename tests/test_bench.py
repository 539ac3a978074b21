"""``vastbench bench``: a real quick run through the CLI, its JSON, ``--compare``, and the error paths."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli
from vastbench.bench import FORMAT, BenchConfig, compare, load_result, row, Timing
from vastbench.errors import VastbenchError


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = run_cli("bench", "--quick", "--only", "expression,renderer", "--device", "cpu", "--json", str(out),
                   timeout=120, check=True)
    return out, proc


def test_quick_run_writes_positive_numbers(quick_run):
    out, proc = quick_run
    data = json.loads(out.read_text())
    assert data["format"] == FORMAT
    rows = {r["id"]: r for r in data["results"]}
    want = {f"expression/{p} b={b}/cpu/fp32" for p in ("quick", "full") for b in (1, 8)} | \
           {"renderer/quick 80px/cpu/fp32", "renderer/full 256px/cpu/fp32"}
    assert want <= set(rows), sorted(rows)
    for key in want:
        r = rows[key]
        assert r["status"] == "ok", r
        assert r["frames"] > 0 and r["wall_s"] > 0 and r["cpu_s"] > 0
        assert r["fps"] > 0 and r["cpu_fps"] > 0
        assert r["rtf"] == pytest.approx(r["fps"] / 25.0)
        assert r["fps"] == pytest.approx(r["frames"] / r["wall_s"])
    # batch 8 is 8 utterances per call; the environment says what ran where
    assert rows["expression/quick b=8/cpu/fp32"]["frames"] == 8 * rows["expression/quick b=1/cpu/fp32"]["frames"]
    assert rows["renderer/full 256px/cpu/fp32"]["size"] == 256
    env = data["env"]
    assert env["torch_threads"] >= 1 and env["cores"] >= 1 and env["torch"] and env["numpy"]
    assert env["devices"] == ["cpu"] and env["host_cpu"]
    assert "sha" in env["git"]
    assert data["settings"]["quick"] is True and data["settings"]["batch_sizes"] == [1, 8]
    # the screen shows the table and the environment
    assert "frames per second" in proc.stdout and "torch threads" in proc.stdout


def test_compare_prints_ratios(quick_run, tmp_path):
    out, _ = quick_run
    data = json.loads(out.read_text())
    faster = json.loads(out.read_text())
    for r in faster["results"]:
        r["fps"] *= 2.0
        r["cpu_fps"] *= 2.0
    b = tmp_path / "b.json"
    b.write_text(json.dumps(faster))
    cmp = compare(load_result(out), load_result(b))
    assert cmp["matched"] == len(data["results"])
    assert all(r["ratio"] == pytest.approx(2.0) for r in cmp["rows"])
    assert cmp["geomean_ratio"] == pytest.approx(2.0)
    proc = run_cli("bench", "--compare", str(out), str(b), check=True)
    assert "B / A" in proc.stdout and "2.00" in proc.stdout


def test_compare_matches_by_id_and_reports_missing_rows():
    def res(*rows):
        return {"format": FORMAT, "version": 1, "env": {}, "settings": {"quick": True}, "results": list(rows)}

    t = Timing([0.5], [0.4])
    a = res(row("renderer", "quick 80px", "cpu", frames=10, timing=t),
            row("metrics", "fid frechet distance", "cpu", timing=Timing([2.0], [2.0])))
    b = res(row("renderer", "quick 80px", "cpu", frames=10, timing=Timing([0.25], [0.2])),
            row("metrics", "fid frechet distance", "cpu", timing=Timing([4.0], [4.0])),
            row("metrics", "lpips", "cpu", status="skipped", reason="no weights"))
    rows = {r["id"]: r for r in compare(a, b)["rows"]}
    assert rows["renderer/quick 80px/cpu/fp32"]["ratio"] == pytest.approx(2.0)
    assert rows["renderer/quick 80px/cpu/fp32"]["unit"] == "fps"
    assert rows["metrics/fid frechet distance/cpu/fp32"]["ratio"] == pytest.approx(0.5)   # calls per second
    assert rows["metrics/fid frechet distance/cpu/fp32"]["unit"] == "calls/s"
    assert rows["metrics/lpips/cpu/fp32"]["ratio"] is None
    assert rows["metrics/lpips/cpu/fp32"]["only_in"] == "B"


def test_bad_input_is_one_line_error(tmp_path):
    proc = run_cli("bench", "--only", "expresion", timeout=60)
    assert proc.returncode == 2
    assert "did you mean 'expression'" in proc.stderr and "Traceback" not in proc.stderr
    bogus = tmp_path / "x.json"
    bogus.write_text(json.dumps({"hello": 1}))
    proc = run_cli("bench", "--compare", str(bogus), str(bogus), timeout=60)
    assert proc.returncode == 2 and str(bogus) in proc.stderr and "vastbench bench --json" in proc.stderr
    proc = run_cli("bench", "--compare", str(bogus), timeout=60)
    assert proc.returncode == 2 and "exactly two" in proc.stderr


def test_config_selection():
    cfg = BenchConfig(only=("renderer", "lse", "fid"))
    assert cfg.sections() == ["renderer", "metrics"]
    assert cfg.metric_items() == ["lse", "fid"]
    assert BenchConfig().sections()[0] == "features" and BenchConfig(quick=True).sizes.repeats == 1
    assert BenchConfig(repeats=5).sizes.repeats == 5
    with pytest.raises(VastbenchError, match="--device"):
        BenchConfig(device="tpu")
    with pytest.raises(VastbenchError, match="batch sizes"):
        BenchConfig(batch_sizes=(0,))
