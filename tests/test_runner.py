"""The suite runner end to end on the smoke suite: outputs, resume after SIGKILL, isolated failures."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from tests.helpers import REPO, run_cli, same_numbers
from vastbench.config import load_suite
from vastbench.rundir import RunDir
from vastbench.runner import run_suite


def test_smoke_run_writes_a_complete_run_directory(smoke_run):
    root = smoke_run.run.root
    man = json.loads((root / "manifest.json").read_text())
    assert man["status"] == "complete"
    for key in ("suite", "git", "versions", "device", "seeds", "dataset", "timings", "config_hash"):
        assert key in man, key
    assert set(man["timings"]) == {"data", "requests", "prepare", "generate", "evaluate", "report"}
    assert man["dataset"]["manifest_hash"]
    n = man["n_requests"]
    for label in ("ground_truth", "static", "shifted_audio"):
        assert len(list((root / "systems" / label / "clips").glob("*.mp4"))) == n
        assert (root / "systems" / label / "generator.json").exists()
    rows = list(csv.DictReader((root / "metrics" / "per_clip.csv").open()))
    assert len(rows) == 3 * n * 2
    summary = json.loads((root / "metrics" / "summary.json").read_text())
    s = summary["systems"]
    # The controls order themselves as they must: ground truth is perfect, shifted audio keeps
    # the frames (only codec loss), a static frame loses the motion.
    assert s["ground_truth"]["metrics"]["psnr"]["mean"] == float("inf")
    assert s["ground_truth"]["metrics"]["ssim"]["mean"] == 1.0
    assert s["shifted_audio"]["metrics"]["psnr"]["mean"] > 35 > s["static"]["metrics"]["psnr"]["mean"]
    assert s["static"]["metrics"]["ssim"]["ci_low"] < s["static"]["metrics"]["ssim"]["mean"] < s["static"]["metrics"]["ssim"]["ci_high"]
    assert summary["n_failed"] == 0
    tex = (root / "tables" / "metrics.tex").read_text()
    assert r"\toprule" in tex and r"PSNR $\uparrow$" in tex and r"\textbf{" in tex
    assert "static" in (root / "report.html").read_text()
    assert "stage generate: done" in (root / "log.txt").read_text()


def test_shifted_audio_really_shifts(smoke_run):
    from vastbench import media

    root = smoke_run.run.root
    req = json.loads((root / "requests.jsonl").read_text().splitlines()[0])
    gt = media.read_video(root / "systems" / "ground_truth" / "clips" / f"{req['request_id']}.mp4").audio
    sh = media.read_video(root / "systems" / "shifted_audio" / "clips" / f"{req['request_id']}.mp4").audio
    n = 8 * 640  # 8 frames at 16 kHz / 25 fps
    assert len(gt) == len(sh)
    assert np.corrcoef(gt[:-n], sh[n:])[0, 1] > 0.98
    assert np.abs(sh[: n - 200]).max() < 0.02


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "vastbench", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_during_generation_then_resume_gives_the_same_summary(tmp_path):
    sets = ["--set", "dataset.args.identities=6"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_cli("run", "--suite", "smoke", *sets, "--out", str(ref), check=True)

    proc = _start(["run", "--suite", "smoke", *sets, "--out", str(killed)], os.environ.copy())
    first_clips = killed / "systems" / "ground_truth" / "clips"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if first_clips.exists() and any(first_clips.glob("r*.mp4")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "metrics" / "summary.json").exists()
    n_before = sum(1 for _ in killed.glob("systems/*/clips/r*.mp4"))
    assert n_before < 3 * 12  # killed in the middle of generation

    run_cli("run", "--resume", str(killed), check=True)
    # numbers to codec noise (tests/helpers.same_numbers says why not bytes)
    assert same_numbers((killed / "metrics" / "summary.json").read_text(), (ref / "metrics" / "summary.json").read_text())
    assert same_numbers((killed / "metrics" / "per_clip.csv").read_text(), (ref / "metrics" / "per_clip.csv").read_text())
    man = json.loads((killed / "manifest.json").read_text())
    assert man["invocations"] == 2 and man["status"] == "complete"
    assert not list(killed.rglob(".*tmp*")), "no temp files may survive"


def test_bad_clips_are_recorded_and_the_rest_finish(tmp_path, smoke_run):
    src = Path(json.loads((smoke_run.run.root / "manifest.json").read_text())["dataset"]["root"])
    data = tmp_path / "data"
    shutil.copytree(src, data)
    rows = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    tests = sorted(r["clip_id"] for r in rows if r["split"] == "test")
    corrupt, silent, missing = tests[:3]
    (data / "video" / f"{corrupt}.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))
    wavfile.write(data / "audio" / f"{silent}.wav", 16000, np.zeros(0, np.int16))
    (data / "video" / f"{missing}.mp4").unlink()
    suite = tmp_path / "bad.yaml"
    suite.write_text(f"include: smoke\nname: bad\ndataset: {{name: manifest, root: '{data}'}}\n")

    result = run_suite(load_suite(suite), RunDir(tmp_path / "run"), device="cpu")
    errors = result.run.read_errors("ground_truth")
    reqs = {json.loads(x)["driving"]: json.loads(x)["request_id"]
            for x in result.run.requests_path.read_text().splitlines()}
    assert set(errors) == {reqs[corrupt], reqs[silent], reqs[missing]}
    reasons = {k: v["reason"] for k, v in errors.items()}
    assert "corrupt" in reasons[reqs[corrupt]] or "cannot open" in reasons[reqs[corrupt]]
    assert "no samples" in reasons[reqs[silent]]
    assert "no such video file" in reasons[reqs[missing]]
    assert all("\n" not in r for r in reasons.values())
    s = result.summary["systems"]
    assert s["ground_truth"]["n_failed"] == 3
    assert s["ground_truth"]["n_generated"] == len(tests) - 3
    assert s["ground_truth"]["metrics"]["ssim"]["n"] == len(tests) - 3
    assert result.summary["n_failed"] >= 3
    assert "failed" in (result.run.root / "tables" / "metrics.tex").read_text()


def test_a_suite_passes_arguments_to_its_metrics(tmp_path):
    """`metrics: [{name: lse_d, args: {crops: centre}}]` reaches the metric: values, summary and footnote."""
    from vastbench import media
    from vastbench.config import SuiteConfig
    from vastbench.metrics.lse import lse_result

    base = load_suite("smoke").model_dump(mode="json")
    cfg = SuiteConfig.model_validate({**base, "name": "smoke_args",
                                      "metrics": ["psnr", {"name": "lse_d", "args": {"crops": "centre"}}]})
    result = run_suite(cfg, RunDir(tmp_path / "run"), device="cpu")
    meta = result.summary["metrics"]["lse_d"]
    assert meta["args"] == {"crops": "centre"} and "centred square crops" in meta["footnote"]
    run = RunDir(tmp_path / "run")
    rows = [r for r in csv.DictReader(open(run.metrics_dir / "per_clip.csv"))
            if r["system"] == "ground_truth" and r["metric"] == "lse_d"]
    video = media.read_video(run.clip_path("ground_truth", rows[0]["request"]))
    assert float(rows[0]["value"]) == lse_result(video.frames, video.audio).lse_d
