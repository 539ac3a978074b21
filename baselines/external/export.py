"""``vastbench requests export``: a suite's request list, for running external methods on it.

The dataset and the requests come from the runner's own ``data`` and ``requests``
stages, so the exported list is exactly the one a run of the suite evaluates
(same ids, same clips, same seeds).  The folder gets ``requests.csv``,
``requests.json`` (the same rows plus the frame count and resolution each output
must have) and a ``README.txt`` saying what to produce.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baselines.external.normalize import LENGTH_TOLERANCE, target_for
from vastbench import media
from vastbench.config import SuiteConfig, stable_hash
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request, requests_csv
from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_json, atomic_write_text


@dataclass
class Export:
    folder: Path
    n_requests: int
    files: list[Path]


def default_folder(cfg: SuiteConfig) -> Path:
    return Path(os.environ.get("VASTBENCH_RUNS", "runs")) / cfg.name / "requests"


def resolve_requests(cfg: SuiteConfig, reporter=None) -> tuple[Manifest, list[Request], dict]:
    """The suite's manifest (built when missing) and requests, through the runner's stages."""
    from vastbench.rundir import RunDir
    from vastbench.runner import Runner

    # A scratch run directory holds the stages' bookkeeping; metrics are not needed to export.
    with tempfile.TemporaryDirectory(prefix="vastbench-export-") as tmp:
        runner = Runner(cfg.model_copy(update={"metrics": []}), RunDir(tmp), device="cpu", reporter=reporter)
        runner.stage_data()
        runner.stage_requests()
        dataset = runner.run.read_manifest()["dataset"]
    return _absolute(runner.manifest), runner.requests, dataset


def _absolute(manifest: Manifest) -> Manifest:
    clips = [dataclasses.replace(c, root=c.root.absolute() if c.root is not None else None) for c in manifest.clips]
    return Manifest(clips, manifest.path)


def request_rows(manifest: Manifest, requests: list[Request]) -> list[dict]:
    rows = []
    for r in requests:
        t = target_for(manifest, r)
        rows.append({
            "request_id": r.request_id, "identity": r.identity,
            "reference_video": str(manifest[r.reference].path("video").absolute()),
            "driving_audio": str(manifest[r.driving].path("audio").absolute()),
            "prompt_video": str(manifest[r.prompt].path("video").absolute()),
            "seed": r.seed, "out": f"{r.request_id}.mp4",
            "n_frames": t.n_frames, "width": t.width, "height": t.height,
            "reference_clip": r.reference, "driving_clip": r.driving, "prompt_clip": r.prompt,
        })
    return rows


def export_requests(cfg: SuiteConfig, out: Path | None = None, reporter=None) -> Export:
    """Write requests.csv, requests.json and README.txt for ``cfg`` into ``out``."""
    folder = Path(out) if out is not None else default_folder(cfg)
    if folder.exists() and not folder.is_dir():
        raise VastbenchError(f"{folder}: is a file; give a folder for the exported requests with --out")
    manifest, requests, dataset = resolve_requests(cfg, reporter)
    rows = request_rows(manifest, requests)
    doc = {"suite": cfg.name, "suite_version": cfg.version, "suite_config_hash": cfg.config_hash(),
           "requests_hash": stable_hash([r.to_row() for r in requests]),
           "dataset": dataset, "fps": media.FPS, "sample_rate": media.SAMPLE_RATE,
           "length_tolerance_frames": LENGTH_TOLERANCE, "n_requests": len(rows), "requests": rows}
    files = [atomic_write_text(folder / "requests.csv", requests_csv(requests, manifest)),
             atomic_write_json(folder / "requests.json", doc, sort_keys=False),
             atomic_write_text(folder / "README.txt", readme_text(doc, folder))]
    return Export(folder=folder, n_requests=len(rows), files=files)


def readme_text(doc: dict, folder: Path) -> str:
    sizes = sorted({f"{r['width']}x{r['height']}" for r in doc["requests"]})
    frames = [r["n_frames"] for r in doc["requests"]]
    span = f"{min(frames)}-{max(frames)}" if frames and min(frames) != max(frames) else str(frames[0] if frames else 0)
    ds = doc["dataset"]
    return f"""\
Requests of suite '{doc['suite']}' (version {doc['suite_version']}, config {doc['suite_config_hash']})
dataset {ds.get('name')}/{ds.get('profile')} (manifest {ds.get('manifest_hash')}), {doc['n_requests']} requests,
request list {doc['requests_hash']}.  Written by `vastbench requests export`.

Files
  requests.csv   request_id, identity, reference_video, driving_audio, prompt_video, seed, out
  requests.json  the same rows plus n_frames, width, height (what each output must be) and the
                 dataset clip ids of the reference, the driving audio and the prompt
  All paths are absolute.

For every request, make ONE video named by the `out` column (<request_id>.mp4), showing the
person of `reference_video` (the target identity: their appearance) speaking `driving_audio`
(16 kHz mono wav) in the speaking style of `prompt_video` (possibly another person).  Use `seed`
if your method samples.  Put all the videos in one folder.

Each video must be
  - {doc['fps']} fps, constant frame rate;
  - exactly as long as the driving audio: n_frames = round(audio seconds x {doc['fps']}) frames
    (given per request in requests.json; {span} here), +-{doc['length_tolerance_frames']} frame tolerated;
  - the same resolution as the request's reference video ({', '.join(sizes) or 'none'} here);
  - H.264 (yuv420p) in an .mp4 file.  Muxing the driving audio in is optional: when the
    video has no audio track, vastbench muxes the driving audio in.

Anything else is refused with a one-line reason in the run's systems/<label>/errors.jsonl (the
rest is still evaluated; tables count the failures).  With `resample: true` vastbench converts
other frame rates (FFmpeg's fps filter) and resolutions (resize) for you; a wrong length is
never fixed.  .mov/.mkv/.webm/.avi files and other codecs are re-encoded to H.264/AAC mp4.

Import the folder as a system of a suite (a YAML that includes this suite):

  include: {doc['suite']}
  systems:
    - label: my_method
      generator: external
      args:
        videos: /path/to/your/videos      # <request_id>.mp4 files
        resample: false

or let vastbench run your method once per request (no shell; placeholders {{audio}}
{{reference}} {{prompt}} {{out}} {{request_id}} {{seed}} {{identity}}):

      args:
        command: "python infer.py --audio {{audio}} --ref {{reference}} --style {{prompt}} --out {{out}}"
        timeout_s: 600

then `vastbench run --suite that.yaml`.  See baselines/external/README.md for worked examples.
This folder: {folder.absolute()}
"""
