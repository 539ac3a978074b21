"""Sanity numbers and the frame grid of the README: does the baseline move its mouths with the speech?

    python -m baselines.wav2lip_style.sanity                 # SynthTalk quick, 16 test requests
    python -m baselines.wav2lip_style.sanity --identity id03 # the comparison suite's 8 requests

Trains the quick preset through the Generator (or finds it in the cache, where a suite run would put
it), generates the test requests with ``wav2lip_style``, the ``static`` control and, when the model
pastes a box (``quick``), ``truth_in_box`` -- the same looped frames with the ground truth's box
pasted in: the ceiling of this inference pipeline -- and measures, with the frozen face-capture
network (the same for every video):

- ``jaw_corr``: Pearson correlation over frames of the captured jaw opening of the output with that of
  the ground truth (1 = the mouth opens exactly when the real one does; static and a looped reference
  sit near 0);
- ``jaw_std``: how much the captured jaw opening moves (ground truth for comparison);
- ``m_lmd``: the M-LMD metric (mouth landmark distance to the ground truth, lower is better);
- ``lse_d`` / ``lse_c`` when SyncNet weights are available (the shipped SynthTalk SyncNet or official).

Writes ``sanity.json`` and the clips under ``--out``, and the grid (ground truth row / output row for
a few requests) to ``--grid``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def jaw_series(frames: np.ndarray, capture) -> np.ndarray:
    return capture.capture(frames)["expression"][:, 0]


def _lse_metrics():
    from vastbench.errors import VastbenchError
    from vastbench.metrics.lse import LSEC, LSED

    try:
        return LSED(), LSEC()
    except (VastbenchError, KeyError) as exc:   # KeyError: the SynthTalk SyncNet asset is not registered yet
        log.warning("LSE skipped: no SyncNet weights (%s)", exc)
        return None


class TruthInBox:
    """The ceiling of this baseline's inference: its looped reference frames with the *ground truth's*
    paste box (the same box and feathering) in place of the generated one.

    A perfect generator makes exactly this video, so its LSE is the best ``wav2lip_style`` can score
    with the rest of its pipeline (looped head and upper face of another clip, a fixed box).
    """

    def __init__(self, manifest, cfg):
        self.manifest, self.cfg = manifest, cfg

    def generate_one(self, request, out_path: Path) -> None:
        from vastbench import media
        from vastbench.controls.controls import n_frames_for

        from baselines.wav2lip_style.infer import paste_mask, ping_pong

        m = self.manifest
        reference = media.read_video(m[request.reference].path("video"), with_audio=False).frames
        truth = media.read_video(m[request.ground_truth].path("video"), with_audio=False).frames
        audio, sr = media.read_wav(m[request.driving].path("audio"))
        n = min(n_frames_for(audio, sr), len(truth))
        looped = reference[ping_pong(len(reference), n)].astype(np.float32)
        alpha = paste_mask(self.cfg)[0].permute(1, 2, 0).numpy()          # (H, W, 1)
        frames = alpha * truth[:n].astype(np.float32) + (1 - alpha) * looped
        media.write_video(out_path, np.clip(np.rint(frames), 0, 255).astype(np.uint8), media.FPS, audio, sr)


def run(out: Path, grid: Path | None, n_requests: int = 16, preset: str = "auto", config: dict | None = None,
        device: str = "cpu", grid_requests: int = 4, identities: list[str] | None = None) -> dict:
    from vastbench import media
    from vastbench.config import DatasetConfig, RequestsConfig
    from vastbench.controls.controls import StaticFrame
    from vastbench.data.manifest import Manifest
    from vastbench.data.requests import build_requests
    from vastbench.data.synthtalk.dataset import SynthTalkDataset
    from vastbench.evalnets.face_capture import load_shipped
    from vastbench.generators import GenContext
    from vastbench.metrics.base import EvalSample
    from vastbench.metrics.landmarks import MLMD
    from vastbench.paths import cache_dir
    from vastbench.vast.renderer_train import write_grid

    from baselines.wav2lip_style.generator import Wav2LipStyle

    manifest = SynthTalkDataset(DatasetConfig(name="synthtalk", profile="quick", seed=0)).load()
    ctx = GenContext(manifest=manifest, device=device, cache_dir=cache_dir(), seed=0)
    gen = Wav2LipStyle("wav2lip_style", ctx, preset=preset, config=config or {})
    work = cache_dir() / "systems" / f"{gen.name}-{gen.config_hash()}"    # where the runner would put it
    t = time.perf_counter()
    gen.prepare(Manifest(manifest.split("train"), manifest.path), work)
    prepare_s = time.perf_counter() - t
    extra = _train_info(gen)
    requests = build_requests(manifest, RequestsConfig(split="test", limit=n_requests, seed=0, identities=identities))
    systems = {"wav2lip_style": gen, "static": StaticFrame("static", ctx)}
    if gen.model().cfg.paste:
        systems["truth_in_box"] = TruthInBox(manifest, gen.model().cfg)
    capture = load_shipped(device)
    mlmd, lse = MLMD(), _lse_metrics()
    rows: dict[str, list[dict]] = {k: [] for k in systems}
    shown: list[tuple[str, np.ndarray]] = []
    for i, req in enumerate(requests):
        truth = media.read_video(manifest[req.ground_truth].path("video"), with_audio=False).frames
        jaw_truth = jaw_series(truth, capture)
        for label, system in systems.items():
            path = out / label / f"{req.request_id}.mp4"
            t = time.perf_counter()
            system.generate_one(req, path)
            gen_s = time.perf_counter() - t
            frames = media.read_video(path, with_audio=False).frames
            n = min(len(frames), len(truth))
            jaw = jaw_series(frames, capture)[:n]
            sample = EvalSample(request=req, generated=path, reference=manifest[req.ground_truth].path("video"),
                                audio=manifest[req.driving].path("audio"))
            row = {"request": req.request_id, "frames": len(frames), "generate_s": round(gen_s, 3),
                   "jaw_corr": _corr(jaw, jaw_truth[:n]), "jaw_std": float(jaw.std()),
                   "jaw_std_truth": float(jaw_truth[:n].std()), "m_lmd": float(mlmd(sample))}
            if lse is not None:
                row["lse_d"], row["lse_c"] = float(lse[0](sample)), float(lse[1](sample))
            rows[label].append(row)
            if label == "wav2lip_style" and i < grid_requests:
                pick = np.linspace(0, n - 1, 8).round().astype(int)
                shown += [(f"truth {req.request_id}", truth[pick]), (f"output {req.request_id}", frames[pick])]
    summary = {
        "dataset": str(manifest.path), "requests": len(requests), "device": device, "prepare_s": round(prepare_s, 1),
        "weights": gen.describe()["weights"], "training": extra,
        "lse_weights": lse[0].weights_label if lse is not None else None,
        "systems": {label: _mean(r) for label, r in rows.items()}, "per_request": rows,
    }
    from vastbench.rundir import atomic_write_json

    atomic_write_json(out / "sanity.json", summary)
    if grid is not None and shown:
        write_grid(grid, shown, scale=2)
    return summary


def _train_info(gen) -> dict:
    from baselines.wav2lip_style.train import load_state

    g = load_state(gen._paths["generator"], "generator")
    e = load_state(gen._paths["expert"], "expert")
    return {"generator_steps": g["step"], "generator_train_s": g["extra"].get("train_s"),
            "expert_steps": e["step"], "expert_train_s": e["extra"].get("train_s"),
            "expert_val_acc": e["extra"].get("val_acc"), "expert_val_loss": e["extra"].get("val_loss")}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-5 or b.std() < 1e-5:   # a still mouth (static) has no correlation; call it 0
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _mean(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("request",)]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}


def main(argv: list[str] | None = None) -> None:
    from vastbench.torchutil import configure_threads

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("reports/wav2lip_style_sanity"))
    p.add_argument("--grid", type=Path, default=Path("docs/img/baseline_wav2lip_style.png"))
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--preset", default="auto")
    p.add_argument("--config", default="{}", help="JSON overrides of Wav2LipConfig fields")
    p.add_argument("--device", default="cpu")
    p.add_argument("--identity", action="append", dest="identities",
                   help="only requests of this target identity (repeatable); the comparison suite uses id03")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    configure_threads()
    s = run(a.out, a.grid, a.requests, a.preset, json.loads(a.config), a.device, identities=a.identities)
    print(json.dumps({k: s[k] for k in ("prepare_s", "training", "lse_weights", "systems")}, indent=2))


if __name__ == "__main__":
    main()
