"""``vastbench mos serve``: check the study, then run the Streamlit app on it.

The checks run before the server starts and fail on the command line with one
line: an unknown or unreachable database, a schema that cannot be migrated, a
missing or corrupt clip.  Streamlit is told to serve nothing but the app
(static file serving off, no file watcher, no usage statistics, error details
hidden from judges), bound to loopback unless ``--address`` says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vastbench.errors import VastbenchError

ENTRY = Path(__file__).with_name("_entry.py")


@dataclass
class ServeConfig:
    study_dir: Path
    db_url: str | None = None
    port: int = 8501
    address: str = "127.0.0.1"
    base_url: str | None = None
    verify_clips: bool = True


def preflight(cfg: ServeConfig) -> dict:
    """Open the study and its database and check every clip; returns a summary."""
    from vastbench.mos.manage import open_study

    sd, store, sid = open_study(cfg.study_dir, cfg.db_url)
    try:
        clips = store.clips(sid)
        problems = sd.check_clips(clips, verify_hash=cfg.verify_clips)
        if problems:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise VastbenchError(f"{sd.root}: {len(problems)} clip(s) unusable: {'; '.join(problems[:3])}{more}; "
                                 "restore the study directory from its backup or recreate the study")
        return {"study_id": sid, "clips": len(clips), "judges": len(store.judges(sid)),
                "schema_version": store.schema_version(), "db_url": store.url}
    finally:
        store.close()


def streamlit_command(cfg: ServeConfig) -> tuple[list[str], dict]:
    base = cfg.base_url or f"http://{'localhost' if cfg.address in ('127.0.0.1', '0.0.0.0') else cfg.address}:{cfg.port}"
    argv = [sys.executable, "-m", "streamlit", "run", str(ENTRY),
            "--server.port", str(cfg.port), "--server.address", cfg.address,
            "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--server.enableStaticServing", "false", "--server.maxUploadSize", "1",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--client.showErrorDetails", "none", "--client.showSidebarNavigation", "false",
            "--global.developmentMode", "false"]
    env = dict(os.environ)
    env.update({"VASTBENCH_MOS_STUDY": str(Path(cfg.study_dir).resolve()),
                "VASTBENCH_MOS_BASE_URL": base.rstrip("/")})
    if cfg.db_url:
        env["VASTBENCH_MOS_DB"] = cfg.db_url
    else:
        env.pop("VASTBENCH_MOS_DB", None)
    return argv, env


def start(cfg: ServeConfig, **popen) -> subprocess.Popen:
    """Preflight, then start the server in the background (tests, the load test)."""
    preflight(cfg)
    argv, env = streamlit_command(cfg)
    return subprocess.Popen(argv, env=env, **popen)


def serve(cfg: ServeConfig) -> int:
    """Preflight, then run the server in the foreground until interrupted."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise VastbenchError("the rating app needs streamlit; install the extra: pip install 'vastbench[app]'") from None
    preflight(cfg)
    argv, env = streamlit_command(cfg)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 0


__all__ = ["ServeConfig", "preflight", "streamlit_command", "start", "serve"]
