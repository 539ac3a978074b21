"""``vastbench train``: train VAST (one variant) or every ablation with the expression-stage table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vastbench.cli.run import console

train_app = typer.Typer(help="Train models: VAST and its ablations.", no_args_is_help=True)


def _manifest(data: Optional[Path], profile: str):
    from vastbench.config import DatasetConfig
    from vastbench.data.manifest import Manifest
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    if data is not None:
        return Manifest.load(data if data.suffix == ".jsonl" else data / "manifest.jsonl")
    from vastbench.cli.run import _reporter

    return SynthTalkDataset(DatasetConfig(name="synthtalk", profile=profile, seed=0)).load(progress=_reporter())


@train_app.command("vast")
def train_vast(
    ablation: str = typer.Option("vast", "--ablation", help="vast, no_enhancer, no_flow, nar_only, ar_only, no_style."),
    preset: str = typer.Option("quick", "--preset", help="quick (2 CPU cores, minutes) or full (GPU)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A manifest.jsonl or its directory (default: SynthTalk)."),
    profile: str = typer.Option("quick", "--profile", help="SynthTalk profile when --data is not given."),
    steps: Optional[int] = typer.Option(None, "--steps"),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the vastbench cache)."),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train one VAST variant (resumes from its last checkpoint)."""
    from vastbench.paths import cache_dir
    from vastbench.runner import resolve_device
    from vastbench.torchutil import configure_threads
    from vastbench.vast.expression_eval import load_vast_clips, train_variant
    from vastbench.vast.config import dataset_overrides, make_config
    from vastbench.vast.train import train

    configure_threads()
    manifest = _manifest(data, profile)
    dev = resolve_device(device)
    if out is None:
        path = train_variant(ablation, manifest, cache_dir() / "systems", preset, seed, steps, dev, None)
    else:
        cfg = make_config(preset, ablation, **dataset_overrides(manifest))
        val = manifest.split("val")
        path = train(cfg, load_vast_clips(manifest.split("train")), load_vast_clips(val) if val else None, out,
                     steps=steps, device=dev, seed=seed)
    console.print(f"VAST ({ablation}, {preset}) checkpoint: {path}")
    console.print(f"curves: {Path(path).parent / 'curves.png'}")


@train_app.command("ablations")
def ablations(
    preset: str = typer.Option("quick", "--preset"),
    profile: str = typer.Option("quick", "--profile"),
    steps: Optional[int] = typer.Option(None, "--steps"),
    device: str = typer.Option("auto", "--device"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the table as JSON here."),
) -> None:
    """Train every VAST variant on SynthTalk and print the expression-stage ablation table."""
    from vastbench.paths import cache_dir
    from vastbench.runner import resolve_device
    from vastbench.torchutil import configure_threads
    from vastbench.vast.expression_eval import ablation_table

    configure_threads()
    manifest = _manifest(None, profile)
    res = ablation_table(manifest, cache_dir() / "systems", preset=preset, steps=steps, device=resolve_device(device))
    table = Table(title=f"VAST expression stage on SynthTalk {profile} ({res['n_requests']} requests)")
    cols = ("mouth_l1", "upper_l1", "jaw_corr", "style_acc_seen", "style_acc_unseen")
    arrows = ("↓", "↓", "↑", "↑", "↑")
    table.add_column("system")
    for c, a in zip(cols, arrows):
        table.add_column(f"{c} {a}", justify="right")
    table.add_column("train s", justify="right")
    for name, row in res["rows"].items():
        table.add_row(name, *(f"{row[c]:.3f}" for c in cols), str(res["train_seconds"].get(name, "")))
    console.print(table)
    for name, sp in res["style_space"].items():
        console.print(f"{name}: active latent dims {sp['active_dims']}/{sp['latent_dim']}"
                      + (f", interpolation jaw std {['%.3f' % s for s in sp['interp_jaw_std']]} monotonic={sp['interp_monotonic']}"
                         if "interp_jaw_std" in sp else ""))
    if out:
        out.write_text(json.dumps(res, indent=2))
        console.print(f"written: {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
