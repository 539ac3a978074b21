"""``vastbench features extract``: PPG and SyncNet MFCC for every clip of a manifest (cached)."""

from __future__ import annotations

from pathlib import Path

import typer

from vastbench.cli.run import _reporter, console

features_app = typer.Typer(help="Speech features: PPG and SyncNet MFCC, cached by audio content.", no_args_is_help=True)


@features_app.command("extract")
def extract(manifest: Path = typer.Option(..., "--manifest", help="A dataset's manifest.jsonl."),
            what: str = typer.Option("ppg,mfcc", "--features", help="Comma-separated: ppg, mfcc.")) -> None:
    """Extract in batches, resumable: features already in the cache are not recomputed."""
    import time

    from vastbench.data.manifest import Manifest
    from vastbench.errors import VastbenchError
    from vastbench.features.extract import extract_manifest

    which = tuple(w.strip() for w in what.split(",") if w.strip())
    bad = set(which) - {"ppg", "mfcc"}
    if bad:
        raise VastbenchError(f"--features: unknown feature '{sorted(bad)[0]}'; valid: ppg, mfcc")
    t0 = time.perf_counter()
    res = extract_manifest(Manifest.load(manifest), which, progress=_reporter())
    console.print(f"{res['clips']} clips, features {', '.join(res['features'])} in {time.perf_counter() - t0:.1f}s "
                  f"(cache {res['cache']})")


def register(app: typer.Typer) -> None:
    app.add_typer(features_app, name="features")
