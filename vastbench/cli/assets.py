"""``vastbench assets``: list frozen assets, reproduce (train) and evaluate them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vastbench.cli.run import _reporter, console

assets_app = typer.Typer(help="Frozen, versioned assets: list, train (reproduce), evaluate.", no_args_is_help=True)
train_app = typer.Typer(help="Reproduce a frozen asset by its recipe.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a frozen asset.", no_args_is_help=True)
assets_app.add_typer(train_app, name="train")
assets_app.add_typer(eval_app, name="eval")


def _synthtalk(profile: str, seed: int):
    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    return SynthTalkDataset(DatasetConfig(name="synthtalk", profile=profile, seed=seed)).load(progress=_reporter())


@assets_app.command("list")
def list_assets() -> None:
    """What is present, verified against its pinned sha256, and what it is for."""
    import vastbench.features.assets_catalog  # noqa: F401  (registers the assets)
    from vastbench.assets import asset_status

    table = Table()
    for col in ("asset", "present", "verified", "sha256", "path"):
        table.add_column(col)
    for row in asset_status():
        table.add_row(row["name"], "yes" if row["present"] else "no", "yes" if row["verified"] else "NO",
                      (row["sha256"] or "")[:16], row["path"])
    console.print(table)


@train_app.command("ppg")
def train_ppg(out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default: the shipped asset path)."),
              steps: int = typer.Option(1000, "--steps"), seed: int = typer.Option(0, "--seed"),
              profile: str = typer.Option("quick", "--profile")) -> None:
    """Train the built-in PPG recognizer on SynthTalk train-split speakers."""
    import vastbench.features.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS
    from vastbench.features.ppg import ASSET, train_recognizer

    from vastbench.torchutil import configure_threads

    configure_threads()
    manifest = _synthtalk(profile, 0)
    target = out or ASSETS[ASSET].path
    rec = train_recognizer(manifest, target, steps=steps, seed=seed, progress=_reporter())
    console.print(f"PPG recognizer written to {rec['path']} in {rec['seconds']}s, sha256 {rec['sha256']}")
    if ASSETS[ASSET].sha256 and rec["sha256"] != ASSETS[ASSET].sha256:
        console.print(f"[yellow]differs from the pinned asset ({ASSETS[ASSET].sha256[:16]}...): "
                      "update the pin only when you mean to change VAST's inputs[/]")


@eval_app.command("ppg")
def eval_ppg(path: Optional[Path] = typer.Option(None, "--path", help="Weights to evaluate (default: the frozen asset)."),
             profile: str = typer.Option("quick", "--profile")) -> None:
    """Frame accuracy of the PPG recognizer on SynthTalk speakers it never saw."""
    import vastbench.features.assets_catalog  # noqa: F401
    from vastbench.features.ppg import PPGRecognizer, evaluate_recognizer

    rec = PPGRecognizer.load(path)
    res = evaluate_recognizer(rec, _synthtalk(profile, 0))
    console.print(f"PPG frame accuracy on unseen speakers {', '.join(res['speakers'])}: "
                  f"{100 * res['frame_accuracy']:.1f}% ({res['frames']} frames, {res['clips']} clips); "
                  f"weights sha256 {rec.sha256[:16]}")


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")
