"""The MOS database: SQLAlchemy 2.x Core over SQLite (WAL, the default) or any URL.

Tables (prefixed ``mos_`` so a shared PostgreSQL database can hold them next to
others; one database may hold several studies):

* ``mos_meta``         key/value; ``schema_version``
* ``mos_studies``      id, title, options, admin password hash (scrypt)
* ``mos_judges``       anonymous id, SHA-256 of the token, order seed, completion code, revoked_at
* ``mos_clips``        anonymous id, file name, system/generator/item (never sent to a judge), kind,
                       expected rules, duration, sha256
* ``mos_assignments``  judge x position -> clip (unique judge x clip)
* ``mos_ratings``      unique judge x clip x criterion; a resubmission updates the row and counts
                       the revision, never adds one
* ``mos_comments``     optional free text per judge x clip
* ``mos_events``       append-only log (SQLite and PostgreSQL triggers refuse UPDATE and DELETE)

Every page save is one transaction (ratings + comment + event).  SQLite runs in
WAL mode with ``synchronous=FULL`` and write transactions start with ``BEGIN
IMMEDIATE``, so concurrent judges wait for each other instead of failing;
a write that still meets a locked or unreachable database is retried, then
raises :class:`StorageError` (a :class:`VastbenchError`) and nothing is lost on
the page: the judge's answers stay in the form.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sqlalchemy import (
    Boolean, CheckConstraint, Column, Float, ForeignKeyConstraint, Integer, MetaData, String, Table, Text,
    UniqueConstraint, create_engine, event, func, inspect, select, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from vastbench.errors import VastbenchError
from vastbench.mos import security
from vastbench.rundir import now_iso

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: from_version -> function(conn) bringing the schema to from_version + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}

metadata = MetaData()

meta_t = Table("mos_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

studies_t = Table(
    "mos_studies", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("admin_hash", Text, nullable=False),
    Column("criteria", Text, nullable=False),   # JSON list
    Column("options", Text, nullable=False),    # JSON
)

judges_t = Table(
    "mos_judges", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("judge_id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("completion_code", String(32), nullable=False),
    Column("seed", String(40), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
    Column("revoked_reason", Text),
    ForeignKeyConstraint(["study_id"], ["mos_studies.study_id"]),
)

clips_t = Table(
    "mos_clips", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("clip_id", String(32), primary_key=True),
    Column("file", String(64), nullable=False),
    Column("system", String(128), nullable=False),
    Column("generator", String(128), nullable=False),
    Column("item", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("expected", Text, nullable=False),   # JSON {criterion: rule}
    Column("instruction", Text),
    Column("feedback", Text),
    Column("duration_s", Float, nullable=False),
    Column("sha256", String(64), nullable=False),
    ForeignKeyConstraint(["study_id"], ["mos_studies.study_id"]),
    CheckConstraint("kind IN ('regular', 'gold', 'trap', 'training')", name="mos_clips_kind"),
)

assignments_t = Table(
    "mos_assignments", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("judge_id", String(32), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("clip_id", String(32), nullable=False),
    UniqueConstraint("study_id", "judge_id", "clip_id", name="mos_assignments_once"),
    ForeignKeyConstraint(["study_id", "judge_id"], ["mos_judges.study_id", "mos_judges.judge_id"]),
    ForeignKeyConstraint(["study_id", "clip_id"], ["mos_clips.study_id", "mos_clips.clip_id"]),
)

ratings_t = Table(
    "mos_ratings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(64), nullable=False),
    Column("judge_id", String(32), nullable=False),
    Column("clip_id", String(32), nullable=False),
    Column("criterion", String(32), nullable=False),
    Column("score", Integer, nullable=False),
    Column("time_on_page_s", Float),
    Column("too_fast", Boolean, nullable=False, default=False),
    Column("revision", Integer, nullable=False, default=1),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    UniqueConstraint("study_id", "judge_id", "clip_id", "criterion", name="mos_ratings_once"),
    CheckConstraint("score BETWEEN 1 AND 5", name="mos_ratings_score"),
    ForeignKeyConstraint(["study_id", "judge_id", "clip_id"],
                         ["mos_assignments.study_id", "mos_assignments.judge_id", "mos_assignments.clip_id"]),
)

comments_t = Table(
    "mos_comments", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("judge_id", String(32), primary_key=True),
    Column("clip_id", String(32), primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

events_t = Table(
    "mos_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(64), nullable=False),
    Column("judge_id", String(32)),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

_APPEND_ONLY_DDL = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS mos_events_no_update BEFORE UPDATE ON mos_events "
        "BEGIN SELECT RAISE(ABORT, 'mos_events is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS mos_events_no_delete BEFORE DELETE ON mos_events "
        "BEGIN SELECT RAISE(ABORT, 'mos_events is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION mos_events_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'mos_events is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS mos_events_no_change ON mos_events",
        "CREATE TRIGGER mos_events_no_change BEFORE UPDATE OR DELETE ON mos_events "
        "FOR EACH ROW EXECUTE FUNCTION mos_events_append_only()",
    ],
}


class StorageError(VastbenchError):
    """The database is locked, unreachable, or refuses the schema."""


class TokenError(VastbenchError):
    """A judge link that is unknown or has been revoked."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # "invalid" | "revoked"


@dataclass(frozen=True)
class Page:
    """One page of a judge's sequence.  Carries no system and no item."""

    position: int
    clip_id: str
    file: str
    kind: str
    expected: dict
    instruction: str | None
    feedback: str | None
    duration_s: float
    sha256: str
    done: bool


@dataclass(frozen=True)
class SaveResult:
    too_fast: bool
    revision: int
    time_on_page_s: float


def _short(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", None) or exc)
    return " ".join(msg.split())[:200]


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    msg = _short(exc).lower()
    return isinstance(exc, OperationalError) and any(
        w in msg for w in ("locked", "busy", "could not connect", "connection", "terminating", "server closed",
                           "shutting down", "starting up", "recovery mode"))


# --------------------------------------------------------------------------- engine
def make_engine(url: str, lock_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite waits up to ``lock_timeout_s`` for a lock."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": lock_timeout_s, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                           f"busy_timeout={int(lock_timeout_s * 1000)}"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # writers take the lock up front: no deadlock-prone read->write upgrade
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args={"connect_timeout": max(1, int(lock_timeout_s))} if "postgresql" in url else {})


class Store:
    """All database access of the rating app and the admin tools."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, url: str, create: bool = True, lock_timeout_s: float = 30.0) -> "Store":
        """Connect, create the schema in an empty database, migrate an older one
        or refuse it with the reason."""
        try:
            engine = make_engine(url, lock_timeout_s)
        except Exception as exc:  # bad URL, missing driver
            raise StorageError(f"cannot use database URL {security.mask_url(url)}: {_short(exc)}; "
                               "give a SQLAlchemy URL such as sqlite:///ratings.db or postgresql+psycopg://...") from None
        store = cls(engine, url)
        try:
            store._check_schema(create)
        except (OperationalError, DBAPIError) as exc:
            engine.dispose()
            raise StorageError(f"cannot reach database {security.mask_url(url)} ({_short(exc)}); "
                               "start the database server or fix --db") from None
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write_conn(self):
        return self.engine.connect().execution_options(write=True)

    def _check_schema(self, create: bool) -> None:
        insp = inspect(self.engine)
        names = set(insp.get_table_names())
        if "mos_meta" not in names:
            ours = sorted(n for n in names if n.startswith("mos_"))
            if ours:
                raise StorageError(f"database {security.mask_url(self.url)} has tables {', '.join(ours)} but no "
                                   "schema version; it was not made by vastbench, use another database")
            if not create:
                raise StorageError(f"database {security.mask_url(self.url)} holds no MOS study; "
                                   "create one with `vastbench mos create`")
            with self._write_conn() as conn, conn.begin():
                metadata.create_all(conn)
                for ddl in _APPEND_ONLY_DDL.get(conn.dialect.name, []):
                    conn.exec_driver_sql(ddl)
                conn.execute(meta_t.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        with self.engine.connect() as conn:
            row = conn.execute(select(meta_t.c.value).where(meta_t.c.key == "schema_version")).first()
        version = int(row[0]) if row else 0
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StorageError(f"database schema version {version} is newer than this vastbench supports "
                               f"({SCHEMA_VERSION}); upgrade vastbench")
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise StorageError(f"database schema version {version} is older than {SCHEMA_VERSION} and no "
                                   "migration exists; export its ratings with the vastbench that made it and "
                                   "create a new study")
            with self._write_conn() as conn, conn.begin():
                step(conn)
                conn.execute(update(meta_t).where(meta_t.c.key == "schema_version").values(value=str(version + 1)))
                conn.execute(events_t.insert().values(study_id="*", judge_id=None, kind="schema_migrated",
                                                      detail=json.dumps({"from": version, "to": version + 1}),
                                                      created_at=now_iso()))
            log.info("migrated MOS database schema %d -> %d", version, version + 1)
            version += 1

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar_one())

    # ------------------------------------------------------------------ retries
    def _retry(self, fn: Callable[[], Any], what: str, attempts: int = 4) -> Any:
        delay = 0.05
        for i in range(attempts):
            try:
                return fn()
            except (OperationalError, DBAPIError) as exc:
                if not _is_transient(exc) or i == attempts - 1:
                    raise StorageError(f"could not {what}: database {security.mask_url(self.url)} is locked or "
                                       f"unreachable ({_short(exc)}); nothing was lost, try again") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------ study
    def ensure_study(self, sd) -> str:
        """Load a study directory into the database (once; later calls check it)."""
        study = sd.load()
        sid = study["study_id"]
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(clips_t).where(clips_t.c.study_id == sid)).scalar_one()
        if n:
            if n != len(study["clips"]):
                raise StorageError(f"database {security.mask_url(self.url)} holds study {sid} with {n} clips but "
                                   f"{sd.study_json} lists {len(study['clips'])}; use the database made for this study")
            return sid
        key = sd.load_key()
        missing = [c["clip_id"] for c in study["clips"] if c["clip_id"] not in key]
        if missing:
            raise VastbenchError(f"{sd.key_path}: no entry for clip(s) {', '.join(missing[:3])}; the key does not "
                                 "belong to this study")
        now = now_iso()

        def load(conn: Connection) -> None:
            conn.execute(studies_t.insert().values(
                study_id=sid, title=study["title"], created_at=study["created_at"], admin_hash=study["admin_hash"],
                criteria=json.dumps(study["criteria"]), options=json.dumps(study["options"], sort_keys=True)))
            conn.execute(clips_t.insert(), [{
                "study_id": sid, "clip_id": c["clip_id"], "file": c["file"], "system": key[c["clip_id"]]["system"],
                "generator": key[c["clip_id"]]["generator"], "item": key[c["clip_id"]]["item"], "kind": c["kind"],
                "expected": json.dumps(c.get("expected") or {}, sort_keys=True), "instruction": c.get("instruction"),
                "feedback": c.get("feedback"), "duration_s": float(c["duration_s"]), "sha256": c["sha256"],
            } for c in study["clips"]])
            conn.execute(judges_t.insert(), [{
                "study_id": sid, "judge_id": j["judge_id"], "token_hash": j["token_sha256"],
                "completion_code": j["completion_code"], "seed": str(j["seed"]), "created_at": now,
            } for j in study["judges"]])
            conn.execute(assignments_t.insert(), [
                {"study_id": sid, "judge_id": j["judge_id"], "position": p, "clip_id": cid}
                for j in study["judges"] for p, cid in enumerate(j["sequence"])])
            self._event(conn, sid, None, "study_loaded", {"judges": len(study["judges"]), "clips": len(study["clips"])})

        def run() -> None:
            with self._write_conn() as conn, conn.begin():
                load(conn)

        self._retry(run, f"load study {sid}")
        return sid

    def study(self, study_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(studies_t).where(studies_t.c.study_id == study_id)).mappings().first()
        if row is None:
            raise StorageError(f"study {study_id} is not in database {security.mask_url(self.url)}; "
                               "serve it with the database it was created with, or pass --db")
        out = dict(row)
        out["criteria"] = json.loads(out["criteria"])
        out["options"] = json.loads(out["options"])
        return out

    def verify_admin(self, study_id: str, password: str) -> bool:
        return security.verify_password(password, self.study(study_id)["admin_hash"])

    # ------------------------------------------------------------------ judges
    def judge_for_token(self, study_id: str, token: str | None) -> str:
        """The judge id of a link's token; :class:`TokenError` when unknown or revoked."""
        if not token or not str(token).strip():
            raise TokenError("no judge link given; open the personal link you were sent", "missing")
        with self.engine.connect() as conn:
            row = conn.execute(select(judges_t.c.judge_id, judges_t.c.revoked_at).where(
                judges_t.c.study_id == study_id, judges_t.c.token_hash == security.hash_token(str(token)))).first()
        if row is None:
            raise TokenError("this link is not valid; check that you opened the whole link, "
                             "or ask the study organiser for a new one", "invalid")
        if row.revoked_at:
            raise TokenError("this link has been withdrawn by the study organiser; "
                             "contact them if you think this is a mistake", "revoked")
        return str(row.judge_id)

    def pages(self, study_id: str, judge_id: str) -> list[Page]:
        """The judge's sequence in order, each page marked done when every criterion is rated."""
        n_crit = len(self.study(study_id)["criteria"])
        with self.engine.connect() as conn:
            rated = dict(conn.execute(
                select(ratings_t.c.clip_id, func.count()).where(
                    ratings_t.c.study_id == study_id, ratings_t.c.judge_id == judge_id).group_by(ratings_t.c.clip_id)
            ).all())
            rows = conn.execute(
                select(assignments_t.c.position, clips_t.c.clip_id, clips_t.c.file, clips_t.c.kind,
                       clips_t.c.expected, clips_t.c.instruction, clips_t.c.feedback, clips_t.c.duration_s,
                       clips_t.c.sha256)
                .join(clips_t, (clips_t.c.study_id == assignments_t.c.study_id)
                      & (clips_t.c.clip_id == assignments_t.c.clip_id))
                .where(assignments_t.c.study_id == study_id, assignments_t.c.judge_id == judge_id)
                .order_by(assignments_t.c.position)).all()
        return [Page(r.position, r.clip_id, r.file, r.kind, json.loads(r.expected), r.instruction, r.feedback,
                     float(r.duration_s), r.sha256, rated.get(r.clip_id, 0) >= n_crit) for r in rows]

    def completion_code(self, study_id: str, judge_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(judges_t.c.completion_code).where(
                judges_t.c.study_id == study_id, judges_t.c.judge_id == judge_id)).scalar_one()

    def saved_scores(self, study_id: str, judge_id: str, clip_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r.criterion: int(r.score) for r in conn.execute(select(ratings_t.c.criterion, ratings_t.c.score).where(
                ratings_t.c.study_id == study_id, ratings_t.c.judge_id == judge_id, ratings_t.c.clip_id == clip_id))}

    # ------------------------------------------------------------------ saving
    def save_page(self, study_id: str, judge_id: str, clip_id: str, scores: dict[str, int],
                  time_on_page_s: float, comment: str | None = None) -> SaveResult:
        """Save one page's ratings (all criteria) at once; a resubmission updates."""
        criteria = self.study(study_id)["criteria"]
        missing = [c for c in criteria if scores.get(c) is None]
        if missing:
            raise VastbenchError(f"answer every question before going on (missing: {', '.join(missing)})")
        extra = sorted(set(scores) - set(criteria))
        if extra:
            raise VastbenchError(f"unknown criteria {', '.join(extra)}; the study rates {', '.join(criteria)}")
        clean = {}
        for c in criteria:
            v = scores[c]
            if isinstance(v, bool) or int(v) != v or not 1 <= int(v) <= 5:
                raise VastbenchError(f"score for {c} must be a whole number 1..5 (got {v!r})")
            clean[c] = int(v)
        t = max(0.0, float(time_on_page_s))

        def run() -> SaveResult:
            with self._write_conn() as conn, conn.begin():
                j = conn.execute(select(judges_t.c.revoked_at).where(
                    judges_t.c.study_id == study_id, judges_t.c.judge_id == judge_id)).first()
                if j is None or j.revoked_at:
                    raise TokenError("this link has been withdrawn by the study organiser; your rating was not "
                                     "saved", "revoked")
                clip = conn.execute(
                    select(clips_t.c.duration_s, assignments_t.c.position)
                    .join(clips_t, (clips_t.c.study_id == assignments_t.c.study_id)
                          & (clips_t.c.clip_id == assignments_t.c.clip_id))
                    .where(assignments_t.c.study_id == study_id, assignments_t.c.judge_id == judge_id,
                           assignments_t.c.clip_id == clip_id)).first()
                if clip is None:
                    raise VastbenchError("this clip is not one of your assignments; reload your link")
                too_fast = t < float(clip.duration_s)
                now = now_iso()
                rows = [{"study_id": study_id, "judge_id": judge_id, "clip_id": clip_id, "criterion": c,
                         "score": s, "time_on_page_s": t, "too_fast": too_fast, "revision": 1,
                         "created_at": now, "updated_at": now} for c, s in clean.items()]
                revision = _upsert_ratings(conn, rows)
                if comment is not None and comment.strip():
                    _upsert_comment(conn, {"study_id": study_id, "judge_id": judge_id, "clip_id": clip_id,
                                           "text": comment.strip()[:4000], "updated_at": now})
                self._event(conn, study_id, judge_id, "rated", {
                    "clip": clip_id, "position": int(clip.position), "scores": clean,
                    "time_on_page_s": round(t, 3), "too_fast": too_fast, "revision": revision})
                return SaveResult(too_fast, revision, t)

        return self._retry(run, "save the rating")

    # ------------------------------------------------------------------ events
    @staticmethod
    def _event(conn: Connection, study_id: str, judge_id: str | None, kind: str, detail: dict) -> None:
        conn.execute(events_t.insert().values(study_id=study_id, judge_id=judge_id, kind=kind,
                                              detail=json.dumps(detail, sort_keys=True), created_at=now_iso()))

    def log_event(self, study_id: str, judge_id: str | None, kind: str, detail: dict | None = None) -> None:
        def run() -> None:
            with self._write_conn() as conn, conn.begin():
                self._event(conn, study_id, judge_id, kind, detail or {})

        self._retry(run, f"record event {kind}")

    def has_event(self, study_id: str, judge_id: str, kind: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(events_t.c.id).where(
                events_t.c.study_id == study_id, events_t.c.judge_id == judge_id, events_t.c.kind == kind
            ).limit(1)).first() is not None

    def events(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events_t).where(events_t.c.study_id.in_([study_id, "*"]))
                                .order_by(events_t.c.id)).mappings().all()
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # ------------------------------------------------------------------ admin
    def judges(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(judges_t.c.judge_id, judges_t.c.revoked_at, judges_t.c.created_at,
                                       judges_t.c.completion_code)
                                .where(judges_t.c.study_id == study_id).order_by(judges_t.c.judge_id)).mappings().all()
        return [dict(r) for r in rows]

    def clips(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(clips_t).where(clips_t.c.study_id == study_id)).mappings().all()
        return [{**dict(r), "expected": json.loads(r["expected"])} for r in rows]

    def assignments(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(assignments_t.c.judge_id, assignments_t.c.position, assignments_t.c.clip_id)
                                .where(assignments_t.c.study_id == study_id)
                                .order_by(assignments_t.c.judge_id, assignments_t.c.position)).mappings().all()
        return [dict(r) for r in rows]

    def raw_ratings(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ratings_t).where(ratings_t.c.study_id == study_id)
                                .order_by(ratings_t.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def comments(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(comments_t).where(comments_t.c.study_id == study_id)).mappings().all()
        return [dict(r) for r in rows]

    def ratings_frame(self, study_id: str, include_revoked: bool = False, blind: bool = False):
        """Ratings in the export schema (``RATING_COLUMNS``); ``blind`` drops ``system``."""
        import pandas as pd

        from vastbench.mos.export import rating_columns

        with self.engine.connect() as conn:
            q = (select(ratings_t.c.judge_id, ratings_t.c.clip_id, ratings_t.c.criterion, ratings_t.c.score,
                        ratings_t.c.time_on_page_s, ratings_t.c.updated_at, clips_t.c.system, clips_t.c.item,
                        clips_t.c.kind, clips_t.c.expected, clips_t.c.duration_s, judges_t.c.revoked_at)
                 .join(clips_t, (clips_t.c.study_id == ratings_t.c.study_id) & (clips_t.c.clip_id == ratings_t.c.clip_id))
                 .join(judges_t, (judges_t.c.study_id == ratings_t.c.study_id)
                       & (judges_t.c.judge_id == ratings_t.c.judge_id))
                 .where(ratings_t.c.study_id == study_id)
                 .order_by(ratings_t.c.judge_id, ratings_t.c.id))
            rows = conn.execute(q).all()
        out = [{
            "study": study_id, "judge": r.judge_id, "clip": r.clip_id, "system": r.system, "item": r.item,
            "criterion": r.criterion, "score": int(r.score), "kind": r.kind,
            "expected": json.loads(r.expected).get(r.criterion), "time_on_page_s": r.time_on_page_s,
            "clip_duration_s": float(r.duration_s), "simulated": False, "created_at": r.updated_at,
        } for r in rows if include_revoked or not r.revoked_at]
        cols = [c for c in rating_columns() if not (blind and c == "system")]
        df = pd.DataFrame(out, columns=rating_columns())
        return df[cols]

    def add_judge(self, study_id: str, replaces: str | None = None, seed: int | None = None) -> tuple[str, str]:
        """A new judge with a fresh token.  ``replaces``: take that judge's clips
        (use after revoking them); otherwise the existing judge sequence whose
        clips have the fewest active assignments.  Returns ``(judge_id, token)``."""
        from vastbench.mos.design import order_without_repeats

        judges = self.judges(study_id)
        clips = {c["clip_id"]: c for c in self.clips(study_id)}
        assign = self.assignments(study_id)
        seqs: dict[str, list[str]] = {}
        for a in assign:
            seqs.setdefault(a["judge_id"], []).append(a["clip_id"])
        active = {j["judge_id"] for j in judges if not j["revoked_at"]}
        if replaces is not None:
            if replaces not in seqs:
                raise VastbenchError(f"judge {replaces} is not in study {study_id} "
                                     f"(has {', '.join(sorted(seqs)) or 'none'})")
            base = seqs[replaces]
        else:
            if not seqs:
                raise VastbenchError(f"study {study_id} has no judges to model a new one on")
            load: dict[str, int] = {}
            for a in assign:
                if a["judge_id"] in active:
                    load[a["clip_id"]] = load.get(a["clip_id"], 0) + 1
            base = min(seqs.values(), key=lambda s: (sum(load.get(c, 0) for c in s), s[0]))
        seed = int(seed if seed is not None else np.random.SeedSequence().entropy % (2**63))
        rng = np.random.default_rng(seed)
        head = [c for c in base if clips[c]["kind"] == "training"]
        body = order_without_repeats([(c, clips[c]["item"]) for c in base if clips[c]["kind"] != "training"], rng,
                                     previous=clips[head[-1]]["item"] if head else None)
        sequence = head + [c for c, _ in body]
        token = security.new_token()
        taken = {j["judge_id"] for j in judges}
        n = len(judges) + 1
        while f"j{n:02d}" in taken:
            n += 1
        judge_id = f"j{n:02d}"

        def run() -> None:
            with self._write_conn() as conn, conn.begin():
                conn.execute(judges_t.insert().values(
                    study_id=study_id, judge_id=judge_id, token_hash=security.hash_token(token),
                    completion_code=security.new_completion_code(), seed=str(seed), created_at=now_iso()))
                conn.execute(assignments_t.insert(), [{"study_id": study_id, "judge_id": judge_id, "position": p,
                                                       "clip_id": c} for p, c in enumerate(sequence)])
                self._event(conn, study_id, None, "judge_added",
                            {"judge": judge_id, "replaces": replaces, "pages": len(sequence), "seed": seed})

        self._retry(run, "add a judge")
        return judge_id, token

    def revoke_judge(self, study_id: str, judge_id: str, reason: str = "") -> None:
        def run() -> None:
            with self._write_conn() as conn, conn.begin():
                res = conn.execute(update(judges_t).where(judges_t.c.study_id == study_id,
                                                          judges_t.c.judge_id == judge_id)
                                   .values(revoked_at=now_iso(), revoked_reason=reason or None))
                if res.rowcount == 0:
                    raise VastbenchError(f"judge {judge_id} is not in study {study_id}")
                self._event(conn, study_id, None, "judge_revoked", {"judge": judge_id, "reason": reason})

        self._retry(run, f"revoke judge {judge_id}")


# --------------------------------------------------------------------------- upserts
def _upsert_ratings(conn: Connection, rows: list[dict]) -> int:
    """Insert or update the rows (unique judge x clip x criterion); returns the revision."""
    keys = ("study_id", "judge_id", "clip_id", "criterion")
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(ratings_t).values(rows)
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={
            "score": stmt.excluded.score, "time_on_page_s": stmt.excluded.time_on_page_s,
            "too_fast": stmt.excluded.too_fast, "updated_at": stmt.excluded.updated_at,
            "revision": ratings_t.c.revision + 1,
        })
        conn.execute(stmt)
    else:  # any other SQLAlchemy backend: update, else insert
        for row in rows:
            where = [ratings_t.c[k] == row[k] for k in keys]
            res = conn.execute(update(ratings_t).where(*where).values(
                score=row["score"], time_on_page_s=row["time_on_page_s"], too_fast=row["too_fast"],
                updated_at=row["updated_at"], revision=ratings_t.c.revision + 1))
            if res.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(ratings_t.insert().values(row))
                except IntegrityError:
                    conn.execute(update(ratings_t).where(*where).values(score=row["score"],
                                                                        revision=ratings_t.c.revision + 1))
    r = rows[0]
    return int(conn.execute(select(func.max(ratings_t.c.revision)).where(
        *[ratings_t.c[k] == r[k] for k in keys[:3]])).scalar_one())


def _upsert_comment(conn: Connection, row: dict) -> None:
    where = [comments_t.c[k] == row[k] for k in ("study_id", "judge_id", "clip_id")]
    res = conn.execute(update(comments_t).where(*where).values(text=row["text"], updated_at=row["updated_at"]))
    if res.rowcount == 0:
        conn.execute(comments_t.insert().values(row))


def sqlite_path(url: str) -> str | None:
    return url.split(":///", 1)[1] if url.startswith("sqlite:///") else None


__all__ = ["Store", "StorageError", "TokenError", "Page", "SaveResult", "SCHEMA_VERSION", "MIGRATIONS",
           "make_engine", "metadata"]
