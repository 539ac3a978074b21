"""Helpers shared by test modules (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import os
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
