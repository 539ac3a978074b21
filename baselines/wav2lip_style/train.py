"""Train the sync expert, then the generator against it (frozen); checkpoints, logs, pictures.

    data = load_train_data(train_clips, cfg.n_mels, cfg.size)
    expert = train_expert(cfg, data, out_dir / "expert", val=val_data)      # -> expert.pt
    final = train_generator(cfg, data, expert, out_dir / "generator")       # -> wav2lip.pt
    # or both, from manifest clips:  train_all(cfg, train_clips, out_dir, val_clips=...)

Each stage's directory holds ``last.pt`` (resumable: model(s), optimizer(s),
step, RNG states of torch and of the window sampler), ``losses.csv``,
``curves.png``; the generator's also ``samples/step_NNNNNN.png`` (rows: ground
truth / masked input / reference / output).  A stage stops at ``steps`` or at its
time budget; an interrupted stage resumes from ``last.pt`` and its budget counts
the time already spent.  The learning rate decays by a cosine over the stage's
progress (``max(step / cfg.steps, elapsed / budget)``), so a budget-bound quick
run also ends at the low learning rate; a ``steps`` argument only stops early
(the schedule stays the config's, so a stopped run resumes exactly).

The final files are self-contained (config + weights, rebuilt from the file
alone): ``expert/expert.pt`` and ``generator/wav2lip.pt``, which records the
sha256 of the expert it was trained against.
"""

from __future__ import annotations

import io
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vastbench.errors import VastbenchError
from vastbench import trainstate
from vastbench.rundir import atomic_write_bytes, sha256_file
from vastbench.trainstate import cpu_state, read_loss_rows, rng_state, save_state, write_loss_rows
from vastbench.vast.renderer_train import write_grid   # labelled frame grids, shared house style
from vastbench.vast.train import _progress_bar, _smooth

from baselines.wav2lip_style.data import ExpertSampler, GeneratorSampler, TrainData, load_train_data
from baselines.wav2lip_style.model import (FORMAT, VERSION, SyncExpert, VisualDiscriminator, Wav2LipConfig,
                                           Wav2LipGenerator, cosine_bce, count_parameters, pairwise_cosine_bce)

log = logging.getLogger(__name__)
Progress = Callable[[int, int, dict], None]
EXPERT_COLUMNS = ("step", "loss", "acc", "val_loss", "val_acc", "lr", "elapsed_s")
GEN_COLUMNS = ("step", "loss", "l1", "sync", "sync_w", "adv_g", "loss_d", "lr", "elapsed_s")


# ----------------------------------------------------------------------------- schedules
def progress_of(step: int, steps: int, elapsed: float, budget: float) -> float:
    p = step / max(steps, 1)
    if budget > 0:
        p = max(p, elapsed / budget)
    return min(1.0, p)


def cosine_lr(base: float, progress: float, final_ratio: float) -> float:
    floor = base * final_ratio
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * progress))


def sync_weight_at(step: int, cfg: Wav2LipConfig) -> float:
    """0 for ``sync_start`` steps, then a linear ramp to ``cfg.sync_weight`` over ``sync_ramp`` steps."""
    if cfg.sync_weight <= 0 or step < cfg.sync_start:
        return 0.0
    if cfg.sync_ramp == 0:
        return cfg.sync_weight
    return cfg.sync_weight * min(1.0, (step - cfg.sync_start + 1) / cfg.sync_ramp)


# ----------------------------------------------------------------------------- sync expert
def train_expert(cfg: Wav2LipConfig, data: TrainData, out_dir: str | Path, steps: int | None = None,
                 device: str = "cpu", seed: int = 0, resume: bool = True, val: TrainData | None = None,
                 progress: Progress | bool | None = None) -> Path:
    """Train the lip-sync expert (cosine-BCE, in-sync vs off-sync windows); returns ``expert.pt``.

    ``val``: clips to report Wav2Lip-style accuracy on (256 fixed pairs, half in sync) every
    ``sample_every`` steps and at the end; the final numbers go into ``expert.pt``'s ``extra``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = cfg.expert_steps if steps is None else int(steps)
    _check_size(cfg, data)
    torch.manual_seed(seed)
    model = SyncExpert(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.expert_lr)
    sampler = ExpertSampler(data, seed)
    val_batch = ExpertSampler(val, seed + 1).pairs(256) if val is not None else None
    step, rows = 0, []
    if resume and (out_dir / "last.pt").exists():
        step = _restore(load_state(out_dir / "last.pt", "expert_train", device), out_dir / "last.pt", cfg,
                        {"model": model}, {"optimizer": opt}, sampler)
        rows = [r for r in read_loss_rows(out_dir / "losses.csv") if int(r["step"]) <= step]
        log.info("resumed sync expert at step %d", step)
    log.info("sync expert: %d parameters, %d frames in %d clips, to step %d on %s", count_parameters(model),
             len(data.frames), len(data.clip_ids), steps, device)
    t0 = time.perf_counter() - (float(rows[-1]["elapsed_s"]) if rows else 0.0)
    with _progress_bar(progress, steps, step, "sync expert", _expert_text) as report:
        while step < steps:
            lr = cosine_lr(cfg.expert_lr, progress_of(step, cfg.expert_steps, time.perf_counter() - t0,
                                                      cfg.expert_time_budget_s), cfg.lr_final_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            b = _to(sampler.batch(cfg.expert_batch, cfg.expert_windows_per_clip), device)
            loss, acc = pairwise_cosine_bce(*model.embed(b["faces"], b["mel"]), b["starts"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            row = {"step": step, "loss": float(loss.detach()), "acc": acc, "lr": lr}
            if not math.isfinite(row["loss"]):
                raise VastbenchError(f"sync expert training diverged at step {step}; lower expert_lr "
                                     f"(now {cfg.expert_lr})")
            out_of_time = cfg.expert_time_budget_s > 0 and time.perf_counter() - t0 >= cfg.expert_time_budget_s
            last = step == steps or out_of_time
            if val_batch is not None and (step % cfg.sample_every == 0 or last):
                row.update(evaluate_expert(model, val_batch, device))
            row["elapsed_s"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            report(step, steps, row)
            if (step % cfg.ckpt_every == 0 and not last) or out_of_time:
                _checkpoint_expert(out_dir, model, opt, sampler, step, rows)
            if out_of_time:
                log.warning("sync expert: time budget %.0f s reached at step %d of %d", cfg.expert_time_budget_s,
                            step, steps)
                break
    _checkpoint_expert(out_dir, model, opt, sampler, step, rows)
    final = {k: rows[-1][k] for k in ("val_loss", "val_acc") if rows and k in rows[-1]}
    return save_state(out_dir / "expert.pt", {
        "format": FORMAT, "version": VERSION, "kind": "expert", "torch_version": str(torch.__version__),
        "config": cfg.to_dict(), "model": cpu_state(model.state_dict()), "step": int(step),
        "extra": {"seed": seed, "train_s": rows[-1]["elapsed_s"] if rows else 0.0, "clips": data.clip_ids, **final}})


@torch.no_grad()
def evaluate_expert(model: SyncExpert, batch: dict[str, torch.Tensor], device) -> dict[str, float]:
    model.eval()
    b = _to(batch, device)
    sim = torch.cat([model(b["faces"][s:s + 64], b["mel"][s:s + 64]) for s in range(0, len(b["y"]), 64)])
    model.train()
    acc = ((sim > 0.5).float() == b["y"]).float().mean()
    return {"val_loss": float(cosine_bce(sim, b["y"])), "val_acc": float(acc)}


def _checkpoint_expert(out_dir: Path, model, opt, sampler, step: int, rows: list[dict]) -> None:
    save_state(out_dir / "last.pt", {
        "format": FORMAT, "version": VERSION, "kind": "expert_train", "torch_version": str(torch.__version__),
        "config": model.cfg.to_dict(), "model": cpu_state(model.state_dict()), "optimizer": opt.state_dict(),
        "step": int(step), "rng": rng_state(sampler)})
    write_loss_rows(out_dir / "losses.csv", rows, EXPERT_COLUMNS)
    write_curves(out_dir / "curves.png", rows, "expert")


def load_expert(path: str | Path, device: str | torch.device = "cpu") -> SyncExpert:
    """The frozen expert (eval mode, no gradients) from ``expert.pt``."""
    state = load_state(path, "expert", device)
    model = SyncExpert(Wav2LipConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------- generator
def train_generator(cfg: Wav2LipConfig, data: TrainData, expert_path: str | Path, out_dir: str | Path,
                    steps: int | None = None, device: str = "cpu", seed: int = 0, resume: bool = True,
                    progress: Progress | bool | None = None) -> Path:
    """Train the generator: L1 + ramped sync loss from the frozen expert (+ optional visual discriminator).

    Returns the path of the final ``wav2lip.pt``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = cfg.steps if steps is None else int(steps)
    _check_size(cfg, data)
    expert = load_expert(expert_path, device)
    if expert.cfg.size != cfg.size or expert.cfg.n_mels != cfg.n_mels:
        raise VastbenchError(f"{expert_path}: the expert works at {expert.cfg.size} px / {expert.cfg.n_mels} mels, "
                             f"the generator config at {cfg.size} px / {cfg.n_mels} mels; train a matching expert")
    expert_sha = sha256_file(expert_path)
    torch.manual_seed(seed)
    gen = Wav2LipGenerator(cfg).to(device)
    if cfg.audio_from_expert:
        if (cfg.channels, cfg.audio_dim) != (expert.cfg.expert_channels, expert.cfg.expert_dim):
            raise VastbenchError(f"audio_from_expert needs channels == expert_channels and audio_dim == expert_dim, "
                                 f"got {cfg.channels}/{expert.cfg.expert_channels} and "
                                 f"{cfg.audio_dim}/{expert.cfg.expert_dim}")
        gen.audio.load_state_dict(expert.audio.state_dict())
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    disc = opt_d = None
    models, opts = {"model": gen}, {"optimizer": opt}
    if cfg.disc_weight > 0:
        disc = VisualDiscriminator(cfg).to(device)
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        models["discriminator"], opts["optimizer_d"] = disc, opt_d
    sampler = GeneratorSampler(data, seed)
    step, rows = 0, []
    if resume and (out_dir / "last.pt").exists():
        state = load_state(out_dir / "last.pt", "generator_train", device)
        if state.get("expert_sha256") != expert_sha:
            raise VastbenchError(f"{out_dir / 'last.pt'} was trained against another sync expert; use a new "
                                 f"out_dir or resume=False")
        step = _restore(state, out_dir / "last.pt", cfg, models, opts, sampler)
        rows = [r for r in read_loss_rows(out_dir / "losses.csv") if int(r["step"]) <= step]
        log.info("resumed wav2lip_style generator at step %d", step)
    log.info("wav2lip_style generator: %d parameters (+ D %d), %d frames in %d clips, to step %d on %s",
             count_parameters(gen), count_parameters(disc) if disc is not None else 0, len(data.frames),
             len(data.clip_ids), steps, device)
    preview = GeneratorSampler(data, seed + 7).batch(2)
    t0 = time.perf_counter() - (float(rows[-1]["elapsed_s"]) if rows else 0.0)
    with _progress_bar(progress, steps, step, "wav2lip_style", _gen_text) as report:
        while step < steps:
            lr = cosine_lr(cfg.lr, progress_of(step, cfg.steps, time.perf_counter() - t0, cfg.time_budget_s),
                           cfg.lr_final_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            row = generator_step(gen, expert, disc, opt, opt_d, _to(sampler.batch(cfg.batch_size), device), cfg,
                                 step)
            step += 1
            row.update(step=step, lr=lr, elapsed_s=round(time.perf_counter() - t0, 3))
            rows.append(row)
            report(step, steps, row)
            if not math.isfinite(row["loss"]):
                raise VastbenchError(f"wav2lip_style generator training diverged at step {step}; lower lr "
                                     f"(now {cfg.lr})")
            out_of_time = cfg.time_budget_s > 0 and row["elapsed_s"] >= cfg.time_budget_s
            last = step == steps or out_of_time
            if step % cfg.sample_every == 0 or last:
                write_grid(out_dir / "samples" / f"step_{step:06d}.png", preview_rows(gen, preview, device))
            if (step % cfg.ckpt_every == 0 and not last) or out_of_time:
                _checkpoint_generator(out_dir, models, opts, sampler, step, rows, expert_sha)
            if out_of_time:
                log.warning("wav2lip_style generator: time budget %.0f s reached at step %d of %d",
                            cfg.time_budget_s, step, steps)
                break
    _checkpoint_generator(out_dir, models, opts, sampler, step, rows, expert_sha)
    return save_generator(out_dir / "wav2lip.pt", gen, step, extra={
        "seed": seed, "expert_sha256": expert_sha, "train_s": rows[-1]["elapsed_s"] if rows else 0.0,
        "clips": data.clip_ids})


def generator_step(gen, expert, disc, opt, opt_d, batch: dict[str, torch.Tensor], cfg: Wav2LipConfig,
                   step: int) -> dict[str, float]:
    """One step of Wav2Lip's generator objective; returns the loss terms."""
    gen.train()
    target, reference = batch["target"], batch["reference"]                   # (B, 5, 3, H, W) each
    B, T, C, H, W = target.shape
    x = Wav2LipGenerator.inputs(target.reshape(B * T, C, H, W), reference.reshape(B * T, C, H, W))
    fake = gen(x, batch["frame_mel"].reshape(B * T, *batch["frame_mel"].shape[2:]))   # (B*5, 3, H, W)
    err = (fake - target.reshape(B * T, C, H, W)).abs()
    if cfg.mouth_weight > 0:   # a weighted mean, so the number stays on the plain L1's scale
        w = 1.0 + cfg.mouth_weight * batch["mouth"].reshape(B * T, 1, H, W)
        l1 = (err * w).mean() / w.mean()
    else:
        l1 = err.mean()
    w_sync = sync_weight_at(step, cfg)
    # The sync loss is always computed (it is logged); it only enters the objective with its weight.
    sim = expert(fake.reshape(B, T, C, H, W), batch["sync_mel"])
    sync = cosine_bce(sim, torch.ones_like(sim))
    w_disc = cfg.disc_weight if disc is not None else 0.0
    loss = w_sync * sync + (1.0 - w_sync - w_disc) * l1
    row = {"l1": float(l1.detach()), "sync": float(sync.detach()), "sync_w": w_sync}
    if disc is not None:
        for p in disc.parameters():
            p.requires_grad_(False)
        adv = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(B * T, device=fake.device))
        loss = loss + w_disc * adv
        row["adv_g"] = float(adv.detach())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    row["loss"] = float(loss.detach())
    if disc is not None:
        for p in disc.parameters():
            p.requires_grad_(True)
        real = target.reshape(B * T, C, H, W)
        ones, zeros = torch.ones(B * T, device=fake.device), torch.zeros(B * T, device=fake.device)
        loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        row["loss_d"] = float(loss_d.detach())
    return row


def _checkpoint_generator(out_dir: Path, models: dict, opts: dict, sampler, step: int, rows: list[dict],
                          expert_sha: str) -> None:
    gen = models["model"]
    save_state(out_dir / "last.pt", {
        "format": FORMAT, "version": VERSION, "kind": "generator_train", "torch_version": str(torch.__version__),
        "config": gen.cfg.to_dict(), **{k: cpu_state(m.state_dict()) for k, m in models.items()},
        **{k: o.state_dict() for k, o in opts.items()}, "step": int(step), "rng": rng_state(sampler),
        "expert_sha256": expert_sha})
    write_loss_rows(out_dir / "losses.csv", rows, GEN_COLUMNS)
    write_curves(out_dir / "curves.png", rows, "generator")


def save_generator(path: str | Path, model: Wav2LipGenerator, step: int = 0,
                   extra: dict[str, Any] | None = None) -> Path:
    """The final, self-contained generator: config + weights (+ what it was trained with)."""
    return save_state(Path(path), {
        "format": FORMAT, "version": VERSION, "kind": "generator", "torch_version": str(torch.__version__),
        "config": model.cfg.to_dict(), "model": cpu_state(model.state_dict()), "step": int(step), "extra": extra or {}})


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Wav2LipGenerator:
    """The generator in eval mode from ``wav2lip.pt`` (or a training ``last.pt``)."""
    state = load_state(path, ("generator", "generator_train"), device)
    model = Wav2LipGenerator(Wav2LipConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# ----------------------------------------------------------------------------- both stages
def train_all(cfg: Wav2LipConfig, train_clips: Sequence, out_dir: str | Path, val_clips: Sequence = (),
              expert_steps: int | None = None, steps: int | None = None, device: str = "cpu", seed: int = 0,
              resume: bool = True, progress: Progress | bool | None = None) -> Path:
    """Decode the clips once, train the expert, then the generator; returns ``generator/wav2lip.pt``."""
    out_dir = Path(out_dir)
    t = time.perf_counter()
    data = load_train_data(train_clips, cfg.n_mels, cfg.size, spill_dir=out_dir)
    val = load_train_data(val_clips, cfg.n_mels, cfg.size, spill_dir=out_dir / "val") if val_clips else None
    log.info("wav2lip_style: decoded %d train frames in %.1f s", len(data.frames), time.perf_counter() - t)
    expert = out_dir / "expert" / "expert.pt"
    if not (resume and expert.exists()):
        expert = train_expert(cfg, data, out_dir / "expert", steps=expert_steps, device=device, seed=seed,
                              resume=resume, val=val, progress=progress)
    final = out_dir / "generator" / "wav2lip.pt"
    if resume and final.exists():
        return final
    return train_generator(cfg, data, expert, out_dir / "generator", steps=steps, device=device, seed=seed,
                           resume=resume, progress=progress)


# ----------------------------------------------------------------------------- checkpoint io
def load_state(path: str | Path, kind: str | tuple[str, ...], map_location: Any = "cpu") -> dict[str, Any]:
    """A wav2lip_style checkpoint of one of ``kind`` (expert, expert_train, generator, generator_train)."""
    kinds = (kind,) if isinstance(kind, str) else kind
    state = trainstate.load_state(path, what="wav2lip_style", fmt=FORMAT, version=VERSION,
                                  writer="baselines.wav2lip_style.train",
                                  train_hint="train it (wav2lip_style train_all)", corrupt_fix="delete it and retrain",
                                  map_location=map_location)
    if state.get("kind") not in kinds:
        raise VastbenchError(f"{path} holds a wav2lip_style {state.get('kind')}, not a {' or '.join(kinds)}; "
                             f"pass the right file")
    return state


def _restore(state: dict[str, Any], path: Path, cfg: Wav2LipConfig, models: dict, opts: dict, sampler) -> int:
    """Load a training checkpoint already read by :func:`load_state` into the models, optimizers and RNGs."""
    if state["config"] != cfg.to_dict():
        changed = sorted(k for k in cfg.to_dict() if state["config"].get(k) != cfg.to_dict()[k])
        raise VastbenchError(f"{path} was trained with a different wav2lip_style config ({', '.join(changed[:4])} "
                             f"differ); use a new out_dir or resume=False")
    for k, m in models.items():
        m.load_state_dict(state[k])
    for k, o in opts.items():
        o.load_state_dict(state[k])
    trainstate.restore_rng(state["rng"], sampler)
    return int(state["step"])


def _check_size(cfg: Wav2LipConfig, data: TrainData) -> None:
    if data.size != cfg.size:
        raise VastbenchError(f"wav2lip_style config size {cfg.size} but the training frames are {data.size} px; "
                             f"use the preset of that size (quick: 80, full: 256)")


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


# ----------------------------------------------------------------------------- logs and pictures
@torch.no_grad()
def preview_rows(gen: Wav2LipGenerator, batch: dict[str, torch.Tensor], device) -> list[tuple[str, np.ndarray]]:
    gen.eval()
    target, reference = batch["target"], batch["reference"]
    B, T, C, H, W = target.shape
    x = Wav2LipGenerator.inputs(target.reshape(B * T, C, H, W), reference.reshape(B * T, C, H, W)).to(device)
    out = gen(x, batch["frame_mel"].reshape(B * T, *batch["frame_mel"].shape[2:]).to(device)).cpu()
    gen.train()

    def u8(t: torch.Tensor) -> np.ndarray:
        return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()

    return [("ground truth", u8(target.reshape(B * T, C, H, W))), ("masked input", u8(x[:, :3].cpu())),
            ("reference", u8(x[:, 3:].cpu())), ("output", u8(out))]


def _expert_text(row: dict) -> str:
    return f"loss {row.get('loss', float('nan')):.3f} acc {row.get('acc', float('nan')):.2f}"


def _gen_text(row: dict) -> str:
    return f"L1 {row.get('l1', float('nan')):.4f} sync {row.get('sync', float('nan')):.3f}"


def write_curves(path: Path, rows: list[dict], stage: str) -> None:
    """One PNG per stage: the expert's BCE / accuracy, or the generator's L1 / sync loss."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = np.array([r["step"] for r in rows], dtype=float)

    def col(k: str) -> np.ndarray:
        return np.array([r.get(k, np.nan) for r in rows], dtype=float)

    def points(ax, k: str, label: str) -> None:
        ok = np.isfinite(col(k))
        if ok.any():
            ax.plot(steps[ok], col(k)[ok], "o-", label=label)

    if stage == "expert":
        left.plot(*_smooth(steps, col("loss")), label="train (smoothed)")
        points(left, "val_loss", "val")
        left.set(xlabel="step", ylabel="cosine BCE", title="sync expert loss")
        right.plot(*_smooth(steps, col("acc")), label="train (smoothed)")
        points(right, "val_acc", "val")
        right.set(xlabel="step", ylabel="accuracy", title="in-sync vs off-sync", ylim=(0, 1))
    else:
        left.plot(*_smooth(steps, col("l1")), label="L1")
        left.set(xlabel="step", ylabel="L1 in [0, 1] units", title="generator reconstruction", yscale="log")
        right.plot(*_smooth(steps, col("sync")), label="sync loss (frozen expert)")
        if np.isfinite(col("adv_g")).any():
            right.plot(*_smooth(steps, col("adv_g")), label="G adversarial")
            right.plot(*_smooth(steps, col("loss_d")), label="D")
        right.set(xlabel="step", ylabel="loss", title="sync / adversarial")
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
