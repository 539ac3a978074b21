"""Compile LaTeX tables to PDF (pdflatex) and render a PDF page to PNG (pdftoppm).

Both tools are Debian packages, not Python ones: ``texlive-latex-base`` and
``texlive-latex-recommended`` (pdflatex, booktabs, geometry) and
``poppler-utils`` (pdftoppm).  When a tool is absent the functions raise
:class:`~vastbench.errors.VastbenchError` naming the package to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from vastbench.errors import VastbenchError

TEX_PACKAGES = "texlive-latex-base texlive-latex-recommended"
PNG_PACKAGES = "poppler-utils"


def have_pdflatex() -> bool:
    return shutil.which("pdflatex") is not None


def have_pdftoppm() -> bool:
    return shutil.which("pdftoppm") is not None


def _tex_error(log: str) -> str:
    """The first LaTeX error of a log, with its line reference, on one line."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            where = next((ln.strip() for ln in lines[i + 1:i + 8] if re.match(r"^l\.\d+", ln)), "")
            return (line[1:].strip() + (f" at {where}" if where else ""))[:300]
    missing = re.search(r"File `([^']+)' not found", log)
    if missing:
        return f"LaTeX package file {missing.group(1)} not found"
    return "see the log"


def compile_tex(path: str | Path, out_dir: str | Path | None = None, timeout: float = 120.0) -> Path:
    """Compile a standalone .tex with pdflatex; returns the PDF path (next to the .tex by default).

    Runs in a temporary folder (no .aux/.log litter) with ``-halt-on-error``;
    a LaTeX error raises VastbenchError with the first error line and the
    path of the kept log.
    """
    tex = Path(path).resolve()
    if not tex.is_file():
        raise VastbenchError(f"{tex}: no such .tex file")
    exe = shutil.which("pdflatex")
    if exe is None:
        raise VastbenchError(f"pdflatex not found; install it (Debian: apt-get install {TEX_PACKAGES}) "
                             f"or compile {tex.name} elsewhere")
    dest = Path(out_dir).resolve() if out_dir is not None else tex.parent
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vastbench-tex-") as tmp:
        env = dict(os.environ, TEXINPUTS=f"{tex.parent}{os.pathsep}", openout_any="p")
        try:
            proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                                   f"-output-directory={tmp}", tex.name], cwd=tex.parent, env=env,
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise VastbenchError(f"{tex}: pdflatex took longer than {timeout:g} s; compile it by hand to see why") from None
        log_path = Path(tmp) / (tex.stem + ".log")
        log = log_path.read_text(errors="replace") if log_path.exists() else proc.stdout
        pdf = Path(tmp) / (tex.stem + ".pdf")
        if proc.returncode != 0 or not pdf.is_file():
            kept = dest / (tex.stem + ".log")
            kept.write_text(log)
            raise VastbenchError(f"{tex}: pdflatex failed: {_tex_error(log)} (full log: {kept})")
        target = dest / pdf.name
        shutil.move(str(pdf), target)
    return target


def pdf_to_png(pdf: str | Path, png: str | Path | None = None, dpi: int = 150, page: int = 1, trim: bool = True,
               margin: int = 12) -> Path:
    """Render one page of a PDF to PNG with pdftoppm; ``trim`` crops the white page margins."""
    pdf = Path(pdf).resolve()
    if not pdf.is_file():
        raise VastbenchError(f"{pdf}: no such PDF")
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise VastbenchError(f"pdftoppm not found; install it (Debian: apt-get install {PNG_PACKAGES})")
    out = Path(png) if png is not None else pdf.with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="vastbench-png-") as tmp:
        base = Path(tmp) / "page"
        proc = subprocess.run([exe, "-png", "-r", str(int(dpi)), "-f", str(page), "-l", str(page), "-singlefile",
                               str(pdf), str(base)], capture_output=True, text=True, timeout=120)
        made = base.with_suffix(".png")
        if proc.returncode != 0 or not made.is_file():
            raise VastbenchError(f"{pdf}: pdftoppm failed ({proc.stderr.strip()[:200] or proc.returncode})")
        if trim:
            _trim(made, margin)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), out)
    return out


def _trim(png: Path, margin: int) -> None:
    from PIL import Image, ImageChops

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    bg = Image.new("RGB", rgb.size, (255, 255, 255))
    box = ImageChops.difference(rgb, bg).getbbox()
    if box is None:
        return
    l, t, r, b = box
    box = (max(l - margin, 0), max(t - margin, 0), min(r + margin, rgb.width), min(b + margin, rgb.height))
    rgb.crop(box).save(png)


__all__ = ["compile_tex", "pdf_to_png", "have_pdflatex", "have_pdftoppm", "TEX_PACKAGES", "PNG_PACKAGES"]
