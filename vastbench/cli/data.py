"""``vastbench data synth`` and ``vastbench data preview``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vastbench.cli.run import _reporter, console

data_app = typer.Typer(help="Datasets: build SynthTalk, preview a dataset.", no_args_is_help=True)


@data_app.command("synth")
def synth(
    profile: str = typer.Option("quick", "--profile", help="quick (80 px, minutes) or full (256 px)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the vastbench cache)."),
    seed: int = typer.Option(0, "--seed"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel processes (default: all cores)."),
) -> None:
    """Build (or finish building) the SynthTalk dataset; deterministic for a seed."""
    import time

    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    args = {"workers": workers} if workers else {}
    ds = SynthTalkDataset(DatasetConfig(name="synthtalk", profile=profile, seed=seed,
                                        root=str(out) if out else None, args=args))
    t0 = time.perf_counter()
    manifest = ds.build(progress=_reporter())
    counts = {}
    for c in manifest.clips:
        counts[c.split] = counts.get(c.split, 0) + 1
    console.print(f"SynthTalk {profile}: {len(manifest)} clips in {time.perf_counter() - t0:.1f}s at {ds.root()}")
    console.print("splits: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@data_app.command("preview")
def preview(root: Path = typer.Argument(..., help="Dataset directory (holds manifest.jsonl)."),
            out: Optional[Path] = typer.Option(None, "--out")) -> None:
    """Write a contact sheet PNG (identities x styles, mouth closed/open) and a montage video."""
    from vastbench.data.synthtalk.preview import preview as _preview

    sheet, video = _preview(root, out)
    console.print(f"contact sheet: {sheet}\nmontage: {video}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
