"""``vastbench eval``: re-score a run directory, or score any folder of mp4s against references."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vastbench.cli.run import _print_summary, _reporter, console


def eval_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="A run directory: recompute its metrics and tables."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="A folder of generated .mp4 clips."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Ground-truth clips, matched by file stem."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Driving .wav files by stem (LSE uses them for "
                                                               "clips without an audio track)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (folder mode)."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric names, each optionally "
                                          "with arguments (lse_d:crops=centre). With --run: recomputed from "
                                          "scratch and added to the suite's; folder mode default: "
                                          "psnr,ssim,m_lmd,f_lmd."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (with --run)."),
    ci: float = typer.Option(0.95, "--ci", help="Bootstrap CI level (folder mode)."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples (folder mode)."),
) -> None:
    """Evaluate without generating: `--run RUN_DIR`, or `--videos DIR --reference DIR --out DIR`."""
    from vastbench.errors import VastbenchError
    from vastbench.eval import DEFAULT_FOLDER_METRICS, FolderEvalConfig, evaluate_folder, evaluate_run, \
        parse_metric_specs

    names = parse_metric_specs(metrics)
    if run is not None:
        if videos or reference or audio or out:
            raise VastbenchError("--run takes the run directory alone (with --metrics); --videos/--reference/--out "
                                 "are for evaluating a folder")
        _print_summary(evaluate_run(run, names, device, _reporter()))
        return
    if videos is None or reference is None or out is None:
        raise VastbenchError("give --run RUN_DIR, or --videos DIR --reference DIR --out DIR")
    if not 0 < ci < 1 or bootstrap < 1:
        raise VastbenchError(f"--ci must be in (0, 1) and --bootstrap positive, got {ci} and {bootstrap}")
    cfg = FolderEvalConfig(videos=videos, reference=reference, out=out, audio=audio,
                           metrics=names or list(DEFAULT_FOLDER_METRICS), ci=ci, n_boot=bootstrap)
    res = evaluate_folder(cfg, _reporter())
    table = Table(title=f"{videos} vs {reference}: mean [CI]")
    for col in ("metric", "mean", "CI", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, st in res.summary["metrics"].items():
        m = st["mean"]
        mean = "inf" if math.isinf(m) else "-" if math.isnan(m) else f"{m:.4f}"
        band = "" if math.isnan(st["ci_low"]) else f"[{st['ci_low']:.4f}, {st['ci_high']:.4f}]"
        table.add_row(f"{name} {'↑' if st['higher_is_better'] else '↓'}", mean, band, str(st["n"]))
    console.print(table)
    for p in (res.per_clip_csv, res.summary_json, *res.tables):
        console.print(f"wrote {p}")
    if res.n_failed:
        console.print(f"[yellow]{res.n_failed} clip(s) failed; one-line reasons in {res.errors_jsonl}[/]")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
