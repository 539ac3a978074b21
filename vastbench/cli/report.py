"""``vastbench report RUN_DIR``: LaTeX tables, plots and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)


def report(
    run: Path = typer.Argument(..., help="Run directory."),
    reference: Optional[str] = typer.Option(None, "--reference", help="MOS reference system (default: the suite's)."),
    ci: str = typer.Option("mixed", "--ci", help="MOS CI in the tables: 'mixed' (mixed model) or 't' (t over item means)."),
    pdf: Optional[bool] = typer.Option(None, "--pdf/--no-pdf", help="Compile the tables to PDF and PNG "
                                       "(default: when pdflatex is installed)."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL of the MOS study database, if not the default."),
    title: Optional[str] = typer.Option(None, "--title"),
) -> None:
    """Objective, MOS and ablation tables (booktabs), MOS plots, optional PDFs, and report.html."""
    from vastbench.mos.report import ReportOptions, build_report

    res = build_report(run, ReportOptions(reference=reference, ci=ci, pdf=pdf, db=db, title=title))
    if res.analysis and res.analysis.get("simulated"):
        console.print("[bold red]SIMULATED[/]: the MOS tables and plots come from simulated judges")
    for n in res.notes:
        console.print(f"[yellow]note:[/] {n}")
    for p in res.tables + res.pdfs:
        console.print(f"table: {p}")
    for p in res.figures:
        console.print(f"figure: {p}")
    console.print(f"report: {res.html}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
