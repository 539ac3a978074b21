"""Training loop for VAST as a library function (the CLI and the runner call ``train``).

    out_dir/
      last.pt        latest checkpoint (every ``ckpt_every`` steps; resume point)
      model.pt       the final model (same format, no optimizer state)
      losses.csv     one row per step: losses, lr, grad norm; val columns on eval steps
      curves.png     the loss curves

Resuming restores model, optimizer, step and every RNG (torch and the window
sampler), and drops CSV rows after the checkpoint, so an interrupted run ends
with the same weights and numbers as an uninterrupted one (on the same device).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vastbench import distributed as dist
from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_bytes
from vastbench.trainstate import read_loss_rows, restore_rng, rng_state, write_loss_rows
from vastbench.vast.checkpoint import load_checkpoint, save_checkpoint
from vastbench.vast.config import VastConfig
from vastbench.vast.data import ClipDataset, WindowSampler, feature_stats, fixed_batches, to_device
from vastbench.vast.model import VastModel, count_parameters

log = logging.getLogger(__name__)

Progress = Callable[[int, int, dict], None]
LOSS_KEYS = ("loss", "recon", "velocity", "moments", "kl", "kl_closed", "recon_mouth", "recon_upper", "recon_pose", "beta",
             "ss_prob")
COLUMNS = ("step", *LOSS_KEYS, "lr", "grad_norm", "val_loss", "val_recon", "val_free_l1", "elapsed_s")


def train(cfg: VastConfig, train_set: ClipDataset | list[dict], val_set: ClipDataset | list[dict] | None,
          out_dir: str | Path, steps: int | None = None, device: str = "cpu", seed: int = 0, resume: bool = True,
          progress: Progress | bool | None = None, model_cls: type[VastModel] = VastModel) -> Path:
    """Train VAST until ``steps`` (default ``cfg.steps``); return the path of ``model.pt``.

    ``progress``: None -> a rich bar when stderr is a terminal; True/False -> force on/off; a callable
    ``(step, total, row)`` -> called after every step (the runner's reporter).
    ``model_cls``: a VastModel subclass to train with the same loop (baselines that swap a module).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = cfg.steps if steps is None else int(steps)
    train_ds, val_ds = _dataset(train_set, cfg, "train"), _dataset(val_set, cfg, "val") if val_set else None

    world, rank = dist.world_size(), dist.rank()
    if world > 1 and cfg.batch_size % world:
        raise VastbenchError(f"DDP: batch_size {cfg.batch_size} is not divisible by the {world} processes; the "
                             f"global batch is split evenly, pick a multiple of {world}")
    torch.manual_seed(seed)
    model = model_cls(cfg)  # VastModel, or a baseline built on its parts
    model.set_normalizer(*feature_stats(train_ds, cfg))
    model.to(device)
    opt = make_optimizer(model, cfg)
    sampler = WindowSampler(train_ds, cfg, seed)
    if sampler.n_self_prompted:
        log.warning("%d of %d training clips have no other clip of their style; they are their own style prompt",
                    sampler.n_self_prompted, len(train_ds))

    step, rows = 0, []
    if resume and (out_dir / "last.pt").exists():
        step = _restore(out_dir / "last.pt", model, opt, sampler, cfg, device)
        rows = [r for r in read_loss_rows(out_dir / "losses.csv") if int(r["step"]) <= step]
        log.info("resumed %s at step %d", out_dir, step)
    log.info("VAST %s: %d parameters, %d train clips, training to step %d on %s",
             cfg.decoder, count_parameters(model), len(train_ds), steps, device)

    val_batches = fixed_batches(val_ds, cfg, cfg.eval_batches) if val_ds is not None else []
    loss_fn = model.loss
    if world > 1:
        # DDP over a module whose forward is the loss: gradients are averaged over the ranks, each of
        # which computes the loss of its slice of the same global batch (every rank draws the global
        # batch from the same seeded sampler and keeps rows rank*b .. (rank+1)*b).
        from torch.nn.parallel import DistributedDataParallel

        dev = torch.device(device)
        loss_fn = DistributedDataParallel(_LossModule(model), device_ids=[dev.index] if dev.type == "cuda" else None,
                                          find_unused_parameters=True)
        log.info("DDP: rank %d of %d, %d of the global batch of %d", rank, world, cfg.batch_size // world,
                 cfg.batch_size)
    with _progress_bar(progress if dist.is_main() else False, steps, step) as report:
        step = _loop(model, opt, sampler, val_batches, cfg, step, steps, device, rows, out_dir, report, loss_fn)
    if not dist.is_main():
        dist.barrier()  # rank 0 writes model.pt
        return out_dir / "model.pt"
    path = _finish(model, step, rows, out_dir, seed)
    dist.barrier()
    return path


class _LossModule(torch.nn.Module):
    """``forward(batch, step)`` = ``model.loss(batch, step)``, so DDP can wrap the training loss."""

    def __init__(self, model: VastModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        return self.model.loss(batch, step)


def _rank_slice(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This rank's rows of a global batch (all of it single-process)."""
    world, rank = dist.world_size(), dist.rank()
    if world == 1:
        return batch
    b = next(iter(batch.values())).shape[0] // world
    return {k: v[rank * b:(rank + 1) * b] for k, v in batch.items()}


def _loop(model, opt, sampler, val_batches, cfg, step, steps, device, rows, out_dir, report, loss_fn=None) -> int:
    amp = _autocast(device)
    loss_fn = loss_fn or model.loss
    main = dist.is_main()
    t0 = time.perf_counter() - (float(rows[-1]["elapsed_s"]) if rows else 0.0)
    while step < steps:
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = to_device(_rank_slice(sampler.batch(cfg.batch_size)), device)
        model.train()
        with amp:
            out = loss_fn(batch, step)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        row = {"step": step, **{k: float(out[k].detach()) for k in LOSS_KEYS if k in out}, "lr": lr,
               "grad_norm": float(grad_norm)}
        if val_batches and (step % cfg.eval_every == 0 or step == steps):
            row.update(evaluate(model, val_batches, step, device))
        row["elapsed_s"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        report(step, steps, row)
        if not math.isfinite(row["loss"]):
            raise VastbenchError(f"VAST training diverged at step {step} (loss {row['loss']}); lower lr "
                                 f"(now {cfg.lr}) or kl_weight, or check the data for outliers")
        if step % cfg.log_every == 0:
            log.info("step %d/%d loss %.4f recon %.4f kl %.3f lr %.2e", step, steps, row["loss"], row["recon"],
                     row.get("kl", 0.0), lr)
        if step % cfg.ckpt_every == 0 and step < steps and main:
            _checkpoint(out_dir, model, opt, sampler, step, rows)
    if main:
        _checkpoint(out_dir, model, opt, sampler, step, rows)
    return step


def _finish(model: VastModel, step: int, rows: list[dict], out_dir: Path, seed: int) -> Path:
    final = out_dir / "model.pt"
    extra = {"seed": seed, "final": {k: v for k, v in (rows[-1] if rows else {}).items() if k != "step"}}
    save_checkpoint(final, model, None, step, extra=extra)
    return final


# ---------------------------------------------------------------------- pieces
def _dataset(data: ClipDataset | list[dict], cfg: VastConfig, what: str) -> ClipDataset:
    if isinstance(data, ClipDataset):
        return data
    try:
        return ClipDataset(list(data), cfg)
    except VastbenchError as exc:
        raise VastbenchError(f"VAST {what} set: {exc}") from None


def make_optimizer(model: VastModel, cfg: VastConfig) -> torch.optim.AdamW:
    # Decay matrices only; biases, norms and the per-channel scales stay undecayed (as in nanoGPT).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_at(step: int, cfg: VastConfig) -> float:
    """Linear warm-up, then cosine decay to lr * min_lr_ratio at cfg.steps (flat after)."""
    if step < cfg.lr_warmup:
        return cfg.lr * (step + 1) / cfg.lr_warmup
    span = max(cfg.steps - cfg.lr_warmup, 1)
    progress = min(1.0, (step - cfg.lr_warmup) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * progress))


def _autocast(device: str | torch.device):
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: VastModel, batches: list[dict], step: int, device: str | torch.device) -> dict[str, float]:
    """Validation: Eq. 7 loss (teacher-forced, fixed noise) and the free-running L1 (standardized units)."""
    model.eval()
    losses, recons, free = [], [], []
    for i, batch in enumerate(batches):
        batch = to_device(batch, device)
        with _autocast(device):
            out = model.loss(batch, step, generator=torch.Generator().manual_seed(i))
            style = model.encode_style(batch["prompt"], batch["prompt_mask"], batch["prompt_ppg"])
            code = model.with_prompt_stats(style.z.float(), batch["prompt"], batch["prompt_mask"])
            off, scale = (a.unsqueeze(1) for a in model.affine(code))
            pred = model.decoder.generate(batch["ppg"], batch["mask"], code) * scale + off
        valid = batch["mask"].unsqueeze(-1).float()
        err = (pred.float() - model.normalize(batch["x"], batch["mask"])).abs()
        losses.append(float(out["loss"]))
        recons.append(float(out["recon"]))
        free.append(float((err * valid).sum() / (valid.sum() * err.shape[-1])))
    model.train()
    return {"val_loss": float(np.mean(losses)), "val_recon": float(np.mean(recons)), "val_free_l1": float(np.mean(free))}


# ---------------------------------------------------------------------- checkpoints and logs
def _checkpoint(out_dir: Path, model, opt, sampler, step: int, rows: list[dict]) -> None:
    save_checkpoint(out_dir / "last.pt", model, opt, step, rng=rng_state(sampler))
    write_loss_rows(out_dir / "losses.csv", rows, COLUMNS)
    write_curves(out_dir / "curves.png", rows)


def _restore(path: Path, model: VastModel, opt, sampler: WindowSampler, cfg: VastConfig, device) -> int:
    state = load_checkpoint(path, map_location=device)
    if state["config"] != cfg.to_dict():
        changed = sorted(k for k in cfg.to_dict() if state["config"].get(k) != cfg.to_dict()[k])
        raise VastbenchError(f"{path} was trained with a different VAST config ({', '.join(changed[:4])} differ); "
                             f"use a new out_dir or resume=False")
    model.load_state_dict(state["model"])
    if state["optimizer"] is not None:
        opt.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], sampler)
    return int(state["step"])


def write_curves(path: Path, rows: list[dict]) -> None:
    """Train loss components (per step, smoothed) and validation losses, one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_kl = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = np.array([r["step"] for r in rows], dtype=float)
    for key in ("loss", "recon", "velocity", "moments"):
        ax.plot(*_smooth(steps, np.array([r.get(key, np.nan) for r in rows])), label=key)
    val = [(r["step"], r["val_loss"], r.get("val_free_l1", np.nan)) for r in rows if "val_loss" in r]
    if val:
        v = np.array(val)
        ax.plot(v[:, 0], v[:, 1], "o-", label="val loss")
        ax.plot(v[:, 0], v[:, 2], "s--", label="val free-running L1")
    ax.set(xlabel="step", ylabel="loss (standardized units)", title="VAST training")
    ax.legend(fontsize=8)
    ax_kl.plot(*_smooth(steps, np.array([r.get("kl", np.nan) for r in rows])), label="KL (nats / sequence)")
    ax_kl.set(xlabel="step", ylabel="KL", title="KL and its weight")
    ax_beta = ax_kl.twinx()
    ax_beta.plot(steps, [r.get("beta", np.nan) for r in rows], color="tab:orange")
    ax_beta.set_ylabel("beta", color="tab:orange")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _smooth(x: np.ndarray, y: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Trailing moving average (no edge artefacts: the first k-1 points are dropped)."""
    if len(y) < 2 * k:
        return x, y
    return x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid")


def _vast_losses(row: dict) -> str:
    text = f"loss {row['loss']:.3f} recon {row['recon']:.3f} kl {row.get('kl', 0.0):.2f}"
    if "val_loss" in row:
        text += f" val {row['val_loss']:.3f}"
    return text


@contextlib.contextmanager
def _progress_bar(progress: Progress | bool | None, total: int, start: int, label: str = "VAST",
                  describe: Callable[[dict], str] = _vast_losses):
    """Yield a ``report(step, total, row)`` callable: the caller's, a rich bar, or a no-op.

    Shared by the renderer's training loop (``label`` and ``describe`` say what to show).
    """
    if callable(progress):
        yield progress
        return
    if not (progress is True or (progress is None and sys.stderr.isatty())):
        yield lambda step, total, row: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

    with Bar(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
             TextColumn("{task.fields[losses]}"), transient=False) as bar:
        task = bar.add_task("train", total=total, completed=start, losses="")

        def report(step: int, total: int, row: dict) -> None:
            bar.update(task, completed=step, losses=describe(row))

        yield report
