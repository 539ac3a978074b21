"""The ``vastbench`` command.  Thin: parse arguments, call one library function.

Errors a user can cause are printed on one line without a traceback; ``--debug``
(or ``VASTBENCH_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from vastbench.errors import VastbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluation and MOS benchmarking for expressive talking-head generation.")
_state = {"debug": bool(os.environ.get("VASTBENCH_DEBUG"))}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")) -> None:
    if debug:
        _state["debug"] = True
    # The console shows warnings (debug: everything); the run's log.txt gets INFO.
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if _state["debug"] else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _register_commands() -> None:
    from vastbench.cli import assets as assets_cmds
    from vastbench.cli import data as data_cmds
    from vastbench.cli import features as features_cmds
    from vastbench.cli import report as report_cmds
    from vastbench.cli import train as train_cmds
    from vastbench.cli import mos as mos_cmds
    from vastbench.cli import run as run_cmds
    from vastbench.cli import eval as eval_cmds
    from vastbench.cli import metrics as metrics_cmds
    from vastbench.cli import requests as requests_cmds
    from vastbench.cli import bench as bench_cmds
    from vastbench.cli import generate as generate_cmds

    run_cmds.register(app)
    data_cmds.register(app)
    assets_cmds.register(app)
    mos_cmds.register(app)
    features_cmds.register(app)
    train_cmds.register(app)
    report_cmds.register(app)
    eval_cmds.register(app)
    metrics_cmds.register(app)
    requests_cmds.register(app)
    bench_cmds.register(app)
    generate_cmds.register(app)


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    debug = _state["debug"] or "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Standalone mode: typer prints usage errors itself and exits 2.
        app(args=argv, prog_name="vastbench")
    except VastbenchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted; resume with `vastbench run --resume RUN_DIR`", err=True)
        sys.exit(130)
