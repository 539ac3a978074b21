"""Fixtures for the MOS app tests: a smoke run, studies made from it, databases.

``db_url`` runs a test on SQLite and on a real PostgreSQL server that the
session starts in a temporary directory on a loopback port (Debian's
``postgresql`` binaries under /usr/lib/postgresql/*/bin; skipped with the reason
where they are absent).
"""

from __future__ import annotations

import csv
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the MOS app needs the 'app' extra: pip install 'vastbench[app]'")

ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def mos_run(smoke_run):
    return smoke_run.run.root


def make_study(run_root: Path, out: Path, db_url: str | None = None, **kw):
    from vastbench.mos.design import StudyOptions, create_study

    kw.setdefault("judges", 4)
    kw.setdefault("ratings_per_clip", 2)
    kw.setdefault("admin_password", ADMIN_PASSWORD)
    return create_study(run_root, out, StudyOptions(**kw), db_url)


def tokens(study_dir: Path) -> dict[str, str]:
    with open(Path(study_dir) / "private" / "links.csv", newline="") as f:
        return {row["judge"]: row["link"].split("?t=", 1)[1] for row in csv.DictReader(f)}


@pytest.fixture
def study(mos_run, tmp_path):
    """A 4-judge study on the smoke run (SQLite in the study directory)."""
    return make_study(mos_run, tmp_path / "study")


# --------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """``(base_url, admin_url)`` of a throwaway PostgreSQL server, stopped at the end."""
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg: pip install 'psycopg[binary]'")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; apt-get install postgresql")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="vb-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the PostgreSQL server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, sock, port = root / "data", root, _free_port()
    log = root / "server.log"

    def pg(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120, **kw)

    r = pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {r.stderr.strip()[-500:]}")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    r = pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start")
    if r.returncode != 0:
        text = log.read_text() if log.exists() else r.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {text.strip()[-500:]}")
    base = f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    try:
        yield base, bindir, run_as, data
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def new_pg_database(base: str) -> str:
    from sqlalchemy import create_engine, text

    name = "vb_" + uuid.uuid4().hex[:12]
    eng = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ratings.db'}"
    base = request.getfixturevalue("postgres_server")[0]
    return new_pg_database(base)


# --------------------------------------------------------------------------- AppTest
APP_ENTRY = Path(__file__).resolve().parents[2] / "vastbench" / "mos" / "_entry.py"


def app_test(monkeypatch, study_dir, db_url: str | None = None, **params):
    """A fresh AppTest session (a new browser tab) on the study, with query parameters."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VASTBENCH_MOS_STUDY", str(study_dir))
    if db_url:
        monkeypatch.setenv("VASTBENCH_MOS_DB", db_url)
    else:
        monkeypatch.delenv("VASTBENCH_MOS_DB", raising=False)
    at = AppTest.from_file(str(APP_ENTRY), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def texts(at) -> str:
    """Every text the page shows (markdown, titles, messages, labels), joined."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "error", "success", "warning", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(r.label) for r in at.radio] + [str(o) for r in at.radio for o in r.options]
    parts += [str(e.label) for e in at.expander] + [str(b.label) for b in at.button]
    return "\n".join(parts)


def rate(at, scores=(4, 3, 5), comment: str | None = None):
    """Fill the three scales (None leaves one empty) and press Next."""
    for radio, v in zip(at.radio, scores):
        if v is not None:
            radio.set_value(v)
    if comment is not None:
        at.text_area[0].input(comment)
    return at.button(key="next").click().run()


# --------------------------------------------------------------------------- the real server
ARTIFACTS = Path(os.environ.get("VASTBENCH_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")) / "mos"
from tests.helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402,F401  (shared with other browser tests)


class Server:
    """``vastbench mos serve`` in the background on a free loopback port."""

    def __init__(self, study_dir, db_url: str | None = None, log_dir: Path | None = None):
        self.study_dir, self.db_url = Path(study_dir), db_url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir or self.study_dir) / f"server-{self.port}.log"
        self.proc = None

    def start(self, timeout: float = 90) -> "Server":
        import time
        import urllib.request

        from vastbench.mos.serve import ServeConfig, start

        cfg = ServeConfig(self.study_dir, self.db_url, self.port, "127.0.0.1", self.base)
        self._logf = open(self.log, "ab")
        self.proc = start(cfg, stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)  # polling a starting server, not timing a test
        self.stop()
        raise RuntimeError(f"server did not answer on {self.base} within {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_logf", None):
            self._logf.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- a protocol-level judge
class WsJudge:
    """One judge talking to the real server over Streamlit's websocket protocol,
    sending the same widget states the browser sends (no browser needed)."""

    def __init__(self, base: str, token: str):
        self.url = base.replace("http://", "ws://") + "/_stcore/stream"
        self.token = token
        self.ws = None

    async def connect(self):
        import websockets

        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=2**26, open_timeout=30)

    async def close(self):
        if self.ws is not None:
            await self.ws.close()

    async def rerun(self, widgets=()):
        """Send a rerun with ``widgets`` and return the elements of the final script run."""
        import asyncio

        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        msg.rerun_script.query_string = f"t={self.token}"
        msg.rerun_script.widget_states.widgets.extend(widgets)
        await self.ws.send(msg.SerializeToString())
        elements = []
        while True:
            m = ForwardMsg()
            m.ParseFromString(await asyncio.wait_for(self.ws.recv(), 120))
            kind = m.WhichOneof("type")
            if kind == "new_session":
                elements = []
            elif kind == "delta" and m.delta.WhichOneof("type") == "new_element":
                e = m.delta.new_element
                elements.append((e.WhichOneof("type"), e))
            elif kind == "script_finished" and m.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return elements
