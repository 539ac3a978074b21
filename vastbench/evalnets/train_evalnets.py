"""Recipes that reproduce the shipped evaluation networks.

    python -m vastbench.evalnets.train_evalnets face_capture [--out PATH]
    python -m vastbench.evalnets.train_evalnets style_net [--out PATH]

Both train on the SynthTalk ``quick`` dataset (seed 0; built first if missing),
``train`` split only, seeded.  Without ``--out`` they write the file into the
package's weights directory; the shipped file's sha256 is pinned in
:mod:`vastbench.evalnets.assets_catalog`, so a retrained file is only
bit-identical with the same torch version, thread count (``$VASTBENCH_THREADS``,
1 on two cores) and device.  Each recipe prints its accuracy on ``test`` and
``test_unseen_identity`` (and, for the style network, on ``test_unseen_style``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from vastbench.assets import SHIPPED_DIR

FILENAMES = {"face_capture": "face_capture_v1.pt", "style_net": "style_net_v1.pt"}


def quick_manifest():
    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    return SynthTalkDataset(DatasetConfig(name="synthtalk", profile="quick", seed=0)).load()


def render_clips(clip_ids: list[str], root: Path, seed: int = 0, size: int = 80, clips_per_pair: int = 3):
    """A few named SynthTalk clips (ids as in the ``quick`` plan) rendered into ``root``, without the
    whole dataset: for tests and spot checks (about 1-2 s per clip, plus a few seconds per identity).
    Clips already there are reused.  Returns a Manifest of just those clips."""
    from vastbench.data.manifest import Clip, Manifest
    from vastbench.data.synthtalk.dataset import make_clip, plan_clips
    from vastbench.errors import VastbenchError

    specs = {s.clip_id: s for s in plan_clips(seed, clips_per_pair)}
    missing = [c for c in clip_ids if c not in specs]
    if missing:
        raise VastbenchError(f"no SynthTalk clips {missing} in the plan for seed {seed}")
    rows = [make_clip(Path(root), specs[c], size, seed) for c in sorted(clip_ids, key=lambda c: specs[c].identity)]
    clips = [Clip(**row, root=Path(root)) for row in rows]
    return Manifest(clips)


def train_face_capture(out: Path) -> dict:
    from vastbench.evalnets import face_capture as fcm

    m = quick_manifest()
    t0 = time.time()
    fc = fcm.train(m.split("train"), fcm.CaptureConfig())
    seconds = time.time() - t0
    report = {split: fcm.evaluate(fc, m.split(split)) for split in ("val", "test", "test_unseen_identity")}
    fc.meta["describe"] = {"accuracy": report}
    fc.save(out)
    return {"file": str(out), "train_seconds": round(seconds, 1), "accuracy": report}


def train_style_net(out: Path) -> dict:
    from vastbench.evalnets import style_net as snm

    m = quick_manifest()
    t0 = time.time()
    net = snm.train(m.split("train"), snm.StyleNetConfig())
    seconds = time.time() - t0
    report = snm.evaluate(net, m)
    net.meta["describe"] = {"accuracy": report}
    net.save(out)
    return {"file": str(out), "train_seconds": round(seconds, 1), "accuracy": report}


def main(argv: list[str] | None = None) -> int:
    from vastbench.rundir import sha256_file
    from vastbench.torchutil import configure_threads

    ap = argparse.ArgumentParser(prog="python -m vastbench.evalnets.train_evalnets", description=__doc__.split("\n")[0])
    ap.add_argument("net", choices=sorted(FILENAMES))
    ap.add_argument("--out", type=Path, default=None, help="where to write the weights (default: the shipped file)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configure_threads()
    out = args.out or SHIPPED_DIR / FILENAMES[args.net]
    result = (train_face_capture if args.net == "face_capture" else train_style_net)(out)
    result["sha256"] = sha256_file(out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
