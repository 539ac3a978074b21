"""``vastbench generate``: one clip from VAST (or an expression baseline) for any driving audio and style prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vastbench.cli.run import console


def generate(
    target: str = typer.Option(..., "--target", help="Target identity (avatar) of the dataset, e.g. id03."),
    audio: Path = typer.Option(..., "--audio", help="Driving speech: a wav file (16 kHz)."),
    out: Path = typer.Option(..., "--out", help="Output mp4."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Style prompt: a clip id of the dataset."),
    prompt_npz: Optional[Path] = typer.Option(None, "--prompt-npz",
                                              help="Style prompt as arrays: an npz with 'expression' (T, E) and 'pose' (T, 6)."),
    system: str = typer.Option("vast", "--system", help="vast, styletalk_style or neutral."),
    variant: str = typer.Option("vast", "--variant", help="VAST ablation (system vast only)."),
    sample: bool = typer.Option(False, "--sample", help="A seeded sample of the style posterior, not its mean."),
    seed: int = typer.Option(0, "--seed"),
    profile: str = typer.Option("quick", "--profile", help="SynthTalk profile (the target's renderer size)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A manifest.jsonl or its directory (default: SynthTalk)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Expression-model steps (default: the preset's)."),
    renderer_steps: Optional[int] = typer.Option(None, "--renderer-steps", help="Renderer steps (default: the preset's)."),
    renderer_clips: Optional[int] = typer.Option(None, "--renderer-clips", help="Clips the renderer trains on."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Generate one talking-head clip; trains (and caches) the models it needs on first use."""
    import numpy as np

    from vastbench import media
    from vastbench.cli.train import _manifest
    from vastbench.data.requests import Request
    from vastbench.errors import VastbenchError
    from vastbench.generators import GenContext
    from vastbench.paths import cache_dir
    from vastbench.registry import GENERATORS
    from vastbench.runner import resolve_device
    from vastbench.torchutil import configure_threads
    from vastbench.vast.generator import VastGenerator

    configure_threads()
    if (prompt is None) == (prompt_npz is None):
        raise VastbenchError("give the style prompt as --prompt CLIP_ID or --prompt-npz FILE (one of them)")
    manifest = _manifest(data, profile)
    if target not in manifest.identities():
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"--target {target}: no such identity in {manifest.path}"
                             f"{did_you_mean(target, manifest.identities())}")
    wav, sr = media.read_wav(audio)
    if prompt is not None:
        from vastbench.features.extract import clip_features

        if prompt not in manifest:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"--prompt {prompt}: no such clip in {manifest.path}"
                                 f"{did_you_mean(prompt, [c.clip_id for c in manifest.clips])}")
        feats = clip_features(manifest[prompt], ("ppg",))
        prompt_X, prompt_ppg = np.concatenate([feats["expression"], feats["pose"]], 1), feats["ppg"]
    else:
        try:
            z = np.load(prompt_npz)
            prompt_X, prompt_ppg = np.concatenate([z["expression"], z["pose"]], 1).astype(np.float32), None
        except (OSError, KeyError, ValueError) as exc:
            raise VastbenchError(f"{prompt_npz}: not an npz with 'expression' (T, E) and 'pose' (T, 6) arrays "
                                 f"({type(exc).__name__}); write one with numpy.savez") from None
    args = {"steps": steps, "renderer_steps": renderer_steps, "renderer_clips": renderer_clips}
    if system == "vast":
        args.update(variant=variant, sample=sample)
    elif variant != "vast" or sample:
        raise VastbenchError(f"--variant/--sample apply to --system vast, not {system}")
    gen_cls = GENERATORS.get(system)
    if not issubclass(gen_cls, VastGenerator):
        raise VastbenchError(f"--system {system}: vastbench generate drives the expression systems "
                             f"(vast, styletalk_style, neutral); run other systems through a suite")
    # The renderer of the target trains on its clips that this request does not use (all of them here).
    req = Request(request_id="cli", identity=target, reference=prompt or "", driving="", prompt=prompt or "",
                  seed=seed, ground_truth=None)
    ctx = GenContext(manifest=manifest, device=resolve_device(device), cache_dir=cache_dir(), seed=0,
                     requests=[req], dataset_seed=0)
    gen = gen_cls(system, ctx, **args)
    pending = [j.label for j in gen.training_jobs(cache_dir()) if not j.done.exists()]
    if pending:
        console.print(f"training first (cached afterwards): {', '.join(pending)}")
    gen.prepare(manifest, cache_dir())
    inputs = gen.inputs_from_arrays(wav, sr, prompt_X, prompt_ppg, what=str(audio))
    path = gen.generate_from(target, inputs, out, seed=seed)
    console.print(f"wrote {path} ({inputs['n']} frames, {inputs['n'] / media.FPS:.2f} s)")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
