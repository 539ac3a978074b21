"""The external-method adapter: export the smoke suite's requests, produce videos outside, import, evaluate.

Round trip: a "method" that copies the ground-truth clip (through the command template and
through a videos folder) must score exactly like the ``ground_truth`` control.  Bad outputs
(missing, wrong length, wrong fps, unreadable, non-zero exit, timeout) are per-request
reasons in errors.jsonl; the rest is evaluated and the summary and table count the failures.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli
from vastbench import media
from vastbench.config import load_suite
from vastbench.data.manifest import Manifest
from vastbench.errors import VastbenchError
from vastbench.rundir import RunDir, sha256_file
from vastbench.runner import run_suite

# The "method": checks that the placeholders carry the exported paths, then behaves as the
# behaviours file says for its request (copy the ground truth, fail, hang, write nothing).
METHOD = textwrap.dedent("""\
    import json, shutil, subprocess, sys, time
    plan_path, rid, audio, reference, prompt, out = sys.argv[1:7]
    plan = json.load(open(plan_path))
    row = plan["requests"][rid]
    if (audio, reference, prompt) != (row["driving_audio"], row["reference_video"], row["prompt_video"]):
        sys.exit("placeholders do not match the exported request")
    what = plan["behaviour"].get(rid, "copy")
    if what == "fail":
        print("loading checkpoint", file=sys.stderr)
        print("RuntimeError: CUDA out of memory", file=sys.stderr)
        sys.exit(3)
    if what == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(plan["pidfile"], "w").write(str(child.pid))
        time.sleep(600)
    if what == "copy":
        shutil.copyfile(row["ground_truth_video"], out)
    """)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    proc = run_cli("requests", "export", "--suite", "smoke", "--out", str(folder), check=True)
    assert "6 requests" in proc.stdout
    doc = json.loads((folder / "requests.json").read_text())
    manifest = Manifest.load(Path(doc["dataset"]["root"]) / "manifest.jsonl")
    for row in doc["requests"]:  # the driving clip is the ground truth in these requests
        row["ground_truth_video"] = str(manifest[row["driving_clip"]].path("video"))
    return folder, doc


def _plan(tmp: Path, doc: dict, behaviour: dict) -> Path:
    plan = {"requests": {r["request_id"]: r for r in doc["requests"]}, "behaviour": behaviour,
            "pidfile": str(tmp / "child.pid")}
    (tmp / "plan.json").write_text(json.dumps(plan))
    (tmp / "method.py").write_text(METHOD)
    return tmp / "plan.json"


def _command(tmp: Path, plan: Path) -> list[str]:
    return [sys.executable, str(tmp / "method.py"), str(plan), "{request_id}", "{audio}", "{reference}", "{prompt}",
            "{out}"]


def _suite(tmp: Path, systems: list[dict]) -> Path:
    path = tmp / "external.yaml"
    path.write_text(json.dumps({"include": "smoke", "name": "smoke_external", "systems": systems}))
    return path


def _per_clip(root: Path) -> dict[tuple[str, str, str], str]:
    return {(r["system"], r["request"], r["metric"]): r["value"]
            for r in csv.DictReader((root / "metrics" / "per_clip.csv").open())}


def _errors(root: Path, label: str) -> dict[str, str]:
    path = root / "systems" / label / "errors.jsonl"
    return {json.loads(line)["request_id"]: json.loads(line)["reason"]
            for line in path.read_text().splitlines()} if path.exists() else {}


def test_export_writes_the_run_requests_with_absolute_paths(exported, tmp_path):
    folder, doc = exported
    rows = list(csv.DictReader((folder / "requests.csv").open()))
    assert [r["request_id"] for r in rows] == [f"r{i:04d}" for i in range(6)]
    assert list(rows[0]) == ["request_id", "identity", "reference_video", "driving_audio", "prompt_video", "seed",
                             "out"]
    for row, full in zip(rows, doc["requests"]):
        assert row["out"] == f"{row['request_id']}.mp4"
        for key in ("reference_video", "driving_audio", "prompt_video"):
            assert Path(row[key]).is_absolute() and Path(row[key]).is_file() and row[key] == full[key]
        assert row["driving_audio"].endswith(".wav")
        assert (full["n_frames"], full["width"], full["height"]) == (30, 48, 48)
    readme = (folder / "README.txt").read_text()
    for needle in ("25 fps", "round(audio seconds x 25)", "48x48", "H.264", "generator: external", "{audio}"):
        assert needle in readme, needle
    # Exactly what a run of the suite evaluates (the runner's own request stage made both).
    run = run_suite(load_suite("smoke", ["systems=[{label: gt, generator: ground_truth}]", "metrics=[psnr]"]),
                    RunDir(tmp_path / "run"), device="cpu", stop_after="requests")
    ran = [json.loads(line) for line in run.run.requests_path.read_text().splitlines()]
    assert [(r["request_id"], r["reference"], r["driving"], r["prompt"], r["seed"]) for r in ran] == \
        [(r["request_id"], r["reference_clip"], r["driving_clip"], r["prompt_clip"], r["seed"]) for r in doc["requests"]]


def test_round_trip_scores_exactly_like_ground_truth(exported, tmp_path):
    _, doc = exported
    plan = _plan(tmp_path, doc, behaviour={})
    videos = tmp_path / "videos"
    videos.mkdir()
    for row in doc["requests"]:
        shutil.copyfile(row["ground_truth_video"], videos / row["out"])
    suite = _suite(tmp_path, [
        {"label": "ground_truth", "generator": "ground_truth"},
        {"label": "ext_cmd", "generator": "external",
         "args": {"command": _command(tmp_path, plan), "timeout_s": 120, "videos": str(tmp_path / "kept")}},
        {"label": "ext_dir", "generator": "external", "args": {"videos": str(videos)}},
    ])
    result = run_suite(load_suite(suite), RunDir(tmp_path / "run"), device="cpu")
    root = result.run.root
    assert result.summary["n_failed"] == 0, result.summary["systems"]
    values = _per_clip(root)
    ids = [r["request_id"] for r in doc["requests"]]
    for rid in ids:
        for metric in ("psnr", "ssim"):
            gt = values[("ground_truth", rid, metric)]
            assert values[("ext_cmd", rid, metric)] == gt and values[("ext_dir", rid, metric)] == gt, (rid, metric)
        gt_sha = sha256_file(root / "systems" / "ground_truth" / "clips" / f"{rid}.mp4")
        assert sha256_file(root / "systems" / "ext_cmd" / "clips" / f"{rid}.mp4") == gt_sha
    summary = result.summary["systems"]
    assert summary["ext_cmd"]["n_generated"] == summary["ext_dir"]["n_generated"] == len(ids)
    info = json.loads((root / "systems" / "ext_dir" / "generator.json").read_text())
    assert info["inputs"] == {"kind": "videos", "files": len(ids)}
    # The command's raw outputs were kept (no scratch folders left behind) ...
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [f"{rid}.mp4" for rid in ids]
    # ... resuming regenerates nothing (the config hash is stable) ...
    clips = sorted((root / "systems").glob("ext_*/clips/*.mp4"))
    stamps = [p.stat().st_mtime_ns for p in clips]
    run_suite(load_suite(suite), RunDir(root), device="cpu")
    assert [p.stat().st_mtime_ns for p in clips] == stamps
    # ... and a new run imports the kept videos instead of running the (now failing) command.
    _plan(tmp_path, doc, behaviour={rid: "fail" for rid in ids})
    again = run_suite(load_suite(suite, ["systems=" + json.dumps(
        [{"label": "ext_cmd", "generator": "external",
          "args": {"command": _command(tmp_path, plan), "videos": str(tmp_path / "kept")}}])]),
        RunDir(tmp_path / "again"), device="cpu")
    assert again.summary["n_failed"] == 0
    assert _per_clip(again.run.root) == {k: v for k, v in values.items() if k[0] == "ext_cmd"}


def _write(path: Path, frames: np.ndarray, fps: int = 25, audio: np.ndarray | None = None) -> None:
    media.write_video(path, frames, fps, audio, media.SAMPLE_RATE)


def test_bad_outputs_become_per_request_reasons(exported, tmp_path):
    _, doc = exported
    rows = {r["request_id"]: r for r in doc["requests"]}
    gt = {rid: media.read_video(r["ground_truth_video"]) for rid, r in rows.items()}
    # Folder route, no resampling: missing / too short / 30 fps / not a video / good / good without audio.
    plain = tmp_path / "plain"
    plain.mkdir()
    _write(plain / "r0001.mp4", gt["r0001"].frames[:20], audio=gt["r0001"].audio)
    _write(plain / "r0002.mp4", gt["r0002"].frames, fps=30, audio=gt["r0002"].audio)
    (plain / "r0003.mp4").write_bytes(b"this is not a video\n" * 50)
    shutil.copyfile(rows["r0004"]["ground_truth_video"], plain / "r0004.mp4")
    _write(plain / "r0005.mp4", gt["r0005"].frames)
    # Folder route with resample: true: 30 fps (same 1.2 s), 64x64, both fixed; 30 fps but too short is not.
    fixable = tmp_path / "fixable"
    fixable.mkdir()
    idx = np.floor(np.arange(36) * 25 / 30 + 0.5).astype(int)
    _write(fixable / "r0000.mp4", gt["r0000"].frames[idx], fps=30, audio=gt["r0000"].audio)
    import cv2

    big = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_CUBIC) for f in gt["r0001"].frames])
    _write(fixable / "r0001.mp4", big)
    _write(fixable / "r0002.mp4", gt["r0002"].frames, fps=30)
    for rid in ("r0003", "r0004", "r0005"):
        shutil.copyfile(rows[rid]["ground_truth_video"], fixable / f"{rid}.mp4")
    # Command route: non-zero exit / timeout (with a grandchild) / exits 0 without a video / good.
    plan = _plan(tmp_path, doc, behaviour={"r0000": "fail", "r0001": "hang", "r0002": "nothing"})
    suite = _suite(tmp_path, [
        {"label": "plain", "generator": "external", "args": {"videos": str(plain)}},
        {"label": "fixable", "generator": "external", "args": {"videos": str(fixable), "resample": True}},
        {"label": "cmd", "generator": "external", "args": {"command": _command(tmp_path, plan), "timeout_s": 5}},
    ])
    result = run_suite(load_suite(suite), RunDir(tmp_path / "run"), device="cpu")
    root = result.run.root

    plain_err = _errors(root, "plain")
    assert sorted(plain_err) == ["r0000", "r0001", "r0002", "r0003"]
    assert "no video for request r0000" in plain_err["r0000"]
    assert "20 frames" in plain_err["r0001"] and "needs 30" in plain_err["r0001"]
    assert "30 fps" in plain_err["r0002"] and "resample: true" in plain_err["r0002"]
    assert "cannot open video" in plain_err["r0003"] and "r0003.mp4" in plain_err["r0003"]
    fix_err = _errors(root, "fixable")
    assert sorted(fix_err) == ["r0002"] and "25 frames" in fix_err["r0002"]
    cmd_err = _errors(root, "cmd")
    assert sorted(cmd_err) == ["r0000", "r0001", "r0002"]
    assert "exited with status 3" in cmd_err["r0000"] and "CUDA out of memory" in cmd_err["r0000"]
    assert "timed out after 5 s" in cmd_err["r0001"]
    assert "wrote no video" in cmd_err["r0002"]
    for reasons in (plain_err, fix_err, cmd_err):
        assert all("\n" not in r for r in reasons.values())
    # The hung command's child was killed with it.
    child = int((tmp_path / "child.pid").read_text())
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()

    # The others were evaluated; the summary and the table count the failures.
    values = _per_clip(root)
    for label, ok in (("plain", ["r0004", "r0005"]), ("fixable", ["r0000", "r0001", "r0003", "r0004", "r0005"]),
                      ("cmd", ["r0003", "r0004", "r0005"])):
        assert sorted(rid for (s, rid, m) in values if s == label and m == "psnr") == ok, label
    s = result.summary["systems"]
    assert (s["plain"]["n_failed"], s["fixable"]["n_failed"], s["cmd"]["n_failed"]) == (4, 1, 3)
    assert result.summary["n_failed"] == 8
    # the footnote says which systems lost how many clips
    tex = (root / "tables" / "metrics.tex").read_text()
    assert "8 clip(s) failed and are excluded (plain 4, fixable 1, cmd 3)" in tex
    # Exact copies stay exact; a muxed-in audio track and the resampled/resized clips are close to the truth.
    assert values[("plain", "r0004", "psnr")] == values[("cmd", "r0004", "psnr")] == "inf"
    no_audio = media.read_video(root / "systems" / "plain" / "clips" / "r0005.mp4", require_audio=True)
    assert abs(len(no_audio.audio) - len(gt["r0005"].audio)) < 0.05 * media.SAMPLE_RATE
    for rid, floor in (("r0000", 30.0), ("r0001", 25.0)):  # two lossy encodes on top of the truth
        v = media.read_video(root / "systems" / "fixable" / "clips" / f"{rid}.mp4", require_audio=True)
        assert (v.fps, v.n_frames, v.frames.shape[1:3]) == (25.0, 30, (48, 48))
        assert float(values[("fixable", rid, "psnr")]) > floor, rid
    # 30 -> 25 fps picked the right frames: each output frame is closest to the true frame at its time.
    v = media.read_video(root / "systems" / "fixable" / "clips" / "r0000.mp4").frames.astype(np.float32)
    err = np.abs(v[:, None] - gt["r0000"].frames[None].astype(np.float32)).mean(axis=(2, 3, 4))
    assert np.all(err[np.arange(30), np.arange(30)] <= err.min(axis=1) + 1e-6)


def test_config_hash_follows_the_input_videos(exported, tmp_path):
    from vastbench.generators import GenContext
    from vastbench.registry import GENERATORS

    _, doc = exported
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copyfile(doc["requests"][0]["ground_truth_video"], videos / "r0000.mp4")
    cls = GENERATORS.get("external")
    ctx = GenContext(manifest=None)
    first = cls("ext", ctx, videos=str(videos)).config_hash()
    assert cls("ext", ctx, videos=str(videos)).config_hash() == first
    shutil.copyfile(doc["requests"][1]["ground_truth_video"], videos / "r0001.mp4")
    second = cls("ext", ctx, videos=str(videos)).config_hash()
    assert second != first
    (videos / "r0001.mp4").write_bytes((videos / "r0001.mp4").read_bytes() + b"\0")
    assert cls("ext", ctx, videos=str(videos)).config_hash() != second
    # A command is fingerprinted by the files it names (the script), not by their path alone.
    script = tmp_path / "m.py"
    script.write_text("print(1)\n")
    h1 = cls("ext", ctx, command=f"python {script} {{out}}").config_hash()
    script.write_text("print(2)\n")
    assert cls("ext", ctx, command=f"python {script} {{out}}").config_hash() != h1


@pytest.mark.parametrize("args, message", [
    ({}, "give args.videos"),
    ({"videos": "/nonexistent/folder"}, "does not exist"),
    ({"command": "python run.py {audio}"}, "must contain {out}"),
    ({"command": "python run.py {out} {wav}"}, "unknown placeholder {wav}"),
    ({"command": "python 'unclosed {out}"}, "quotes"),
    ({"command": "x {out}", "timeout_s": 0}, "timeout_s"),
    ({"command": "x {out}", "resample": "yes"}, "resample"),
    ({"command": "x {out}", "fps": 25}, "has no argument 'fps'"),
])
def test_bad_configuration_is_one_line(args, message):
    from vastbench.generators import GenContext
    from vastbench.registry import GENERATORS

    with pytest.raises(VastbenchError) as exc:
        GENERATORS.get("external")("ext", GenContext(manifest=None), **args)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_export_cli_errors_are_one_line(tmp_path):
    proc = run_cli("requests", "export", "--suite", "no_such_suite", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown suite 'no_such_suite'" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = run_cli("requests", "export", "--suite", "smoke", "--out", str(tmp_path / "file"))
    assert proc.returncode == 2 and "is a file" in proc.stderr
