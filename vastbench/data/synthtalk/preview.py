"""``vastbench data preview``: a contact sheet and a montage so a person sees the data at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vastbench import media
from vastbench.data.manifest import Manifest
from vastbench.errors import VastbenchError


def _frames_with_mouth(clip) -> tuple[np.ndarray, np.ndarray]:
    """The frame with the mouth most closed and the one most open (by the true jaw_open)."""
    video = media.read_video(clip.path("video"), with_audio=False).frames
    z = np.load(clip.path("features"))
    jaw = z["expression"][:, 0]
    return video[int(np.argmin(jaw))], video[int(np.argmax(jaw))]


def contact_sheet(manifest: Manifest, out_png: Path, max_identities: int = 10, max_styles: int = 10) -> Path:
    """Identities (rows) x styles (columns), each cell mouth closed | mouth open."""
    from PIL import Image, ImageDraw

    ids = manifest.identities()[:max_identities]
    styles = sorted({c.style for c in manifest.clips})[:max_styles]
    first = {}
    for c in manifest.clips:
        first.setdefault((c.identity, c.style), c)
    sample = next(iter(first.values()))
    h, w = media.read_video(sample.path("video"), with_audio=False).frames.shape[1:3]
    scale = max(1, 96 // h)
    cw, ch, label_w, label_h = 2 * w * scale + 4, h * scale + 4, 60, 16
    sheet = Image.new("RGB", (label_w + cw * len(styles), label_h + ch * len(ids)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, style in enumerate(styles):
        draw.text((label_w + j * cw + 2, 2), style[:12], fill="black")
    for i, ident in enumerate(ids):
        draw.text((2, label_h + i * ch + ch // 2 - 5), ident, fill="black")
        for j, style in enumerate(styles):
            clip = first.get((ident, style))
            if clip is None:
                continue
            closed, opened = _frames_with_mouth(clip)
            pair = np.concatenate([closed, opened], axis=1)
            img = Image.fromarray(pair).resize((pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST)
            sheet.paste(img, (label_w + j * cw + 2, label_h + i * ch + 2))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png)
    return out_png


def montage(manifest: Manifest, out_mp4: Path, n: int = 9, seconds: float = 4.0) -> Path:
    """A 3x3 grid video of test clips playing together (audio of the first)."""
    clips = [c for c in manifest.clips if c.split.startswith("test")][:n] or manifest.clips[:n]
    videos = [media.read_video(c.path("video")) for c in clips]
    t = min(int(seconds * media.FPS), min(v.n_frames for v in videos))
    side = int(np.ceil(np.sqrt(len(videos))))
    h, w = videos[0].frames.shape[1:3]
    grid = np.zeros((t, side * h, side * w, 3), np.uint8)
    for k, v in enumerate(videos):
        r, c = divmod(k, side)
        grid[:, r * h:(r + 1) * h, c * w:(c + 1) * w] = v.frames[:t]
    audio = videos[0].audio[: t * media.SAMPLE_RATE // media.FPS] if videos[0].audio is not None else None
    return media.write_video(out_mp4, grid, media.FPS, audio)


def preview(root: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    root = Path(root)
    manifest_path = root / "manifest.jsonl"
    if not manifest_path.exists():
        raise VastbenchError(f"{root}: no manifest.jsonl; build the dataset with `vastbench data synth --out {root}`")
    manifest = Manifest.load(manifest_path)
    out_dir = Path(out_dir) if out_dir else root / "preview"
    return contact_sheet(manifest, out_dir / "contact_sheet.png"), montage(manifest, out_dir / "montage.mp4")
