"""The ``external`` generator: outputs of methods that do not live in this repository.

Two routes, usable together:

* ``videos: DIR`` imports ``DIR/<request_id>.mp4`` (or .mov/.mkv/.webm/.avi), made
  by running the method on the list from ``vastbench requests export``;
* ``command: "python infer.py --audio {audio} --image {reference} --out {out}"``
  runs the method once per request (tokens split with :mod:`shlex`, no shell).
  With ``videos`` too, the command's outputs are kept in ``DIR`` and a request
  whose video is already there is imported without running the command again.

Every output is checked and normalised by :func:`baselines.external.normalize.normalise`;
each failure (missing file, wrong length or fps, unreadable file, non-zero exit,
timeout) is one line in the system's ``errors.jsonl`` and the run goes on.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from baselines.external.normalize import VIDEO_EXTS, Target, find_video, normalise, target_for
from vastbench.config import stable_hash
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext, Generator

# Under "vastbench" so that command output lands in the run's log.txt.
log = logging.getLogger("vastbench.external")

PLACEHOLDERS = ("audio", "reference", "prompt", "out", "request_id", "seed", "identity")
TAIL_CHARS = 300
HASH_LIMIT = 64 << 20  # files named in the command larger than this are fingerprinted by size + mtime


class External(Generator):
    """Import (``videos``) or run (``command``) an external method for every request."""

    name = "external"
    version = "1"
    defaults = {"videos": None, "command": None, "cwd": None, "timeout_s": 3600.0, "resample": False}

    def __init__(self, label: str, ctx: GenContext, **args: Any):
        super().__init__(label, ctx, **args)
        a = self.args
        where = f"system '{label}' (generator external)"
        if not a["videos"] and not a["command"]:
            raise VastbenchError(f"{where}: give args.videos (a folder of <request_id>.mp4) and/or args.command "
                                 "(a template run per request)")
        if not isinstance(a["resample"], bool):
            raise VastbenchError(f"{where}: resample must be true or false, got {a['resample']!r}")
        if isinstance(a["timeout_s"], bool) or not isinstance(a["timeout_s"], (int, float)) or a["timeout_s"] <= 0:
            raise VastbenchError(f"{where}: timeout_s must be a positive number of seconds, got {a['timeout_s']!r}")
        self.videos = Path(str(a["videos"])).expanduser().absolute() if a["videos"] else None
        self.cwd = Path(str(a["cwd"])).expanduser().absolute() if a["cwd"] else None
        if self.cwd is not None and not self.cwd.is_dir():
            raise VastbenchError(f"{where}: cwd {self.cwd} is not a directory")
        self.argv = parse_command(a["command"], where) if a["command"] else None
        if self.videos is not None:
            if self.videos.exists() and not self.videos.is_dir():
                raise VastbenchError(f"{where}: videos {self.videos} is a file; give the folder holding the videos")
            if self.argv is None and not self.videos.is_dir():
                raise VastbenchError(f"{where}: videos folder {self.videos} does not exist; produce the videos "
                                     "(see `vastbench requests export`) or fix the path")
        self._targets: dict[str, Target] = {}
        self._inputs: list[list] | None = None

    # ------------------------------------------------------------------ generation
    def generate_one(self, request: Request, out_path: Path) -> None:
        target = self._target(request)
        rid = request.request_id
        found = find_video(self.videos, rid) if self.videos is not None and self.videos.is_dir() else None
        if found is not None:
            self._normalise(found, out_path, target, rid)
            return
        if self.argv is None:
            raise VastbenchError(f"{self.videos}: no video for request {rid} (expected {rid}.mp4); produce it "
                                 "as the README.txt of `vastbench requests export` says")
        # The command writes into a scratch folder; only a finished video is moved into `videos`.
        scratch_parent = self.videos if self.videos is not None else Path(out_path).parent
        scratch_parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{rid}.", dir=scratch_parent))
        try:
            raw = scratch / f"{rid}.mp4"
            self._run(request, raw)
            if not raw.is_file():
                raise VastbenchError(f"{self.argv[0]} exited 0 for request {rid} but wrote no video at {{out}} "
                                     f"({raw}); make the method write its result to the {{out}} path")
            if self.videos is not None:
                kept = self.videos / raw.name
                os.replace(raw, kept)
                raw = kept
            self._normalise(raw, out_path, target, rid)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _normalise(self, src: Path, out_path: Path, target: Target, rid: str) -> None:
        changes = normalise(src, out_path, target, resample=self.args["resample"])
        if changes:
            log.info("%s %s: %s", self.label, rid, "; ".join(changes))

    def _target(self, request: Request) -> Target:
        if request.request_id not in self._targets:
            self._targets[request.request_id] = target_for(self.ctx.manifest, request)
        return self._targets[request.request_id]

    def _run(self, request: Request, out: Path) -> None:
        m = self.ctx.manifest
        values = {"audio": m[request.driving].path("audio").absolute(),
                  "reference": m[request.reference].path("video").absolute(),
                  "prompt": m[request.prompt].path("video").absolute(),
                  "out": out, "request_id": request.request_id, "seed": request.seed, "identity": request.identity}
        argv = [tok.format(**values) for tok in self.argv]
        rid = request.request_id
        log.info("%s %s: running %s", self.label, rid, shlex.join(argv))
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise VastbenchError(f"command '{argv[0]}' not found; give its full path in args.command") from None
        except PermissionError:
            raise VastbenchError(f"command '{argv[0]}' is not executable; chmod +x it or run it through "
                                 "its interpreter (python/bash ...)") from None
        timeout = float(self.args["timeout_s"])
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            log.warning("%s %s: timed out after %gs; output tail:\n%s", self.label, rid, timeout,
                        _text(stderr or stdout)[-4000:])
            raise VastbenchError(f"{argv[0]} timed out after {timeout:g} s for request {rid} (killed); raise "
                                 "args.timeout_s or check the method") from None
        except BaseException:
            # Ctrl-C reaches only vastbench (the command has its own session): stop the command too.
            _kill_group(proc)
            proc.wait()
            raise
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            log.warning("%s %s: exit status %d after %.1fs; stderr:\n%s", self.label, rid, proc.returncode, dt,
                        _text(stderr)[-4000:])
            how = (f"was killed by {_signal_name(-proc.returncode)}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            tail = tail_line(_text(stderr) or _text(stdout))
            raise VastbenchError(f"{argv[0]} {how} for request {rid}"
                                 + (f": {tail}" if tail else " (no output)") + " (full output in log.txt)")
        log.info("%s %s: done in %.1fs", self.label, rid, dt)

    # ------------------------------------------------------------------ provenance
    def describe(self) -> dict:
        """The config plus a fingerprint of the inputs, so the runner regenerates when they change.

        ``videos`` alone: the folder's video files (name, size, mtime).  ``command``: the
        files the template names (sha256; size + mtime above 64 MiB), e.g. the script and
        its checkpoint; with ``videos`` too, the folder holds the command's outputs and is
        not part of the fingerprint.
        """
        if self._inputs is None:  # once per instance: one run sees one state of the inputs
            self._inputs = self.command_files() if self.argv is not None else self.folder_listing()
        inputs = self._inputs
        return {"name": self.name, "version": self.version, "args": self.args,
                "weights": {"inputs": stable_hash(inputs)},
                "inputs": {"kind": "command" if self.argv is not None else "videos", "files": len(inputs)}}

    def folder_listing(self) -> list[list]:
        if self.videos is None or not self.videos.is_dir():
            return []
        out = []
        for p in sorted(self.videos.iterdir()):
            if p.suffix.lower() in VIDEO_EXTS and p.is_file() and not p.name.startswith("."):
                st = p.stat()
                out.append([p.name, st.st_size, st.st_mtime_ns])
        return out

    def command_files(self) -> list[list]:
        from vastbench.rundir import sha256_file

        out = []
        for tok in self.argv or []:
            if "{" in tok:
                continue
            for cand in {tok, tok.split("=", 1)[-1]}:
                p = Path(cand).expanduser()
                if not p.is_absolute() and self.cwd is not None:
                    p = self.cwd / p
                if cand and p.is_file():
                    st = p.stat()
                    key = sha256_file(p) if st.st_size <= HASH_LIMIT else f"{st.st_size}:{st.st_mtime_ns}"
                    out.append([cand, key])
        return sorted(out)


def parse_command(command: str | list, where: str) -> list[str]:
    """Split the template into argv tokens (shlex) and check its placeholders."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise VastbenchError(f"{where}: command cannot be split into arguments ({exc}); check its quotes") from None
    elif isinstance(command, list) and all(isinstance(t, (str, int, float)) for t in command):
        argv = [str(t) for t in command]
    else:
        raise VastbenchError(f"{where}: command must be a string or a list of strings")
    if not argv:
        raise VastbenchError(f"{where}: command is empty")
    fields = set()
    for tok in argv:
        try:
            parsed = list(string.Formatter().parse(tok))
        except ValueError as exc:
            raise VastbenchError(f"{where}: bad placeholder in '{tok}' ({exc}); write literal braces as {{{{ }}}}") from None
        for _, field, spec, conv in parsed:
            if field is None:
                continue
            if field not in PLACEHOLDERS:
                from vastbench.registry import did_you_mean

                raise VastbenchError(f"{where}: unknown placeholder {{{field}}} in command"
                                     f"{did_you_mean(field, PLACEHOLDERS)}")
            fields.add(field)
    if "out" not in fields:
        raise VastbenchError(f"{where}: command must contain {{out}}, the path where the method writes its video")
    return argv


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command and everything it started (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _text(b: bytes | None) -> str:
    return (b or b"").decode("utf-8", errors="replace")


def tail_line(text: str, n: int = TAIL_CHARS) -> str:
    """The last lines of ``text`` as one line of at most ``n`` characters."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    out = " | ".join(lines[-3:])
    return out if len(out) <= n else "..." + out[-(n - 3):]


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"
