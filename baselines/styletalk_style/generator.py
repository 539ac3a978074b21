"""The ``styletalk_style`` system: StyleTalk-style expressions rendered by VAST's personalized renderer.

Everything after the expression stage (mesh rasterization, the renderer of the
target identity, mp4 muxing) is VAST's generator, and the renderer is the same
cached model the VAST systems use, so the comparison isolates the expression model.
"""

from __future__ import annotations

from pathlib import Path

from vastbench.config import stable_hash
from vastbench.data.manifest import Manifest
from vastbench.generators import TrainJob
from vastbench.vast.generator import VastGenerator


def model_dir(manifest: Manifest, cache_root: Path, preset: str, seed: int, steps: int | None) -> Path:
    from baselines.styletalk_style.model import EXPERTS, make_config
    from vastbench.vast.config import dataset_overrides
    from vastbench.vast.expression_eval import _ppg_version

    cfg = make_config(preset, **dataset_overrides(manifest))
    key = stable_hash({"cfg": cfg.to_dict(), "experts": EXPERTS, "data": manifest.content_hash(), "seed": seed,
                       "steps": steps, "ppg": _ppg_version()}, 12)
    return Path(cache_root) / f"styletalk-{key}"


def train_styletalk(manifest_path: str, cache_root: str, preset: str, seed: int, steps: int | None,
                    device: str) -> str:
    """Train (or find) the StyleTalk-style model on the dataset's train split (val for curves)."""
    from baselines.styletalk_style.model import StyleTalkModel, make_config
    from vastbench.vast.config import dataset_overrides
    from vastbench.vast.expression_eval import load_vast_clips
    from vastbench.vast.train import train

    manifest = Manifest.load(manifest_path)
    out = model_dir(manifest, Path(cache_root), preset, seed, steps)
    if (out / "done").exists():
        return str(out / "model.pt")
    val = load_vast_clips(manifest.split("val")) if manifest.split("val") else None
    path = train(make_config(preset, **dataset_overrides(manifest)), load_vast_clips(manifest.split("train")), val, out, steps=steps,
                 device=device, seed=seed, progress=False, model_cls=StyleTalkModel)
    (out / "done").write_text("ok\n")
    return str(path)


class StyleTalkStyle(VastGenerator):
    name = "styletalk_style"
    version = "1"
    defaults = {k: v for k, v in VastGenerator.defaults.items() if k not in ("variant", "sample", "renderer_ppg")}

    def __init__(self, label, ctx, **args):
        super().__init__(label, ctx, **args)
        self.args.update(renderer_ppg=True, sample=False)  # the shared renderer; a deterministic code

    def expression_job(self) -> TrainJob:
        m, a = self.ctx.manifest, self.args
        out = model_dir(m, self.cache_root, a["preset"], self.ctx.seed, a["steps"])
        return TrainJob(key=str(out), label="StyleTalk-style expression model",
                        target="baselines.styletalk_style.generator:train_styletalk",
                        kwargs=dict(manifest_path=str(m.path), cache_root=str(self.cache_root), preset=a["preset"],
                                    seed=self.ctx.seed, steps=a["steps"], device=self.ctx.device),
                        done=out / "done", cost=120.0)
