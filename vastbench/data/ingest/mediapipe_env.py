"""The isolated MediaPipe environment and the client that talks to its face-mesh worker.

Why isolated: ``mediapipe==0.10.21`` is the release whose wheel still ships the
legacy face detector and 478-point face-mesh models (later releases need a
``.task`` file downloaded from a model hub), but it requires ``numpy<2`` and
``protobuf>=4.25.3,<5``, while vastbench runs on numpy 2 (opencv-python 5 and
pandas 3 require it) and the rating app's Streamlit requires ``protobuf>=5.26``.
``pip`` cannot satisfy both in one environment, so MediaPipe lives in its own
virtual environment and runs as a worker process (``mp_worker.py``) that
exchanges raw frames and landmarks over pipes.  Nothing else of vastbench is
imported there.

Where the environment is:

1. ``$VASTBENCH_MEDIAPIPE_PYTHON``: any interpreter that imports mediapipe 0.10.21;
2. ``$VASTBENCH_MEDIAPIPE_ENV`` (a venv directory), else ``<active venv>/mediapipe-env``
   (outside a venv: ``~/.local/share/vastbench/mediapipe-env``).

``vastbench data ingest-setup`` creates (2) from PyPI once; everything after
that is offline (the models are inside the wheel).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

MEDIAPIPE_VERSION = "0.10.21"
N_MESH = 478  # 468 face-mesh points + 10 iris points (refine_landmarks=True)
# mediapipe is installed without its own dependency list: that list pulls in jax/jaxlib (not used by the face
# mesh), sounddevice and the GUI build of OpenCV (which needs libGL).  These are the modules the face-mesh
# solution imports, with mediapipe's own version bounds.
REQUIREMENTS = ("numpy>=1.24,<2", "protobuf>=4.25.3,<5", "absl-py", "attrs>=19.1.0", "flatbuffers>=2.0",
                "matplotlib", "opencv-contrib-python-headless>=4.8,<4.12")
WORKER = Path(__file__).resolve().with_name("mp_worker.py")


class MediaPipeError(VastbenchError):
    """The MediaPipe worker is missing or failed: a problem of the set-up, not of one video."""


def default_env_dir() -> Path:
    env = os.environ.get("VASTBENCH_MEDIAPIPE_ENV")
    if env:
        return Path(env).expanduser()
    if sys.prefix != sys.base_prefix:  # inside a virtual environment: keep it beside (make clean removes both)
        return Path(sys.prefix) / "mediapipe-env"
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data / "vastbench" / "mediapipe-env"


def _env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python() -> Path | None:
    """The interpreter that runs the worker, or None when MediaPipe is not set up."""
    explicit = os.environ.get("VASTBENCH_MEDIAPIPE_PYTHON")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.exists():
            raise VastbenchError(f"VASTBENCH_MEDIAPIPE_PYTHON={explicit}: no such interpreter; unset it or point it "
                                 "at a Python that imports mediapipe 0.10.21")
        return p
    p = _env_python(default_env_dir())
    return p if p.exists() else None


def require_python() -> Path:
    p = find_python()
    if p is None:
        raise VastbenchError(f"MediaPipe is not set up (no environment at {default_env_dir()}); run "
                             f"`vastbench data ingest-setup` once (installs mediapipe=={MEDIAPIPE_VERSION} from PyPI "
                             "into an isolated environment)")
    return p


def setup_env(env_dir: Path | None = None, force: bool = False, quiet: bool = True) -> dict:
    """Create the isolated environment and check that the worker answers; returns its versions."""
    env_dir = Path(env_dir) if env_dir is not None else default_env_dir()
    py = _env_python(env_dir)
    if force and env_dir.exists():
        import shutil

        if not (env_dir / "pyvenv.cfg").exists():
            raise VastbenchError(f"{env_dir} is not a virtual environment; --force only replaces one it created")
        shutil.rmtree(env_dir)
    if not py.exists():
        # From the base interpreter: a venv of a venv would inherit nothing anyway, but be explicit.
        base = Path(sys.base_prefix) / ("python.exe" if os.name == "nt" else "bin/python3")
        creator = str(base) if base.exists() else sys.executable
        _pip_step([creator, "-m", "venv", str(env_dir)], "create the virtual environment")
    q = ["-q"] if quiet else []
    _pip_step([str(py), "-m", "pip", "install", *q, "--disable-pip-version-check", *REQUIREMENTS],
              "install MediaPipe's dependencies")
    _pip_step([str(py), "-m", "pip", "install", *q, "--disable-pip-version-check", "--no-deps",
               f"mediapipe=={MEDIAPIPE_VERSION}"], f"install mediapipe=={MEDIAPIPE_VERSION}")
    with FaceMeshClient(py) as client:
        info = client.hello()
    info["python"] = str(py)
    return info


def _pip_step(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise VastbenchError(f"could not {what} ({tail[-300:]}); check that PyPI is reachable and rerun "
                             "`vastbench data ingest-setup`")


class FaceMeshClient:
    """A MediaPipe face-mesh worker process.  Use as a context manager; one per process.

    ``process(frame)`` -> ``(k, 478, 3)`` float32 landmarks of the ``k`` faces found,
    in pixels of ``frame`` (x right, y down, z in the scale of x, smaller = nearer).
    """

    def __init__(self, python: str | Path | None = None):
        self.python = Path(python) if python is not None else require_python()
        self._proc: subprocess.Popen | None = None
        self._log = None

    # ------------------------------------------------------------------ process
    def start(self) -> "FaceMeshClient":
        if self._proc is not None:
            return self
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3", PYTHONNOUSERSITE="1")
        self._log = tempfile.TemporaryFile(mode="w+b")
        try:
            self._proc = subprocess.Popen([str(self.python), "-I", str(WORKER)], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._log, env=env)
        except OSError as exc:
            raise MediaPipeError(f"cannot start the MediaPipe worker with {self.python} ({exc}); "
                                 "rerun `vastbench data ingest-setup`") from None
        return self

    def __enter__(self) -> "FaceMeshClient":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.stdin.write(b'{"op": "quit"}\n')
                proc.stdin.flush()
                proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _stderr_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith(("W0000", "I0000", "INFO:", "WARNING: All log"))]
        return " | ".join(lines[-3:])[-400:]

    def _call(self, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        self.start()
        proc = self._proc
        try:
            proc.stdin.write(json.dumps(dict(header, nbytes=len(payload))).encode() + b"\n")
            if payload:
                proc.stdin.write(payload)
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                raise EOFError
            reply = json.loads(line)
            data = proc.stdout.read(int(reply.get("nbytes", 0))) if reply.get("nbytes") else b""
        except (OSError, EOFError, ValueError):
            tail = self._stderr_tail()
            self.close()
            raise MediaPipeError(f"the MediaPipe worker ({self.python}) stopped: {tail or 'no message'}; "
                                 "rerun `vastbench data ingest-setup`") from None
        if not reply.get("ok"):
            raise MediaPipeError(f"MediaPipe worker: {reply.get('error')}")
        return reply, data

    # ------------------------------------------------------------------ requests
    def hello(self) -> dict:
        reply, _ = self._call({"op": "hello"})
        if reply.get("mediapipe") != MEDIAPIPE_VERSION:
            raise VastbenchError(f"{self.python} has mediapipe {reply.get('mediapipe')}, vastbench needs "
                                 f"{MEDIAPIPE_VERSION} (its wheel ships the face-mesh models); rerun "
                                 "`vastbench data ingest-setup --force`")
        return {k: reply[k] for k in ("mediapipe", "numpy", "python")}

    def reset(self, static: bool = False, max_faces: int = 2, min_detection: float = 0.5,
              min_tracking: float = 0.5) -> None:
        """A fresh tracker (call before each video); ``static`` detects every frame on its own."""
        self._call({"op": "reset", "static": static, "max_faces": max_faces, "min_detection": min_detection,
                    "min_tracking": min_tracking})

    def process(self, frame: np.ndarray) -> np.ndarray:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VastbenchError(f"MediaPipe needs (H, W, 3) RGB frames, got {frame.shape}")
        h, w = frame.shape[:2]
        reply, data = self._call({"op": "frame", "h": h, "w": w}, frame.tobytes())
        return np.frombuffer(data, np.float32).reshape(int(reply["faces"]), N_MESH, 3).copy()

    def topology(self) -> dict:
        reply, _ = self._call({"op": "topology"})
        return {k: reply[k] for k in ("face_oval_loop", "regions", "tesselation_edges")}


def available() -> bool:
    """True when an isolated MediaPipe interpreter is configured (it is not started here)."""
    try:
        return find_python() is not None
    except VastbenchError:
        return False
