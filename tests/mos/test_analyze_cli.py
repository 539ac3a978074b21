"""``vastbench mos simulate`` / ``mos analyze`` / ``report`` end to end: sources, SIMULATED labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from vastbench.cli import mos as mos_cli
from vastbench.cli import report as report_cli
from vastbench.mos.analyze import AnalysisOptions, run_analysis

pytest.importorskip("sqlalchemy", reason="the MOS app needs the 'app' extra: pip install 'vastbench[app]'")


def cli_app() -> typer.Typer:
    """The commands under test, registered as main.py registers them."""
    app = typer.Typer(add_completion=False)
    mos_cli.register(app)
    report_cli.register(app)
    return app


def invoke(*args: str):
    res = CliRunner().invoke(cli_app(), list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def simulated_run(smoke_run, tmp_path_factory):
    """A copy of the smoke run with simulated ratings, analysed and reported through the CLI."""
    run = tmp_path_factory.mktemp("simrun") / "run"
    shutil.copytree(smoke_run.run.root, run)
    out_sim = invoke("mos", "simulate", "--run", str(run), "--judges", "8", "--seed", "1")
    out_an = invoke("mos", "analyze", str(run))
    out_rep = invoke("report", str(run), "--no-pdf")
    return run, out_sim, out_an, out_rep


def test_simulate_writes_a_labelled_export(simulated_run):
    run, out, _, _ = simulated_run
    assert "SIMULATED" in out
    desc = json.loads((run / "mos" / "ratings_SIMULATED.json").read_text())
    assert desc["simulated"] is True and desc["judges"] == 8
    assert desc["mapping"]["naturalness"]["metric"] == "ssim"
    assert any("sync" in n for n in desc["notes"])  # the smoke run has no LSE: the substitute is named
    df = pd.read_csv(run / "mos" / "ratings_SIMULATED.csv")
    assert df["simulated"].all() and set(df["system"]) >= {"ground_truth", "static", "shifted_audio"}
    assert "SIMULATED" in df["study"].iloc[0]


def test_every_artifact_of_a_simulated_study_says_simulated(simulated_run):
    run, _, out_an, out_rep = simulated_run
    assert "SIMULATED" in out_an and "SIMULATED" in out_rep
    made = list((run / "mos" / "analysis").iterdir()) + list((run / "figures").iterdir())
    made += [p for p in (run / "tables").iterdir() if not p.name.startswith("metrics")]
    assert len(made) > 20
    for p in made:
        assert "SIMULATED" in p.name, p
        if p.suffix == ".csv":
            assert pd.read_csv(p)["simulated"].astype(bool).all(), p
        if p.suffix == ".tex":
            text = p.read_text()
            assert "SIMULATED judges" in text and r"\textbf{SIMULATED}" in text, p
        if p.suffix in (".png", ".pdf"):
            assert b"SIMULATED" in p.read_bytes(), p  # title in the file's metadata
    a = json.loads((run / "mos" / "analysis" / "analysis_SIMULATED.json").read_text())
    assert a["simulated"] is True and a["meta"]["warning"].startswith("SIMULATED")
    assert all(r["simulated"] for r in a["mos"]["screened"])
    html = (run / "report.html").read_text()
    assert "class='banner'>SIMULATED" in html and "MOS (SIMULATED)" in html
    # the objective metrics are real measurements: not labelled
    assert "SIMULATED" not in (run / "tables" / "metrics.tex").read_text()


def test_analysis_of_a_run_uses_its_metrics(simulated_run):
    run, _, out_an, _ = simulated_run
    a = json.loads((run / "mos" / "analysis" / "analysis_SIMULATED.json").read_text())
    assert a["reference"] == "ground_truth" and a["reference_reason"] == "the suite's statistics.reference"
    assert a["unranked"] == ["ground_truth"]
    assert {(r["metric"], r["criterion"]) for r in a["correlation"]} >= {("ssim", "naturalness")}
    assert any("non-finite 'psnr'" in p for p in a["problems"])  # inf PSNR of ground truth vs itself
    assert "Krippendorff" in out_an and "power" in out_an


def test_study_directory_is_read_through_the_export(mos_run, tmp_path):
    from tests.mos.conftest import make_study
    from vastbench.mos.db import Store

    created = make_study(mos_run, tmp_path / "study", judges=4, ratings_per_clip=4)
    rng = np.random.default_rng(0)
    with Store.open(created.db_url) as store:
        for judge in ("j01", "j02", "j03", "j04"):
            for page in store.pages(created.study_id, judge):
                scores = {c: int(rng.integers(1, 6)) for c in ("sync", "expressiveness", "naturalness")}
                store.save_page(created.study_id, judge, page.clip_id, scores, 20.0)
    res = run_analysis(created.study_dir, opts=AnalysisOptions(power_sims=50, plots=False))
    assert res.out_dir == created.study_dir / "analysis"
    assert res.source.kind == "study" and res.analysis["meta"]["judges"]["total"] == 4
    assert res.analysis["simulated"] is False and "SIMULATED" not in (res.out_dir / "mos.tex").read_text()
    assert set(res.analysis["systems"]) == {"ground_truth", "static", "shifted_audio"}
    assert (res.out_dir / "ratings.csv").read_text().startswith("study,judge,clip,system,item,criterion,score")


def test_cli_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli_app(), ["mos", "analyze", str(tmp_path)])
    assert res.exit_code != 0 and "not a study directory" in str(res.exception)
    res = CliRunner().invoke(cli_app(), ["mos", "simulate", "--run", str(tmp_path)])
    assert "not a run directory" in str(res.exception)
