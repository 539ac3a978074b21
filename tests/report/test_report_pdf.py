"""pdflatex / pdftoppm wrappers: clear errors when a tool is missing or LaTeX fails."""

from __future__ import annotations

import shutil

import pytest

from vastbench.errors import VastbenchError
from vastbench.report import pdf as P


def test_missing_tools_name_the_debian_packages(tmp_path, monkeypatch):
    tex = tmp_path / "t.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    (tmp_path / "t.pdf").write_bytes(b"%PDF-1.4\n")
    monkeypatch.setattr(P.shutil, "which", lambda name: None)
    assert not P.have_pdflatex() and not P.have_pdftoppm()
    with pytest.raises(VastbenchError, match="pdflatex not found.*texlive-latex-base texlive-latex-recommended"):
        P.compile_tex(tex)
    with pytest.raises(VastbenchError, match="pdftoppm not found.*poppler-utils"):
        P.pdf_to_png(tmp_path / "t.pdf")
    with pytest.raises(VastbenchError, match="no such .tex file"):
        P.compile_tex(tmp_path / "absent.tex")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (Debian: texlive-latex-base)")
def test_latex_error_is_one_clear_line(tmp_path):
    tex = tmp_path / "bad.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n\\nosuchcommand\n\\end{document}\n")
    with pytest.raises(VastbenchError) as err:
        P.compile_tex(tex)
    msg = str(err.value)
    assert "Undefined control sequence" in msg and "l.3" in msg and "bad.log" in msg
    assert (tmp_path / "bad.log").is_file() and not (tmp_path / "bad.aux").exists()
    tex.write_text("\\documentclass{article}\n\\usepackage{nosuchpackage}\n\\begin{document}x\\end{document}\n")
    with pytest.raises(VastbenchError, match="nosuchpackage.sty"):
        P.compile_tex(tex)
