"""Train the personalized renderer on one identity; render with it.

    data = prepare_identity(clips, rasterizer, cfg.size)     # frames, meshes, PPG, background in memory
    path = train_renderer(cfg, data, out_dir, steps=None, device="cpu", seed=0)   # -> out_dir/renderer.pt
    model, background = load_renderer(path)
    frames = render_sequence(model, background, mesh_images, ppg)                 # (T, H, W, 3) uint8

``train_renderer`` also takes the clips themselves (``identity_clips``: the
manifest clips of one identity, for SynthTalk built with a
:class:`~vastbench.vast.conditioning.SynthTalkRasterizer`).

Out dir: ``last.pt`` (resumable: generator, discriminator, both optimizers,
step, RNG states), ``renderer.pt`` (final: generator + eroded background,
rebuilds from the file alone), ``losses.csv``, ``curves.png`` and
``samples/step_NNNNNN.png`` grids (rows: ground truth / mesh image / output).

PPG: the frozen recognizer (``PPGRecognizer.load()``) when its asset is
present, else one-hot phones from the clip's alignment (SynthTalk only) --
``IdentityData.ppg_source`` says which, and the checkpoint records it.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from vastbench.errors import VastbenchError
from vastbench import trainstate
from vastbench.rundir import atomic_write_bytes, sha256_file
from vastbench.trainstate import cpu_state, plain, read_loss_rows, rng_state, save_state, write_loss_rows
from vastbench.vast.conditioning import (MeshRasterizer, SynthTalkRasterizer, condition, from_unit, mouth_masks,
                                         target_background, to_unit)
from vastbench.vast.train import _progress_bar, _smooth  # shared with the expression model's loop
from vastbench.vast.renderer import (FORMAT, VERSION, PatchDiscriminator, Renderer, RendererConfig, count_parameters,
                                     discriminator_loss, generator_loss)

log = logging.getLogger(__name__)
Progress = Callable[[int, int, dict], None]
COLUMNS = ("step", "loss_g", "l1", "adv_g", "loss_d", "lr_g", "elapsed_s")


# ----------------------------------------------------------------------------- data
@dataclass
class RendererClip:
    clip_id: str
    frames: np.ndarray        # (T, H, W, 3) uint8 ground truth
    mesh_images: np.ndarray   # (T, H, W, 3) uint8
    mouth: np.ndarray         # (T, H, W) bool, dilated outer-lip polygon
    ppg: np.ndarray           # (T, 4, P) float32
    face_masks: np.ndarray    # (T, H, W) bool

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class IdentityData:
    """One identity's training material, in memory (80 px quick: ~45 MB for 1,100 frames)."""

    identity: str
    background: np.ndarray    # (H, W, 3) uint8 eroded background
    erase: np.ndarray         # (H, W) bool erased region
    clips: list[RendererClip]
    ppg_source: str           # "recognizer:<sha12>" | "phones" | "given"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return sum(len(c) for c in self.clips)


def ppg_for_clip(clip, n_frames: int, recognizer: Any = None) -> np.ndarray:
    """(T, 4, P) PPG of a manifest clip: the recognizer on its wav, else one-hot phones from its npz."""
    if recognizer is not None:
        from vastbench import media

        audio, _ = media.read_wav(clip.path("audio"))
        post = recognizer.posteriors(audio, n_frames)
        return post.reshape(n_frames, 4, -1).astype(np.float32)
    from vastbench.features.phones import PHONES
    from vastbench.features.ppg import frame_targets

    z = np.load(clip.path("features"))
    if "phones" not in z:
        raise VastbenchError(f"clip {clip.clip_id}: no PPG recognizer and no phone alignment in its features; "
                             f"train the PPG asset (vastbench assets) first")
    idx = frame_targets(z["phones"], z["phone_start"], z["phone_end"], n_frames)
    return np.eye(len(PHONES), dtype=np.float32)[idx].reshape(n_frames, 4, -1)


def default_recognizer() -> tuple[Any, str]:
    """(recognizer or None, ppg_source label)."""
    from vastbench.features.ppg import PPGRecognizer

    import vastbench

    try:
        rec = PPGRecognizer.load()
    except (VastbenchError, FileNotFoundError, OSError) as exc:
        # The asset may exist before it is registered: use the frozen file itself if it is there.
        frozen = Path(vastbench.__file__).parent / "weights" / "ppg_synthtalk_v1.pt"
        if not frozen.is_file():
            log.warning("PPG recognizer unavailable (%s); using one-hot phones from the alignments", exc)
            return None, "phones"
        rec = PPGRecognizer.load(frozen)
    return rec, f"recognizer:{(rec.sha256 or 'unversioned')[:12]}"


def load_clip(clip, rasterizer: MeshRasterizer, recognizer: Any = None) -> RendererClip:
    """Frames, mesh images (from the clip's own expression + pose), mouth masks and PPG of one clip."""
    from vastbench import media

    frames = media.read_video(clip.path("video"), with_audio=False).frames
    z = np.load(clip.path("features"))
    n = min(len(frames), len(z["expression"]))
    if frames.shape[1] != rasterizer.size or frames.shape[2] != rasterizer.size:
        raise VastbenchError(f"clip {clip.clip_id}: video is {frames.shape[2]}x{frames.shape[1]}, the renderer "
                             f"works at {rasterizer.size}; use the dataset profile of that size")
    mesh = rasterizer.rasterize(z["expression"][:n], z["pose"][:n])
    return RendererClip(clip.clip_id, frames[:n], mesh.mesh_images, mouth_masks(mesh.landmarks2d, rasterizer.size),
                        ppg_for_clip(clip, n, recognizer), mesh.face_masks)


def prepare_identity(clips: Sequence, rasterizer: MeshRasterizer | None = None, size: int | None = None,
                     recognizer: Any = "default", seed: int = 0) -> IdentityData:
    """Load the clips of one identity; the eroded background comes from the first frame of the first clip,
    the erased region from the union of all their face masks (``conditioning.erase_mask``)."""
    clips = sorted(clips, key=lambda c: c.clip_id)
    if not clips:
        raise VastbenchError("renderer training: no clips given for the identity")
    ids = sorted({c.identity for c in clips})
    if len(ids) != 1:
        raise VastbenchError(f"renderer training takes clips of one identity, got {', '.join(ids)}")
    if rasterizer is None:
        if size is None:
            raise VastbenchError("prepare_identity: pass a rasterizer or a size")
        rasterizer = SynthTalkRasterizer(ids[0], size, seed=seed)
    if recognizer == "default":
        recognizer, source = default_recognizer()
    else:
        source = "phones" if recognizer is None else f"recognizer:{(getattr(recognizer, 'sha256', None) or 'given')[:12]}"
    loaded = [load_clip(c, rasterizer, recognizer) for c in clips]
    background, erase = target_background(loaded[0].frames[0], np.concatenate([c.face_masks for c in loaded]))
    return IdentityData(ids[0], background, erase, loaded, source,
                        meta={"reference": f"{loaded[0].clip_id}#0", "clips": [c.clip_id for c in loaded]})


class SequenceSampler:
    """Random ``seq_len`` windows (clips drawn by length); shorter clips are padded by repeating the last frame."""

    def __init__(self, data: IdentityData, seq_len: int, seed: int):
        self.data, self.seq_len = data, seq_len
        lengths = np.array([len(c) for c in data.clips], float)
        self.p = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        parts = [self._window() for _ in range(batch_size)]
        out = {k: np.stack([p[k] for p in parts]) for k in parts[0]}
        return {"cond": condition(self.data.background, out["mesh"]).to(device),
                "frames": to_unit(out["frames"]).to(device),
                "ppg": torch.from_numpy(out["ppg"]).to(device),
                "mouth": torch.from_numpy(out["mouth"]).float().to(device)}

    def _window(self) -> dict[str, np.ndarray]:
        clip = self.data.clips[int(self.rng.choice(len(self.p), p=self.p))]
        n, L = len(clip), self.seq_len
        start = int(self.rng.integers(0, max(n - L, 0) + 1))
        idx = np.minimum(np.arange(start, start + L), n - 1)
        return {"frames": clip.frames[idx], "mesh": clip.mesh_images[idx], "ppg": clip.ppg[idx],
                "mouth": clip.mouth[idx]}

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": plain(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


# ----------------------------------------------------------------------------- training
def lr_at(step: int, base: float, cfg: RendererConfig) -> float:
    """Cosine decay from ``base`` to ``base * lr_final_ratio`` at ``cfg.steps``."""
    progress = min(1.0, step / max(cfg.steps, 1))
    floor = base * cfg.lr_final_ratio
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * progress))


def train_renderer(cfg: RendererConfig, identity_clips: IdentityData | Sequence, out_dir: str | Path,
                   steps: int | None = None, device: str = "cpu", seed: int = 0, resume: bool = True,
                   progress: Progress | bool | None = None) -> Path:
    """Train a renderer for one identity until ``steps`` (default ``cfg.steps``) or ``cfg.time_budget_s``.

    ``identity_clips``: :class:`IdentityData` or manifest clips of one SynthTalk identity.  Returns the
    path of ``renderer.pt``.  ``progress``: None -> a rich bar when stderr is a terminal; True/False ->
    on/off; a callable ``(step, total, row)``.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = cfg.steps if steps is None else int(steps)
    data = identity_clips if isinstance(identity_clips, IdentityData) else prepare_identity(
        identity_clips, size=cfg.size, seed=0)
    if data.background.shape[0] != cfg.size:
        raise VastbenchError(f"renderer config size {cfg.size} but the identity's frames are "
                             f"{data.background.shape[0]} px; use a config of that size")
    prep_s = time.perf_counter() - t_start

    torch.manual_seed(seed)
    gen, disc = Renderer(cfg).to(device), PatchDiscriminator(cfg).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
    sampler = SequenceSampler(data, cfg.seq_len, seed)
    step, rows = 0, []
    if resume and (out_dir / "last.pt").exists():
        step = _restore(out_dir / "last.pt", gen, disc, opt_g, opt_d, sampler, cfg, device)
        rows = [r for r in read_loss_rows(out_dir / "losses.csv") if int(r["step"]) <= step]
        log.info("resumed %s at step %d", out_dir, step)
    log.info("renderer for %s: G %d / D %d parameters, %d frames in %d clips (PPG: %s), to step %d on %s",
             data.identity, count_parameters(gen), count_parameters(disc), data.n_frames, len(data.clips),
             data.ppg_source, steps, device)
    preview = _preview_batch(data, cfg)
    t0 = time.perf_counter() - (float(rows[-1]["elapsed_s"]) if rows else 0.0)
    with _progress_bar(progress, steps, step, "renderer",
                       lambda row: f"L1 {row.get('l1', float('nan')):.4f}") as report:
        while step < steps:
            lr_g, lr_d = lr_at(step, cfg.lr_g, cfg), lr_at(step, cfg.lr_d, cfg)
            for g in opt_g.param_groups:
                g["lr"] = lr_g
            for g in opt_d.param_groups:
                g["lr"] = lr_d
            row = _step(gen, disc, opt_g, opt_d, sampler.batch(cfg.batch_size, device), cfg, step)
            step += 1
            row.update(step=step, lr_g=lr_g, elapsed_s=round(time.perf_counter() - t0, 3))
            rows.append(row)
            report(step, steps, row)
            if not math.isfinite(row["loss_g"]):
                raise VastbenchError(f"renderer training diverged at step {step}; lower lr_g (now {cfg.lr_g})")
            out_of_time = cfg.time_budget_s > 0 and row["elapsed_s"] >= cfg.time_budget_s
            if step % cfg.sample_every == 0 or step == steps or out_of_time:
                write_grid(out_dir / "samples" / f"step_{step:06d}.png", _preview_rows(gen, preview, device))
            if (step % cfg.ckpt_every == 0 and step < steps) or out_of_time:
                _checkpoint(out_dir, gen, disc, opt_g, opt_d, sampler, step, rows)
            if out_of_time:
                log.warning("renderer: time budget %.0f s reached at step %d of %d", cfg.time_budget_s, step, steps)
                break
    _checkpoint(out_dir, gen, disc, opt_g, opt_d, sampler, step, rows)
    extra = {"identity": data.identity, "ppg_source": data.ppg_source, "seed": seed, "prep_s": round(prep_s, 2),
             "train_s": rows[-1]["elapsed_s"] if rows else 0.0, **data.meta}
    return save_renderer(out_dir / "renderer.pt", gen, data.background, data.erase, step=step, extra=extra)


def _step(gen, disc, opt_g, opt_d, batch, cfg: RendererConfig, step: int) -> dict[str, float]:
    gen.train()
    disc.train()
    adversarial = cfg.adv_weight > 0 and step >= cfg.adv_start
    for p in disc.parameters():
        p.requires_grad_(False)
    loss_g, parts, fake = generator_loss(gen, disc, batch, adversarial)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    row = {k: float(v) for k, v in parts.items()}
    if adversarial:
        for p in disc.parameters():
            p.requires_grad_(True)
        loss_d = discriminator_loss(disc, batch, fake, cfg.gan_loss)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        row["loss_d"] = float(loss_d.detach())
    return row


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint(out_dir: Path, gen, disc, opt_g, opt_d, sampler, step: int, rows: list[dict]) -> None:
    save_state(out_dir / "last.pt", {
        "format": FORMAT, "version": VERSION, "kind": "train", "torch_version": str(torch.__version__),
        "config": gen.cfg.to_dict(), "model": cpu_state(gen.state_dict()), "discriminator": cpu_state(disc.state_dict()),
        "optimizer": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(), "step": int(step),
        "rng": rng_state(sampler)})
    write_loss_rows(out_dir / "losses.csv", rows, COLUMNS)
    write_curves(out_dir / "curves.png", rows)


def save_renderer(path: str | Path, model: Renderer, background: np.ndarray, erase: np.ndarray | None = None,
                  step: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """The final, self-contained renderer: config + generator + the target's eroded background."""
    return save_state(Path(path), {
        "format": FORMAT, "version": VERSION, "kind": "renderer", "torch_version": str(torch.__version__),
        "config": model.cfg.to_dict(), "model": cpu_state(model.state_dict()),
        "background": torch.from_numpy(np.ascontiguousarray(background)),
        "erase": torch.from_numpy(np.ascontiguousarray(erase)) if erase is not None else None,
        "step": int(step), "extra": extra or {}})


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return trainstate.load_state(path, what="renderer", fmt=FORMAT, version=VERSION, writer="train_renderer",
                                 train_hint="train one (train_renderer)", map_location=map_location)


def load_renderer(path: str | Path, device: str | torch.device = "cpu") -> tuple[Renderer, np.ndarray]:
    """(model in eval mode, eroded background (H, W, 3) uint8) from ``renderer.pt`` (or ``last.pt``)."""
    return renderer_from_state(load_state(path), device, path)


def renderer_from_state(state: dict[str, Any], device: str | torch.device = "cpu",
                        path: str | Path = "checkpoint") -> tuple[Renderer, np.ndarray]:
    model = Renderer(RendererConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    bg = state.get("background")
    if bg is None:
        raise VastbenchError(f"{path} is a training checkpoint without the background; load renderer.pt")
    return model.to(device).eval(), bg.numpy()


def renderer_sha256(path: str | Path) -> str:
    """sha256 of the renderer file, for ``Generator.describe()``."""
    return sha256_file(path)


def _restore(path: Path, gen, disc, opt_g, opt_d, sampler, cfg: RendererConfig, device) -> int:
    state = load_state(path, map_location=device)
    if state["config"] != cfg.to_dict():
        changed = sorted(k for k in cfg.to_dict() if state["config"].get(k) != cfg.to_dict()[k])
        raise VastbenchError(f"{path} was trained with a different renderer config ({', '.join(changed[:4])} "
                             f"differ); use a new out_dir or resume=False")
    gen.load_state_dict(state["model"])
    disc.load_state_dict(state["discriminator"])
    opt_g.load_state_dict(state["optimizer"])
    opt_d.load_state_dict(state["optimizer_d"])
    trainstate.restore_rng(state["rng"], sampler)
    return int(state["step"])


# ----------------------------------------------------------------------------- inference
@torch.no_grad()
def render_sequence(model: Renderer, background: np.ndarray, mesh_images: np.ndarray, ppg: np.ndarray | None,
                    chunk: int = 32) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 -- or (B, T, H, W, 3) for equal-length clips -- of any length T.

    ``background`` (H, W, 3) uint8 (or one per clip (B, H, W, 3)); ``mesh_images`` (T, H, W, 3) or
    (B, T, H, W, 3) uint8; ``ppg`` (T, 4, P) / (B, T, 4, P) or (4T, P) / (B, 4T, P) posteriors, None only
    for ``use_ppg=False``.  The frames of a chunk go through the encoder and decoder as one batch; the
    LSTM state carries across chunks, so the result does not depend on ``chunk``.
    """
    model.eval()
    mesh = np.asarray(mesh_images)
    single = mesh.ndim == 4
    if single:
        mesh = mesh[None]
    B, T = mesh.shape[:2]
    bg = np.asarray(background)
    if bg.ndim == 3:
        bg = np.broadcast_to(bg, (B,) + bg.shape)
    bg = bg[:, None]                                                       # (B, 1, H, W, 3)
    p = next(model.parameters())
    ppg_t = None
    if model.cfg.use_ppg:
        if ppg is None:
            raise VastbenchError("render_sequence: this renderer uses PPG; pass the posteriors (4T, P)")
        ppg_t = torch.as_tensor(np.asarray(ppg, np.float32))
        k, P = model.cfg.ppg_per_frame, model.cfg.ppg_dim
        if ppg_t.numel() != B * T * k * P:
            raise VastbenchError(f"render_sequence: {T} frames need {k * T} PPG frames of {P} classes "
                                 f"per clip, got PPG of shape {tuple(ppg_t.shape)}")
        if single:
            ppg_t = ppg_t[None]
        ppg_t = ppg_t.reshape(B, T, k, P).to(p.device)
    state, out = None, []
    for s in range(0, T, chunk):
        cond = condition(bg, mesh[:, s:s + chunk]).to(p.device, p.dtype)
        y, state = model(cond, None if ppg_t is None else ppg_t[:, s:s + chunk], state)
        out.append(from_unit(y))
    frames = np.concatenate(out, axis=1)
    return frames[0] if single else frames


# ----------------------------------------------------------------------------- logs and pictures
def _preview_batch(data: IdentityData, cfg: RendererConfig, n: int = 8) -> dict[str, Any]:
    clip = data.clips[0]
    return {"clip": clip, "background": data.background, "show": np.linspace(0, len(clip) - 1, n).round().astype(int)}


def _preview_rows(gen: Renderer, preview: dict[str, Any], device) -> list[tuple[str, np.ndarray]]:
    clip, show = preview["clip"], preview["show"]
    out = render_sequence(gen, preview["background"], clip.mesh_images, clip.ppg if gen.cfg.use_ppg else None)
    gen.train()
    return [("ground truth", clip.frames[show]), ("mesh image", clip.mesh_images[show]), ("output", out[show])]


def write_grid(path: str | Path, rows: list[tuple[str, np.ndarray]], scale: int | None = None) -> Path:
    """PNG of labelled rows of frames (each (N, H, W, 3) uint8), upscaled (nearest) to >= 160 px cells."""
    from PIL import Image, ImageDraw

    h, w = rows[0][1].shape[1:3]
    scale = scale or max(1, int(math.ceil(160 / h)))
    n = max(len(r[1]) for r in rows)
    label_w, pad = 110, 2
    H, W = h * scale, w * scale
    canvas = Image.new("RGB", (label_w + n * (W + pad), len(rows) * (H + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (name, frames) in enumerate(rows):
        y = r * (H + pad)
        draw.text((4, y + H // 2 - 6), name, fill=(0, 0, 0))
        for i, f in enumerate(frames):
            img = Image.fromarray(np.asarray(f, np.uint8)).resize((W, H), Image.NEAREST)
            canvas.paste(img, (label_w + i * (W + pad), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(Path(path), buf.getvalue())


def write_curves(path: Path, rows: list[dict]) -> None:
    """Generator L1 and the adversarial terms per step (smoothed), one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        return
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_adv = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = np.array([r["step"] for r in rows], dtype=float)
    ax.plot(*_smooth(steps, np.array([r.get("l1", np.nan) for r in rows])), label="L1 (mouth-weighted)")
    ax.set(xlabel="step", ylabel="L1 in [-1, 1] units", title="renderer reconstruction", yscale="log")
    ax.legend(fontsize=8)
    for key, label in (("adv_g", "G adversarial"), ("loss_d", "D")):
        ax_adv.plot(*_smooth(steps, np.array([r.get(key, np.nan) for r in rows])), label=label)
    ax_adv.set(xlabel="step", ylabel="loss", title="adversarial")
    ax_adv.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
