"""``vastbench data synth``, ``data preview``, ``data ingest`` and ``data ingest-setup``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vastbench.cli.run import _reporter, console

data_app = typer.Typer(help="Datasets: build SynthTalk, ingest real videos, preview a dataset.", no_args_is_help=True)


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


@data_app.command("ingest")
def ingest_cmd(
    layout: str = typer.Option(..., "--layout", help="hdtf, mead, voxceleb or folder (one subfolder per speaker)."),
    src: Path = typer.Option(..., "--src", help="The folder holding the raw videos."),
    out: Path = typer.Option(..., "--out", help="Where the dataset is written (manifest.jsonl, video/, ...)."),
    profile: str = typer.Option("quick", "--profile", help="quick (80 px crops) or full (256 px)."),
    jobs: int = typer.Option(1, "--jobs", help="Parallel processes (each runs its own MediaPipe worker)."),
    components: int = typer.Option(32, "--components", help="Expression PCA dimensions."),
    test_speakers: Optional[str] = typer.Option(None, "--test-speakers",
                                                help="Comma-separated speakers to hold out for test "
                                                     "(default: the layout's convention)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N videos (to try settings)."),
    ppg: str = typer.Option("builtin", "--ppg", help="builtin (trained on SynthTalk voices) or wav2vec2 "
                                                     "(pretrained phoneme model for real speech; import it first)."),
) -> None:
    """Ingest real talking-head videos: 25 fps, 16 kHz, face crops, mesh, pose, expression PCA, PPG."""
    from vastbench.data.ingest.pipeline import IngestConfig, ingest

    cfg = IngestConfig(layout=layout, src=src, out=out, profile=profile, jobs=jobs, components=components,
                       test_speakers=[s.strip() for s in test_speakers.split(",") if s.strip()] if test_speakers
                       else None, limit=limit, ppg=ppg)
    s = ingest(cfg, progress=_reporter())
    console.print(f"ingested {s['n_clips']} of {s['n_videos']} videos ({s['n_frames']} frames) into {s['root']}")
    console.print("splits: " + ", ".join(f"{k} {v}" for k, v in sorted(s["splits"].items()))
                  + f"; test speakers: {', '.join(s['test_speakers']) or 'none'}"
                  + ("" if s["speaker_disjoint_test"] else " (not speaker-disjoint: one speaker only)"))
    if s["n_skipped"]:
        console.print(f"[yellow]skipped {s['n_skipped']} videos; reasons in {Path(s['root']) / 'skipped.jsonl'}[/]")
    fps = s["timing"]["frames_per_second_per_job"]
    console.print(f"face model: {s['face_model']['components']} expression components "
                  f"({100 * s['face_model']['explained_variance']:.1f}% of the mesh variance)"
                  + (f"; {fps:.1f} frames/s per job" if fps else ""))
    console.print(f"use it in a suite: --set dataset.name=manifest --set dataset.root={s['root']}")


@data_app.command("ingest-setup")
def ingest_setup(force: bool = typer.Option(False, "--force", help="Recreate the environment from scratch."),
                 env: Optional[Path] = typer.Option(None, "--env", help="Where to create it (default: beside the "
                                                                        "active virtual environment).")) -> None:
    """Create the isolated MediaPipe environment that ingestion uses (once; needs PyPI)."""
    from vastbench.data.ingest.mediapipe_env import MEDIAPIPE_VERSION, default_env_dir, setup_env

    target = env or default_env_dir()
    console.print(f"installing mediapipe=={MEDIAPIPE_VERSION} into {target} (isolated: it needs numpy<2, protobuf<5)")
    info = setup_env(target, force=force)
    console.print(f"ready: mediapipe {info['mediapipe']}, numpy {info['numpy']}, python {info['python']}")
    if env is not None and env != default_env_dir():
        console.print(f"point vastbench at it with: export VASTBENCH_MEDIAPIPE_ENV={env}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
