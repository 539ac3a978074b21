"""``vastbench bench``: frames per second and real-time factor of every stage and metric; compare two runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from vastbench.cli.run import console


def _num(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if abs(x) >= 1 else f"{x:.{digits + 2}f}"


def _env_lines(env: dict, settings: dict) -> list[str]:
    git = env.get("git") or {}
    sha = (git.get("sha") or "unknown")[:12] + (" (dirty)" if git.get("dirty") else "")
    cuda = env.get("cuda")
    lines = [f"CPU: {env['host_cpu']}, {env['cores']} cores; torch threads {env['torch_threads']}; "
             f"load avg at start {env.get('load_avg_start')}, at end {env.get('load_avg_end')}",
             f"GPU: {cuda['name']} (CUDA {cuda['cuda_version']}, bf16 {cuda['bf16_supported']})" if cuda
             else "GPU: none (CUDA not available)",
             f"torch {env['torch']}, numpy {env['numpy']}, python {env['python']}; vastbench git {sha}",
             f"mode {'quick' if settings['quick'] else 'default'}: {settings['repeats']} timed run(s) after a "
             f"warm-up (median); expression batch sizes {settings['batch_sizes']}"]
    return lines


def print_result(result: dict) -> None:
    for line in _env_lines(result["env"], result["settings"]):
        console.print(line)
    table = Table(title="frames per second; RTF = fps / 25 (> 1: faster than real time)")
    for col, just in (("benchmark", "left"), ("device", "left"), ("frames", "right"), ("s/call", "right"),
                      ("fps", "right"), ("RTF", "right"), ("fps/CPU-s", "right"), ("note", "right")):
        table.add_column(col, justify=just, overflow="fold")
    notes: dict[str, int] = {}
    for r in result["results"]:
        note = escape(r["note"] or "")
        if r["status"] != "ok":
            note = f"[{'yellow' if r['status'] == 'skipped' else 'red'}]{r['status']}[/]: {escape(r['reason'] or '')}"
        elif r["extra"].get("stage_s"):
            stage = r["extra"]["stage_s"]
            total = sum(stage.values())
            note += "; time: " + ", ".join(f"{k[:-2]} {100 * v / total:.0f}%" for k, v in stage.items())
        ref = notes.setdefault(note, len(notes) + 1) if note else None
        device = r["device"] + ("" if r["precision"] == "fp32" else f" {r['precision']}")
        table.add_row(f"{r['section']} {r['name']}", device, str(r["frames"] or ""), _num(r["wall_s"], 2),
                      _num(r["fps"]), _num(r["rtf"], 2), _num(r["cpu_fps"]), f"[{ref}]" if ref else "")
    console.print(table)
    for note, i in notes.items():
        console.print(f"\\[{i}] {note}", highlight=False)
    console.print(f"total {result['total_s']:.1f} s")


def print_comparison(cmp: dict, a: Path, b: Path) -> None:
    table = Table(title=f"B / A speed (> 1: B is faster)   A = {a}   B = {b}")
    for col, just in (("benchmark", "left"), ("A", "right"), ("B", "right"), ("unit", "left"),
                      ("B / A", "right"), ("B / A per CPU-s", "right"), ("notes", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in cmp["rows"]:
        ratio = r["ratio"]
        color = None if ratio is None else "green" if ratio >= 1.1 else "red" if ratio <= 0.9 else None
        text = "–" if ratio is None else f"{ratio:.2f}"
        cell = text if color is None else f"[{color}]{text}[/]"
        cpu = "–" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        table.add_row(r["id"], _num(r["a"]), _num(r["b"]), r["unit"], cell, cpu,
                      escape(r["status"] or ""))
    console.print(table)
    for key, (x, y) in cmp["env"].items():
        mark = "" if x == y else "  [yellow]differs[/]"
        console.print(f"{key}: A {x} | B {y}{mark}")
    if cmp["geomean_ratio"] is not None:
        console.print(f"geometric mean of B / A over {cmp['matched']} matched benchmark(s): {cmp['geomean_ratio']:.3f}")


def bench(
    quick: bool = typer.Option(False, "--quick", help="Small inputs and one timed run each (< 1 minute on 2 cores)."),
    only: Optional[str] = typer.Option(None, "--only",
                                       help="Comma list of sections (expression, rasterizer, renderer, e2e, metrics) "
                                            "and/or metrics (lse, fid, lpips, psnr, ssim, style_sim, m_lmd, decode)."),
    device: str = typer.Option("auto", "--device", help="auto: CPU, and CUDA when available; cpu; cuda: CUDA only."),
    batch_sizes: str = typer.Option("1,8", "--batch-sizes", help="Expression-model batch sizes."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Timed runs per benchmark (default 3; "
                                                                         "--quick 1)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="torch/BLAS threads (default: $VASTBENCH_THREADS, else 1 on <= 2 cores, "
                                               "else all)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write every number and the environment here."),
    compare_runs: bool = typer.Option(False, "--compare", help="Compare two --json files given as FILES (A B): "
                                                               "print B / A per benchmark; runs nothing."),
    files: Optional[list[Path]] = typer.Argument(None, help="With --compare: the two JSON files A and B."),
) -> None:
    """Frames per second and real-time factor of the expression model, rasterizer, renderer, end-to-end
    generation and every metric, on the CPU and (when present) CUDA."""
    from vastbench.bench import BenchConfig, compare, load_result, run_bench, set_threads
    from vastbench.errors import VastbenchError

    if compare_runs or files:
        if not compare_runs or len(files or []) != 2:
            raise VastbenchError(f"give --compare and exactly two result files (vastbench bench --compare A.json "
                                 f"B.json), got {len(files or [])} file(s)")
        a, b = files
        print_comparison(compare(load_result(a), load_result(b)), a, b)
        return
    try:
        sizes = tuple(int(x) for x in batch_sizes.split(",") if x.strip())
    except ValueError:
        raise VastbenchError(f"--batch-sizes {batch_sizes!r}: give comma-separated integers, e.g. 1,8") from None
    cfg = BenchConfig(quick=quick, only=tuple((only or "").split(",")), device=device, batch_sizes=sizes,
                      repeats=repeats)
    devices = cfg.devices()   # a one-line error for --device cuda without CUDA, before any work
    n = set_threads(threads)
    console.print(f"[bold cyan]bench[/] {'quick' if quick else 'default'} mode on {', '.join(devices)}, "
                  f"{n} torch thread(s); sections: {', '.join(cfg.sections())}")

    def progress(r: dict) -> None:
        if r["status"] == "ok":
            speed = f"{r['fps']:.1f} fps (RTF {r['rtf']:.2f})" if r["fps"] else f"{r['wall_s']:.2f} s"
        else:
            speed = f"{r['status']}: {r['reason']}"
        console.print(escape(f"  {r['section']} {r['name']} ({r['device']}, {r['precision']}): {speed}"))

    result = run_bench(cfg, progress)
    print_result(result)
    if json_out is not None:
        from vastbench.rundir import atomic_write_json

        atomic_write_json(json_out, result)
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
