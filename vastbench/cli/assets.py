"""``vastbench assets``: list frozen assets, import or fetch third-party weights, reproduce (train) and evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vastbench.cli.run import _reporter, console

assets_app = typer.Typer(help="Frozen, versioned assets: list, import, fetch, train (reproduce), evaluate.",
                         no_args_is_help=True)
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
    """What is present, verified against its pin, where it is, and which metric or feature uses it."""
    from vastbench.assets_import import asset_report

    table = Table(show_lines=True)
    for col in ("asset", "state", "sha256", "path", "in use"):
        table.add_column(col, overflow="fold")
    for row in asset_report():
        style = "red" if row["state"].startswith("MISMATCH") else "green" if row["verified"] else None
        state = f"[{style}]{row['state']}[/]" if style else row["state"]
        table.add_row(row["name"], f"{state}\n[dim]{row['pin_text']}[/]",
                      (row["sha256"] or "")[:16], row["path"], row["in_use"])
    console.print(table)


@assets_app.command("import")
def import_cmd(source: Path = typer.Argument(..., help="The file, directory or .zip/.tar to import."),
               name: Optional[str] = typer.Option(None, "--as", help="The asset it is (default: found by its "
                                                                     "sha256 or name)."),
               force: bool = typer.Option(False, "--force",
                                          help="Replace a locally pinned asset and its pin.")) -> None:
    """Verify weights against their pinned sha256 and copy them where vastbench looks (offline)."""
    from vastbench.assets_import import import_asset

    rec = import_asset(source, name=name, force=force)
    pin = "hash recorded as its pin" if rec["pin_recorded"] else f"matches its {rec['pin']} pin"
    console.print(f"imported {rec['name']} to {rec['path']} (sha256 {rec['sha256']}; {pin})")


@assets_app.command("fetch")
def fetch_cmd(name: str = typer.Argument(..., help="The asset to download (see `vastbench assets list`)."),
              force: bool = typer.Option(False, "--force", help="Replace a locally pinned asset and its pin."),
              timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for the server.")) -> None:
    """Download an asset from its pinned URL and import it (on a connected machine)."""
    from vastbench.assets_import import fetch_asset

    rec = fetch_asset(name, force=force, timeout=timeout, progress=_reporter())
    pin = "hash recorded as its pin" if rec["pin_recorded"] else f"matches its {rec['pin']} pin"
    console.print(f"fetched {rec['name']} to {rec['path']} (sha256 {rec['sha256']}; {pin})")


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


@train_app.command("syncnet")
def train_syncnet(out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default: the shipped asset path)."),
                  steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default: the recipe's)."),
                  seed: int = typer.Option(0, "--seed")) -> None:
    """Train the SynthTalk SyncNet (LSE-D/LSE-C without the official weights); evaluate it on test clips."""
    import vastbench.evalnets.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS
    from vastbench.evalnets.syncnet_train import ASSET_NAME, SyncTrainConfig, run_recipe, summary_lines

    cfg = SyncTrainConfig(seed=seed, **({"steps": steps} if steps else {}))
    rec = run_recipe(out or ASSETS[ASSET_NAME].path, cfg, progress=_reporter())
    console.print(f"SynthTalk SyncNet written to {rec['file']} (best val checkpoint: step {rec['best_step']}; "
                  f"training {rec['train_seconds']}s on {rec['threads']} thread(s)), sha256 {rec['sha256']}")
    for line in summary_lines(rec["test"]):
        console.print(line)
    if ASSETS[ASSET_NAME].sha256 and rec["sha256"] != ASSETS[ASSET_NAME].sha256:
        console.print(f"[yellow]differs from the pinned asset ({ASSETS[ASSET_NAME].sha256[:16]}...): bit-identical "
                      "weights need the same torch version, one thread and the CPU; update the pin only when you "
                      "mean to change LSE numbers[/]")


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
