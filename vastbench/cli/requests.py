"""``vastbench requests export``: the request list of a suite, for running external methods on it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vastbench.cli.run import _reporter, console

requests_app = typer.Typer(help="A suite's request list, for running external methods on exactly the same inputs.",
                           no_args_is_help=True)


@requests_app.callback()
def _group() -> None:
    """A suite's request list, for running external methods on exactly the same inputs."""


@requests_app.command("export")
def export(
    suite: str = typer.Option(..., "--suite", "-s", help="Suite name (see `vastbench suites`) or a YAML path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write (default runs/<suite>/requests)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Dataset profile, e.g. quick or full."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a suite key: key.path=value."),
) -> None:
    """Write requests.csv, requests.json and a README.txt saying what videos to produce (builds the dataset if missing)."""
    from baselines.external.export import export_requests
    from vastbench.config import load_suite

    cfg = load_suite(suite, set_, profile)
    res = export_requests(cfg, out, reporter=_reporter())
    console.print(f"{res.n_requests} requests of suite {cfg.name} written to {res.folder}: "
                  + ", ".join(p.name for p in res.files))
    console.print(f"make the videos {res.folder / 'README.txt'} describes, then import them with "
                  "`generator: external` (see baselines/external/README.md)")


def register(app: typer.Typer) -> None:
    app.add_typer(requests_app, name="requests")
