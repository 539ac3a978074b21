"""``vastbench run``, ``vastbench suites``, ``vastbench validate``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=False)


def _reporter():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from vastbench.runner import Reporter

    def stage(name: str, msg: str) -> None:
        console.print(f"[bold cyan]{name}[/] {msg}".rstrip())

    def track(items, desc, total=None):
        if total is None:
            items = list(items)
            total = len(items)
        if not total:
            return
        with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False) as prog:
            task = prog.add_task(desc, total=total)
            for item in items:
                yield item
                prog.advance(task)

    return Reporter(stage=stage, track=track)


def _print_summary(result) -> None:
    summary = result.summary
    table = Table(title=f"{summary['suite']} — mean [CI]")
    table.add_column("system")
    for name, d in summary["metrics"].items():
        table.add_column(f"{name} {'↑' if d['higher_is_better'] else '↓'}", justify="right")
    table.add_column("failed", justify="right")
    for label, s in summary["systems"].items():
        cells = []
        for name in summary["metrics"]:
            st = s["metrics"][name]
            m = st["mean"]
            cells.append("inf" if math.isinf(m) else "–" if math.isnan(m) else
                         f"{m:.3f}" if math.isnan(st["ci_low"]) else f"{m:.3f} [{st['ci_low']:.3f}, {st['ci_high']:.3f}]")
        table.add_row(label, *cells, str(s["n_failed"]))
    console.print(table)
    console.print(f"run directory: {result.run.root}")
    for t in result.tables:
        console.print(f"table: {t}")
    console.print(f"report: {result.run.root / 'report.html'}")
    if result.mos_study is not None:
        console.print(f"MOS study: vastbench mos serve {result.mos_study}  (judge links in "
                      f"{result.mos_study / 'private' / 'links.csv'}, admin password in "
                      f"{result.mos_study / 'private' / 'admin_password.txt'})")
    if result.failures:
        console.print(f"[yellow]{result.failures} clip(s) failed; reasons in systems/*/errors.jsonl[/]")


def run(
    suite: Optional[str] = typer.Option(None, "--suite", "-s", help="Suite name (see `vastbench suites`) or a YAML path."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Dataset profile, e.g. quick or full."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<suite>/<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Resume an interrupted run directory."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a suite key: key.path=value."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1,
                                       help="Training jobs at once (default: one per CPU core up to 4; 1 on GPU)."),
) -> None:
    """Run a suite end to end: data, training, generation, metrics, tables, report."""
    from vastbench.config import load_suite
    from vastbench.errors import VastbenchError
    from vastbench.rundir import new_run_dir
    from vastbench.runner import resume_run, run_suite

    if resume is not None:
        if suite or set_ or profile or out:
            raise VastbenchError("--resume takes the run directory alone; the suite comes from its manifest.json")
        result = resume_run(resume, device, _reporter(), jobs=jobs)
    else:
        if not suite:
            raise VastbenchError("give --suite NAME (see `vastbench suites`) or --resume RUN_DIR")
        cfg = load_suite(suite, set_, profile)
        run_dir = new_run_dir(cfg.name, out)
        console.print(f"run directory: {run_dir.root}")
        result = run_suite(cfg, run_dir, device, _reporter(), jobs=jobs)
    _print_summary(result)


def suites() -> None:
    """List the suites with one-line descriptions."""
    from vastbench.config import list_suites, load_suite

    table = Table(show_header=True)
    table.add_column("suite")
    table.add_column("version", justify="right")
    table.add_column("description")
    for name, path in list_suites():
        cfg = load_suite(path)
        table.add_row(name, str(cfg.version), cfg.description.strip())
    console.print(table)


def validate(
    suite: str = typer.Argument(..., help="Suite name or YAML path."),
    profile: Optional[str] = typer.Option(None, "--profile"),
    set_: Optional[list[str]] = typer.Option(None, "--set"),
) -> None:
    """Dry run: resolve the suite, check names and assets, say what would be built, trained, generated."""
    from vastbench.validate import validate_suite_plan

    plan = validate_suite_plan(suite, set_, profile)
    for line in plan:
        console.print(line)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("suites")(suites)
    app.command("validate")(validate)
