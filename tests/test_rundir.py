import json
import os

import pytest

from vastbench.errors import VastbenchError
from vastbench.rundir import RunDir, atomic_write_json, atomic_write_text, new_run_dir, read_json


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "f.json"
    atomic_write_json(p, {"x": 1})
    atomic_write_json(p, {"x": 2})
    assert read_json(p) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["f.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]


def test_errors_and_manifest_round_trip(tmp_path):
    run = RunDir(tmp_path)
    run.update_manifest(a=1, timings={"data": 1.0})
    run.update_manifest(timings={"generate": 2.0})
    assert run.read_manifest() == {"a": 1, "timings": {"data": 1.0, "generate": 2.0}}
    run.write_errors("sys", {"r1": {"request_id": "r1", "stage": "generate", "reason": "bad"}})
    assert run.read_errors("sys")["r1"]["reason"] == "bad"
    lines = run.errors_path("sys").read_text().splitlines()
    assert [json.loads(x)["request_id"] for x in lines] == ["r1"]


def test_new_run_dir_refuses_an_existing_run(tmp_path):
    RunDir(tmp_path / "r").update_manifest(a=1)
    with pytest.raises(VastbenchError, match="--resume"):
        new_run_dir("smoke", tmp_path / "r")
    with pytest.raises(VastbenchError, match="not a run directory"):
        RunDir(tmp_path / "nothing").read_manifest()
