"""``vastbench mos ...``: create a study, serve the rating app, manage judges, export, analyse, simulate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)  # paths and links stay on one line
mos_app = typer.Typer(no_args_is_help=True, help="MOS studies: design, rating app, judges, exports, statistics.")

_DB = typer.Option(None, "--db", help="SQLAlchemy URL (default: sqlite ratings.db in the study directory).")


@mos_app.command("create")
def create(
    run: Path = typer.Option(..., "--run", help="Run directory with systems/<label>/clips."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study directory (default RUN/mos/<study-id>)."),
    systems: Optional[list[str]] = typer.Option(None, "--systems", help="System labels (repeat; default all)."),
    clips: Optional[int] = typer.Option(None, "--clips", help="Content items; each is rated for every system."),
    judges: Optional[int] = typer.Option(None, "--judges", help="Number of judges (default: suite, else 15)."),
    ratings_per_clip: Optional[int] = typer.Option(None, "--ratings-per-clip", help="Ratings per clip."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Design seed (recorded)."),
    training: int = typer.Option(2, "--training", help="Training clips per judge."),
    gold: int = typer.Option(2, "--gold", help="Gold clips per judge."),
    traps: int = typer.Option(1, "--traps", help="Trapping clips per judge."),
    title: Optional[str] = typer.Option(None, "--title"),
    base_url: str = typer.Option("http://localhost:8501", "--base-url", help="Public address of the app, for links."),
    admin_password: Optional[str] = typer.Option(None, "--admin-password", envvar="VASTBENCH_MOS_ADMIN_PASSWORD",
                                                 help="Admin password (default: generated and printed once)."),
    db: Optional[str] = _DB,
) -> None:
    """Design a study from a run directory and issue judge links."""
    from vastbench.mos.design import StudyOptions, create_study

    opts = StudyOptions(systems=systems or None, clips=clips, judges=judges, ratings_per_clip=ratings_per_clip,
                        seed=seed, n_training=training, n_gold=gold, n_trap=traps, title=title,
                        admin_password=admin_password, base_url=base_url)
    res = create_study(run, out, opts, db)
    for note in res.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"study {res.study_id} in {res.study_dir}")
    console.print(f"judge links: {res.study_dir / 'private' / 'links.csv'} (send each judge their own)")
    if res.admin_password:
        console.print(f"admin password (shown once, stored hashed): {res.admin_password}")
    console.print(f"serve it: vastbench mos serve {res.study_dir}" + (f" --db {db}" if db else ""))


@mos_app.command("serve")
def serve(
    study: Path = typer.Argument(..., help="Study directory."),
    db: Optional[str] = _DB,
    port: int = typer.Option(8501, "--port"),
    address: str = typer.Option("127.0.0.1", "--address", help="Bind address (0.0.0.0 to expose; see docs/mos.md)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Public address, for links of added judges."),
) -> None:
    """Check the study, then start the rating app (judges: ?t=TOKEN, admin: ?admin)."""
    from vastbench.mos.serve import ServeConfig, serve as run_server

    raise typer.Exit(run_server(ServeConfig(study, db, port, address, base_url)))


@mos_app.command("export")
def export(
    study: Path = typer.Argument(..., help="Study directory."),
    db: Optional[str] = _DB,
    out: Optional[Path] = typer.Option(None, "--out", help="Export folder (default STUDY/exports/)."),
    include_revoked: bool = typer.Option(False, "--include-revoked"),
) -> None:
    """Export ratings (CSV + Parquet), blind and joined, and the separate un-blinding key."""
    from vastbench.mos.manage import export as do_export, open_study

    sd, store, sid = open_study(study, db, create=False)
    with store:
        paths = do_export(sd, store, sid, out, include_revoked)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


@mos_app.command("add-judge")
def add_judge(
    study: Path = typer.Argument(...),
    db: Optional[str] = _DB,
    replaces: Optional[str] = typer.Option(None, "--replaces", help="Give the new judge this judge's clips."),
    base_url: str = typer.Option("http://localhost:8501", "--base-url"),
) -> None:
    """Add a judge and print their link (also appended to private/links.csv)."""
    from vastbench.mos.manage import add_judge as do_add, open_study

    sd, store, sid = open_study(study, db, create=False)
    with store:
        jid, link = do_add(sd, store, sid, base_url, replaces)
    console.print(f"{jid}: {link}")


@mos_app.command("revoke")
def revoke(
    study: Path = typer.Argument(...),
    judge: str = typer.Argument(..., help="Judge id, e.g. j03."),
    db: Optional[str] = _DB,
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Revoke a judge's link; their ratings leave live results and exports."""
    from vastbench.mos.manage import open_study, revoke_judge

    _, store, sid = open_study(study, db, create=False)
    with store:
        revoke_judge(store, sid, judge, reason)
    console.print(f"{judge} revoked")


@mos_app.command("status")
def status(study: Path = typer.Argument(...), db: Optional[str] = _DB) -> None:
    """Progress per judge and QC flags, in the terminal."""
    from vastbench.mos import monitor
    from vastbench.mos.manage import open_study

    _, store, sid = open_study(study, db, create=False)
    with store:
        console.print(monitor.judge_progress(store, sid).to_string(index=False))
        console.print(monitor.qc_flags(store.ratings_frame(sid)).to_string(index=False))


@mos_app.command("analyze")
def analyze(
    source: Path = typer.Argument(..., help="Study directory, run directory, or ratings CSV/Parquet export."),
    reference: Optional[str] = typer.Option(None, "--reference", help="System the others are tested against "
                                            "(default: the suite's statistics.reference, else 'vast', else the best)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: RUN/mos/analysis or STUDY/analysis)."),
    ci: str = typer.Option("mixed", "--ci", help="CI the tables show: 'mixed' (mixed model) or 't' (t over item means)."),
    delta: float = typer.Option(0.3, "--delta", help="MOS difference the power analysis targets."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PDF/PNG plots."),
    db: Optional[str] = _DB,
) -> None:
    """Screen judges and compute MOS, CIs, tests, agreement, metric-MOS correlation and power."""
    from vastbench.mos.analyze import AnalysisOptions, run_analysis
    from vastbench.mos.report import print_summary

    res = run_analysis(source, out, AnalysisOptions(reference=reference, ci=ci, power_delta=delta, plots=plots), db)
    print_summary(res.analysis, res.paths, console, res.out_dir)


@mos_app.command("simulate")
def simulate(
    run: Path = typer.Option(..., "--run", help="Run directory with metrics/per_clip.csv."),
    judges: int = typer.Option(15, "--judges", help="Simulated judges."),
    ratings_per_clip: Optional[int] = typer.Option(None, "--ratings-per-clip", help="Judges per clip (default: all)."),
    seed: int = typer.Option(0, "--seed"),
    outliers: int = typer.Option(0, "--outliers", help="Judges who rate at random / on an inverted scale."),
    gold: int = typer.Option(2, "--gold", help="Gold clips per judge."),
    traps: int = typer.Option(1, "--traps", help="Trapping clips per judge."),
) -> None:
    """Simulated judges rate the run's clips from its objective metrics (labelled SIMULATED everywhere)."""
    from vastbench.mos.analyze import SimulateOptions, simulate_run

    path, desc = simulate_run(run, SimulateOptions(judges=judges, ratings_per_clip=ratings_per_clip, seed=seed,
                                                   outliers=outliers, gold=gold, traps=traps))
    console.print("[bold red]SIMULATED[/] ratings (simulated judges, not people): " + str(path))
    for crit, m in desc["mapping"].items():
        console.print(f"  {crit}: from {m['metric']} ({'higher' if m['higher_is_better'] else 'lower'} is better)")
    for n in desc["notes"]:
        console.print(f"[yellow]note:[/] {n}")
    console.print(f"analyse them: vastbench mos analyze {run}")


def register(app: typer.Typer) -> None:
    app.add_typer(mos_app, name="mos")
