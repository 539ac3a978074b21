"""``vastbench metrics``: check that the metrics measure what they claim to (``metrics validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from vastbench.cli.run import _reporter, console

metrics_app = typer.Typer(help="Metric checks: the validation harness.", no_args_is_help=True)


def _severities(items: list[str] | None) -> dict[str, tuple[float, ...]]:
    from vastbench.errors import VastbenchError

    out = {}
    for item in items or []:
        name, sep, values = item.partition("=")
        try:
            out[name.strip()] = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            out[name.strip()] = ()
        if not sep or not out[name.strip()]:
            raise VastbenchError(f"--severities '{item}': write PERTURBATION=v1,v2,... e.g. blur=1,2,4")
    return out


@metrics_app.command("validate")
def validate_cmd(
    out: Path = typer.Option(Path("reports/metrics_validation"), "--out", help="Output directory (resumable)."),
    clips: int = typer.Option(8, "--clips", help="Ground-truth test clips to perturb."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metrics (default: psnr, ssim, "
                                          "lpips_offline, m_lmd, f_lmd, style_sim, expr_std_mouth, lse_d, lse_c; "
                                          "add fid for FID, about 15 s per clip and level on one core)."),
    perturbations: Optional[str] = typer.Option(None, "--perturbations", help="Comma-separated, default all: "
                                                "audio_shift, blur, noise, jpeg, frozen, style_swap, identity_swap."),
    severities: Optional[list[str]] = typer.Option(None, "--severities", help="Override one perturbation's "
                                                   "severities, e.g. --severities blur=1,2,4 (repeatable)."),
    profile: str = typer.Option("quick", "--profile", help="SynthTalk profile."),
    split: str = typer.Option("test", "--split", help="Split the clips come from."),
    seed: int = typer.Option(0, "--seed", help="Clip choice and noise seed."),
    bootstrap: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the CIs."),
) -> None:
    """Perturb ground-truth clips (audio shift, blur, noise, JPEG, frozen frames, style and identity swap) and
    check that each metric gets worse, monotonically with severity, where it should."""
    from vastbench.eval import parse_metric_list
    from vastbench.metrics.validate import (DEFAULT_METRICS, PERTURBATIONS, ValidationConfig, resolve_perturbations,
                                            validate_metrics)
    from vastbench.torchutil import configure_threads

    perts = tuple(p.strip() for p in (perturbations or "").split(",") if p.strip()) or tuple(PERTURBATIONS)
    cfg = ValidationConfig(out=out, n_clips=clips, metrics=tuple(parse_metric_list(metrics)) or DEFAULT_METRICS,
                           perturbations=perts, severities=_severities(severities), profile=profile, split=split,
                           seed=seed, n_boot=bootstrap)
    resolve_perturbations(cfg.perturbations, cfg.severities)   # bad names fail before torch is imported
    configure_threads()
    res = validate_metrics(cfg, reporter=_reporter())
    table = Table(title="metric validation (bold: meant to detect)")
    table.add_column("metric")
    for p in perts:
        table.add_column(PERTURBATIONS[p].title)
    rows: dict[str, dict[str, str]] = {}
    for v in res.verdicts:
        cell = v["verdict"]
        if v["verdict"] != "skipped" and v["spearman"] == v["spearman"]:
            cell += f" {v['spearman']:+.2f}"
        colour = {"pass": "green", "partial": "yellow"}.get(v["verdict"], "red" if v["verdict"].startswith("fail")
                                                               else None)
        if v["meant"] and colour:
            cell = f"[bold {colour}]{cell}[/]"
        elif not v["meant"]:
            cell = f"[dim]{cell}[/]"
        rows.setdefault(v["metric"], {})[v["perturbation"]] = cell
    for metric, cells in rows.items():
        table.add_row(metric, *(cells.get(p, "") for p in perts))
    console.print(table)
    for name, reason in res.skipped.items():
        console.print(f"[yellow]skipped {name}:[/] {reason}")
    for key in ("levels_csv", "verdicts_csv", "tex", "png", "markdown"):
        console.print(f"wrote {res.files[key]}")
    if res.n_errors:
        console.print(f"[yellow]{res.n_errors} clip(s) had errors; reasons in {res.files['errors']}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app, name="metrics")
