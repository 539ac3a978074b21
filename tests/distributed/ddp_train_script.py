"""Run by torchrun from test_distributed.py: DDP training of a tiny VAST model on synthetic clips.

    torchrun --standalone --nproc_per_node=2 tests/distributed/ddp_train_script.py OUT_DIR
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.distributed.ddp_common import CFG_OVERRIDES, N_CLIPS, STEPS  # noqa: E402
from tests.vast.vast_fixtures import make_clips, tiny_config  # noqa: E402
from vastbench import distributed as dist  # noqa: E402
from vastbench.vast.train import train  # noqa: E402

if __name__ == "__main__":
    dist.init("cpu")
    try:
        train(tiny_config(**CFG_OVERRIDES), make_clips(N_CLIPS, seed=0), None, sys.argv[1], steps=STEPS,
              device="cpu", seed=0, progress=False)
    finally:
        dist.shutdown()
