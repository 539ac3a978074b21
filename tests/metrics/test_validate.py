"""The metric validation harness on real SynthTalk clips, its perturbations, and paired bootstrap differences."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from tests.helpers import run_cli
from vastbench.errors import VastbenchError
from vastbench.metrics.ci import paired_bootstrap_diff
from vastbench.metrics.validate import (PERTURBATIONS, Source, ValidationConfig, _fit_length, _frozen, _jpeg,
                                        pick_clips, resolve_perturbations, validate_metrics)

PERTS = ("audio_shift", "blur", "frozen")
SEVERITIES = {"audio_shift": (2, 8), "blur": (1, 3), "frozen": (0.5, 1.0)}
METRICS = ("psnr", "ssim", "m_lmd", "lse_d")


def _config(out):
    return ValidationConfig(out=out, n_clips=2, metrics=METRICS, perturbations=PERTS, severities=SEVERITIES,
                            n_boot=500)


@pytest.fixture(scope="module")
def no_syncnet(tmp_path_factory):
    # LSE must be skipped with its reason whatever weights this machine has.
    old = os.environ.get("VASTBENCH_SYNCNET")
    os.environ["VASTBENCH_SYNCNET"] = str(tmp_path_factory.mktemp("nosync") / "missing_syncnet.pt")
    yield
    if old is None:
        os.environ.pop("VASTBENCH_SYNCNET", None)
    else:
        os.environ["VASTBENCH_SYNCNET"] = old


@pytest.fixture(scope="module")
def validation(synthtalk_quick, tmp_path_factory, no_syncnet):
    out = tmp_path_factory.mktemp("validation")
    return validate_metrics(_config(out), manifest=synthtalk_quick)


def _rows(path):
    return list(csv.DictReader(path.open()))


def _verdict(res, metric, pert):
    return next(v for v in res.verdicts if v["registry_name"] == metric and v["perturbation"] == pert)


def test_psnr_and_ssim_fall_with_blur_on_every_clip(validation):
    rows = [r for r in _rows(validation.out / "per_clip.csv") if r["perturbation"] == "blur"]
    clips = {r["clip"] for r in rows}
    assert len(clips) == 2
    for metric in ("psnr", "ssim"):
        for clip in clips:
            series = sorted((int(r["level"]), float(r["value"])) for r in rows if r["clip"] == clip and r["metric"] == metric)
            assert [lv for lv, _ in series] == [0, 1, 2]
            values = [v for _, v in series]
            assert values[0] > values[1] > values[2], (metric, clip, values)
        v = _verdict(validation, metric, "blur")
        assert v["meant"] and v["verdict"] == "pass" and v["monotone"] and v["spearman"] == pytest.approx(1.0)
        assert v["worst_ci_low"] > 0   # worse side positive: clean minus blurred PSNR
    # sigma 3 on 80-pixel faces costs well over 10 dB against a near-lossless clean re-encode
    psnr = {(r["perturbation"], int(r["level"])): float(r["mean"]) for r in _rows(validation.out / "validation.csv")
            if r["metric"] == "psnr"}
    assert psnr[("blur", 0)] > 35 and psnr[("blur", 0)] - psnr[("blur", 2)] > 10


def test_mouth_landmark_error_grows_with_frozen_frames(validation):
    v = _verdict(validation, "m_lmd", "frozen")
    assert v["meant"] and v["verdict"] == "pass" and v["monotone"]
    levels = sorted((r for r in _rows(validation.out / "validation.csv")
                     if r["metric"] == "m_lmd" and r["perturbation"] == "frozen"), key=lambda r: int(r["level"]))
    means = [float(r["mean"]) for r in levels]
    assert means[0] < means[1] < means[2] and means[2] > 3 * means[0]


def test_audio_shift_leaves_frame_metrics_exactly_unchanged(validation):
    rows = [r for r in _rows(validation.out / "per_clip.csv") if r["perturbation"] == "audio_shift"
            and r["metric"] == "psnr"]
    by_clip = {}
    for r in rows:
        by_clip.setdefault(r["clip"], set()).add(r["value"])
    assert by_clip and all(len(vals) == 1 for vals in by_clip.values())
    v = _verdict(validation, "psnr", "audio_shift")
    assert not v["meant"] and v["verdict"] == "invariant" and v["worst_diff"] == 0
    # the shifted clips are real files whose audio really moved
    from vastbench import media

    clip = sorted(by_clip)[0]
    clean = media.read_video(validation.out / "clips" / "clean" / f"{clip}.mp4").audio
    shifted = media.read_video(validation.out / "clips" / "audio_shift" / "8" / f"{clip}.mp4").audio
    n = 8 * 640
    assert np.corrcoef(clean[:len(clean) - n - 2000], shifted[n:len(clean) - 2000])[0, 1] > 0.95


def test_missing_weights_are_skipped_with_a_reason_not_a_crash(validation):
    assert set(validation.skipped) == {"lse_d"}
    assert "SyncNet" in validation.skipped["lse_d"]
    verdicts = _rows(validation.out / "verdicts.csv")
    assert {r["verdict"] for r in verdicts if r["metric"] == "lse_d"} == {"skipped"}
    tex = (validation.out / "validation.tex").read_text()
    assert "skipped: " in tex and "SyncNet" in tex


def test_outputs_are_complete(validation):
    levels = _rows(validation.out / "validation.csv")
    assert list(levels[0])[:4] == ["metric", "perturbation", "level", "severity"]
    assert {"mean", "ci_low", "ci_high", "n"} <= set(levels[0])
    # 3 scored metrics x 3 perturbations x (clean + 2 severities)
    assert len(levels) == 3 * 3 * 3
    assert all(r["n"] == "2" for r in levels)
    assert all(float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"]) for r in levels)
    png = (validation.out / "validation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    meta = json.loads((validation.out / "validation.json").read_text())
    assert meta["clips"] and meta["meant"]["psnr"] and meta["metrics"]["psnr"]["version"]
    assert len(list((validation.out / "clips").rglob("*.mp4"))) == 2 * (1 + 2 * 3)


def test_latex_table_compiles(validation, tmp_path):
    from vastbench.report.pdf import compile_tex, have_pdflatex

    tex = (validation.out / "validation_standalone.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{pass}" in tex
    if not have_pdflatex():
        pytest.skip("pdflatex not installed")
    src = tmp_path / "t.tex"
    src.write_text(tex)
    assert compile_tex(src).stat().st_size > 1000


def test_rerun_reuses_clips_and_cached_scores(validation, synthtalk_quick):
    scores = sorted((validation.out / "scores").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in scores}
    clips = {p: p.stat().st_mtime_ns for p in (validation.out / "clips").rglob("*.mp4")}
    first = (validation.out / "validation.csv").read_text()
    validate_metrics(_config(validation.out), manifest=synthtalk_quick)
    assert {p: p.stat().st_mtime_ns for p in scores} == before
    assert {p: p.stat().st_mtime_ns for p in (validation.out / "clips").rglob("*.mp4")} == clips
    assert (validation.out / "validation.csv").read_text() == first


def test_another_seed_in_the_same_directory_is_refused(validation, synthtalk_quick):
    cfg = _config(validation.out)
    cfg.seed = 7
    with pytest.raises(VastbenchError, match="pick a new --out"):
        validate_metrics(cfg, manifest=synthtalk_quick)


def test_cli_runs_and_names_bad_perturbations(synthtalk_quick, tmp_path):
    out = tmp_path / "v"
    proc = run_cli("metrics", "validate", "--out", str(out), "--clips", "2", "--metrics", "psnr",
                   "--perturbations", "noise", "--severities", "noise=16", "--bootstrap", "200", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pass" in proc.stdout and (out / "verdicts.csv").exists()
    bad = run_cli("metrics", "validate", "--out", str(tmp_path / "w"), "--perturbations", "blurr")
    assert bad.returncode == 2 and "did you mean 'blur'" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- perturbations on arrays
def _source(frames):
    return Source(clip=None, frames=frames, audio=np.zeros(16000, np.float32), prompt=None, manifest=None)


def test_frozen_holds_a_centred_run_of_frames():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((10, 4, 4, 3), np.uint8)
    out = _frozen(_source(frames), 0.5, None).frames
    assert [int(f[0, 0, 0]) for f in out] == [0, 1, 2, 2, 2, 2, 2, 7, 8, 9]
    still = _frozen(_source(frames), 1.0, None).frames
    assert (still == frames[0]).all()


def test_jpeg_error_grows_as_quality_falls():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    base = np.stack([(xx * 4) % 256, (yy * 4) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    frames = np.clip(base[None] + rng.normal(0, 10, (3, 64, 64, 3)), 0, 255).astype(np.uint8)
    err = [np.abs(_jpeg(_source(frames), q, None).frames.astype(float) - frames).mean() for q in (80, 40, 5)]
    assert err[0] < err[1] < err[2]


def test_fit_length_plays_back_and_forth():
    frames = np.arange(4)[:, None]
    assert _fit_length(frames, 3)[:, 0].tolist() == [0, 1, 2]
    assert _fit_length(frames, 9)[:, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]


def test_severities_are_ordered_and_checked():
    (jpeg,) = resolve_perturbations(["jpeg"], {"jpeg": (5, 80, 20)})
    assert jpeg.severities == (80, 20, 5)   # mild -> severe: quality falls
    with pytest.raises(VastbenchError, match="out of range"):
        resolve_perturbations(["frozen"], {"frozen": (2.0,)})
    with pytest.raises(VastbenchError, match="did you mean 'noise'"):
        resolve_perturbations(["noize"])
    assert PERTURBATIONS["style_swap"].label(3) == "far"


def test_clip_choice_spreads_over_identities_and_styles(synthtalk_quick):
    clips = pick_clips(synthtalk_quick, "test", 8, 0)
    assert len(clips) == 8 and len({c.identity for c in clips}) == 8 and len({c.style for c in clips}) == 8
    assert [c.clip_id for c in pick_clips(synthtalk_quick, "test", 8, 0)] == [c.clip_id for c in clips]


# --------------------------------------------------------------------------- paired bootstrap differences
def test_paired_diff_pairs_by_request_and_drops_unmatched():
    a = {"r1": 3.0, "r2": 5.0, "r3": 7.0, "only_a": 100.0}
    b = {"r3": 6.0, "r1": 2.0, "r2": 4.0, "only_b": -100.0}
    mean, lo, hi = paired_bootstrap_diff(a, b, n_boot=500, seed=0)
    assert (mean, lo, hi) == (1.0, 1.0, 1.0)   # every pair differs by exactly 1


def test_paired_diff_removes_shared_clip_variance():
    rng = np.random.default_rng(1)
    clip = rng.normal(0, 10, 40)                     # large between-clip spread, shared by both systems
    a = {f"r{i}": clip[i] + 0.5 + rng.normal(0, 0.1) for i in range(40)}
    b = {f"r{i}": clip[i] for i in range(40)}
    mean, lo, hi = paired_bootstrap_diff(a, b, ci=0.95, n_boot=2000, seed=0)
    assert 0.4 < lo < mean < hi < 0.6
    # unpaired, the same difference would be lost in the clip spread
    from vastbench.metrics.ci import bootstrap_ci

    _, alo, ahi = bootstrap_ci(list(a.values()))
    _, blo, bhi = bootstrap_ci(list(b.values()))
    assert alo < bhi and blo < ahi
    # order of insertion does not matter; sequences pair by position
    rev = dict(reversed(list(a.items())))
    assert paired_bootstrap_diff(rev, b, n_boot=2000, seed=0) == (mean, lo, hi)
    keys = sorted(a)
    assert paired_bootstrap_diff([a[k] for k in keys], [b[k] for k in keys], n_boot=2000, seed=0) == (mean, lo, hi)


def test_paired_diff_without_common_requests_is_nan():
    mean, lo, hi = paired_bootstrap_diff({"a": 1.0}, {"b": 1.0})
    assert math.isnan(mean) and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(TypeError):
        paired_bootstrap_diff({"a": 1.0}, [1.0])
