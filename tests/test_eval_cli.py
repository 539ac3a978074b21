"""``vastbench eval``: re-scoring a run directory, and scoring a folder of mp4s against references."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from tests.helpers import run_cli
from vastbench import media
from vastbench.errors import VastbenchError


@pytest.fixture()
def run_copy(smoke_run, tmp_path):
    # the shared smoke run is read-only: evaluate a copy
    root = tmp_path / "run"
    shutil.copytree(smoke_run.run.root, root)
    return root


def _summary(root):
    return json.loads((root / "metrics" / "summary.json").read_text())


def test_eval_run_recomputes_and_matches_the_run(run_copy, smoke_run):
    before = _summary(smoke_run.run.root)
    for p in (run_copy / "metrics" / "summary.json", run_copy / "tables" / "metrics.tex"):
        p.unlink()
    cached = run_copy / "metrics" / "clips" / "static"
    one = sorted(cached.glob("*.json"))[0]
    data = json.loads(one.read_text())
    data["metrics"]["psnr"]["value"] = 123.0     # a stale cached value: --metrics psnr must recompute it
    one.write_text(json.dumps(data))
    proc = run_cli("eval", "--run", str(run_copy), "--metrics", "psnr", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    after = _summary(run_copy)
    assert list(after["systems"]) == list(before["systems"])
    for label, s in before["systems"].items():
        for metric in ("psnr", "ssim"):
            # JSON text, so NaN CIs (infinite PSNR of the ground truth) compare equal
            assert json.dumps(after["systems"][label]["metrics"][metric], sort_keys=True) == \
                json.dumps(s["metrics"][metric], sort_keys=True), (label, metric)
    assert json.loads(one.read_text())["metrics"]["psnr"]["value"] != 123.0
    assert r"\toprule" in (run_copy / "tables" / "metrics.tex").read_text()
    man = json.loads((run_copy / "manifest.json").read_text())
    assert man["evaluations"][-1]["recomputed"] == ["psnr"] and man["status"] == "complete"
    assert "stage evaluate: done" in (run_copy / "log.txt").read_text()


def test_eval_run_refuses_what_is_not_a_run(tmp_path):
    proc = run_cli("eval", "--run", str(tmp_path))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("eval")
    assert proc.returncode == 2 and "give --run RUN_DIR" in proc.stderr
    proc = run_cli("eval", "--run", str(tmp_path), "--metrics", "psnrr")
    assert proc.returncode == 2 and "did you mean 'psnr'" in proc.stderr


@pytest.fixture()
def folders(smoke_run, tmp_path):
    """Generated clips (the shifted-audio control) and references (ground truth), plus four bad clips."""
    root = smoke_run.run.root
    videos, refs = tmp_path / "videos", tmp_path / "refs"
    videos.mkdir()
    refs.mkdir()
    good = sorted(p.stem for p in (root / "systems" / "shifted_audio" / "clips").glob("*.mp4"))
    for stem in good:
        shutil.copy(root / "systems" / "shifted_audio" / "clips" / f"{stem}.mp4", videos / f"{stem}.mp4")
        shutil.copy(root / "systems" / "ground_truth" / "clips" / f"{stem}.mp4", refs / f"{stem}.mp4")
    gt = media.read_video(refs / f"{good[0]}.mp4")
    shutil.copy(videos / f"{good[0]}.mp4", videos / "orphan.mp4")                     # no reference
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    shutil.copy(refs / f"{good[0]}.mp4", refs / "corrupt.mp4")
    media.write_video(videos / "small.mp4", gt.frames[:, ::2, ::2].copy())            # wrong resolution
    shutil.copy(refs / f"{good[0]}.mp4", refs / "small.mp4")
    media.write_video(videos / "short.mp4", gt.frames[:3].copy())                     # a 3-frame clip
    shutil.copy(refs / f"{good[0]}.mp4", refs / "short.mp4")
    return videos, refs, good


def test_eval_folder_scores_good_clips_and_explains_bad_ones(folders, smoke_run, tmp_path):
    videos, refs, good = folders
    out = tmp_path / "out"
    proc = run_cli("eval", "--videos", str(videos), "--reference", str(refs), "--out", str(out),
                   "--metrics", "psnr,ssim", "--bootstrap", "1000")
    assert proc.returncode == 0, proc.stderr
    errors = {json.loads(line)["clip"]: json.loads(line)["reason"]
              for line in (out / "errors.jsonl").read_text().splitlines()}
    assert set(errors) == {"orphan", "corrupt", "small", "short"}
    assert "no reference orphan.mp4" in errors["orphan"]
    assert "corrupt.mp4:" in errors["corrupt"] and "re-encode" in errors["corrupt"]
    assert "resolution" in errors["small"] and "small.mp4" in errors["small"]
    assert "3 frames vs" in errors["short"]
    assert all("\n" not in r for r in errors.values())
    rows = list(csv.DictReader((out / "per_clip.csv").open()))
    assert {r["clip"] for r in rows} == set(good)
    assert len(rows) == 2 * len(good)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_videos"] == len(good) + 4 and summary["n_failed"] == 4
    # the same clips through the suite runner gave the same numbers
    run = json.loads((smoke_run.run.root / "metrics" / "summary.json").read_text())["systems"]["shifted_audio"]
    for metric in ("psnr", "ssim"):
        st = summary["metrics"][metric]
        assert st["mean"] == pytest.approx(run["metrics"][metric]["mean"], rel=1e-12)
        assert st["ci_low"] < st["mean"] < st["ci_high"] and st["n"] == len(good)
    tex = (out / "metrics_standalone.tex").read_text()
    assert r"PSNR $\uparrow$" in tex and "4 clip(s) failed" in tex
    from vastbench.report.pdf import compile_tex, have_pdflatex

    if have_pdflatex():
        assert compile_tex(out / "metrics_standalone.tex", tmp_path / "pdf").stat().st_size > 1000

    # resumable: a second evaluation reads the per-clip cache and writes the same summary
    caches = {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.json")}
    first = (out / "summary.json").read_text()
    assert len(caches) == len(good) + 2      # small and short were decoded and scored (and failed)
    again = run_cli("eval", "--videos", str(videos), "--reference", str(refs), "--out", str(out),
                    "--metrics", "psnr,ssim", "--bootstrap", "1000")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.json")} == caches
    assert (out / "summary.json").read_text() == first


def test_eval_folder_refuses_bad_arguments(folders, tmp_path):
    videos, refs, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("eval", "--videos", str(empty), "--reference", str(refs), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no .mp4 files" in proc.stderr
    proc = run_cli("eval", "--videos", str(videos), "--reference", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr


def test_wrong_length_is_named_with_both_lengths(folders, tmp_path):
    from vastbench.eval import FolderEvalConfig, evaluate_folder

    videos, refs, good = folders
    res = evaluate_folder(FolderEvalConfig(videos=videos, reference=refs, out=tmp_path / "lib", metrics=["psnr"]))
    n_ref = media.read_video(refs / "short.mp4").n_frames
    assert f"3 frames vs {n_ref} in the reference" in json.loads(
        [line for line in res.errors_jsonl.read_text().splitlines() if '"short"' in line][0])["reason"]
    assert np.isfinite(res.summary["metrics"]["psnr"]["mean"])
    with pytest.raises(VastbenchError, match="needs a style prompt"):
        evaluate_folder(FolderEvalConfig(videos=videos, reference=refs, out=tmp_path / "o", metrics=["style_sim"]))


def test_metric_arguments_on_the_command_line(folders, tmp_path):
    """`--metrics lse_d:crops=centre`: parsed, checked, passed to the metric, recorded in the summary."""
    from vastbench.eval import parse_metric_specs
    from vastbench.metrics.lse import lse_result

    assert parse_metric_specs(" psnr , lse_d:crops=centre:crop_scale=0.5") == [
        ("psnr", {}), ("lse_d", {"crops": "centre", "crop_scale": 0.5})]
    for bad, says in (("lse_d:crops", "name:key=value"), ("psnr,psnr", "listed twice"), ("lse_dd", "did you mean")):
        with pytest.raises(VastbenchError, match=says):
            parse_metric_specs(bad)
    videos, refs, good = folders
    out = tmp_path / "out"
    proc = run_cli("eval", "--videos", str(videos), "--reference", str(refs), "--out", str(out),
                   "--metrics", "psnr,lse_d:crops=centre", "--bootstrap", "200")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["describe"]["lse_d"]["args"] == {"crops": "centre"}
    video = media.read_video(videos / f"{good[0]}.mp4")
    row = next(r for r in csv.DictReader(open(out / "per_clip.csv")) if r["clip"] == good[0] and r["metric"] == "lse_d")
    assert float(row["value"]) == pytest.approx(lse_result(video.frames, video.audio).lse_d, abs=1e-6)
    proc = run_cli("eval", "--videos", str(videos), "--reference", str(refs), "--out", str(tmp_path / "o2"),
                   "--metrics", "lse_d:crop=centre")
    assert proc.returncode == 2 and "metric lse_d" in proc.stderr and "crops" in proc.stderr
