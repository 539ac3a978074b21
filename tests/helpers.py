"""Helpers shared by test modules (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real ``vastbench`` command in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "vastbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"vastbench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# Browser tests drive the Debian Chromium through Playwright (never `playwright install`).
CHROMIUM = os.environ.get("VASTBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+")


def same_numbers(a: str, b: str) -> bool:
    """Equal text, with each number equal up to 1% relative, 0.01 absolute (a table's CI half-width
    moves more than its mean) or one unit in its last printed digit.

    Why not bytes: libx264 as PyAV links it is, rarely, not bit-reproducible between processes (a
    regenerated `static` clip once differed from the uninterrupted run's by 0.001 dB PSNR and 0.5%
    M-LMD; the same frames encode to identical bytes in almost every process).  Every row, request,
    system, count and failure must match; codec noise in a clip's metric values may not.
    """
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        if x == y:
            continue
        if "." not in x or "." not in y:
            return False  # counts, ids, integers: exact
        digits = len(x.split(".")[1].lower().split("e")[0])
        unit = 10.0 ** -digits if digits <= 3 else 0.0   # a table's rounded value may flip one unit
        fx, fy = float(x), float(y)
        if abs(fx - fy) > max(1e-2 * max(abs(fx), abs(fy)), 1.01 * unit, 1e-2):
            return False
    return True
