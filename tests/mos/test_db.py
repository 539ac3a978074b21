"""Storage: the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from tests.mos.conftest import ADMIN_PASSWORD, make_study, tokens
from vastbench.errors import VastbenchError
from vastbench.mos import db as dbmod
from vastbench.mos.db import StorageError, Store, TokenError
from vastbench.mos.design import StudyDir

ALL = {"sync": 4, "expressiveness": 3, "naturalness": 5}


@pytest.fixture
def opened(mos_run, tmp_path, db_url):
    res = make_study(mos_run, tmp_path / "study", db_url)
    store = Store.open(db_url)
    yield res, store, res.study_id
    store.close()


def test_schema_and_study_loaded(opened):
    res, store, sid = opened
    assert store.schema_version() == dbmod.SCHEMA_VERSION
    assert len(store.judges(sid)) == 4 and len(store.clips(sid)) == len(StudyDir(res.study_dir).load()["clips"])
    assert store.verify_admin(sid, ADMIN_PASSWORD) and not store.verify_admin(sid, "wrong") and not store.verify_admin(sid, "")
    assert Store.open(store.url).ensure_study(StudyDir(res.study_dir)) == sid, "loading twice is a no-op"


def test_tokens(opened):
    res, store, sid = opened
    toks = tokens(res.study_dir)
    assert store.judge_for_token(sid, toks["j02"]) == "j02"
    for bad in ("", None, "j02", toks["j02"][:-1]):
        with pytest.raises(TokenError):
            store.judge_for_token(sid, bad)
    store.revoke_judge(sid, "j02", "test")
    with pytest.raises(TokenError, match="withdrawn") as exc:
        store.judge_for_token(sid, toks["j02"])
    assert exc.value.reason == "revoked"
    page = store.pages(sid, "j02")[0]
    with pytest.raises(TokenError):
        store.save_page(sid, "j02", page.clip_id, ALL, 5.0)


def test_save_upsert_never_duplicates(opened):
    _, store, sid = opened
    pages = store.pages(sid, "j01")
    assert not any(p.done for p in pages)
    p0 = pages[0]
    r1 = store.save_page(sid, "j01", p0.clip_id, ALL, 0.1, "first")
    assert r1.too_fast and r1.revision == 1
    r2 = store.save_page(sid, "j01", p0.clip_id, {**ALL, "sync": 1}, 9.0, "changed my mind")
    assert not r2.too_fast and r2.revision == 2
    raw = store.raw_ratings(sid)
    assert len(raw) == 3 and {r["criterion"]: r["score"] for r in raw}["sync"] == 1
    assert store.comments(sid)[0]["text"] == "changed my mind"
    assert store.pages(sid, "j01")[0].done and not store.pages(sid, "j01")[1].done
    kinds = [e["kind"] for e in store.events(sid)]
    assert kinds.count("rated") == 2 and "study_loaded" in kinds


def test_save_validates(opened):
    _, store, sid = opened
    mine = store.pages(sid, "j01")[0].clip_id
    with pytest.raises(VastbenchError, match="missing: naturalness"):
        store.save_page(sid, "j01", mine, {"sync": 3, "expressiveness": 3}, 3)
    with pytest.raises(VastbenchError, match="1..5"):
        store.save_page(sid, "j01", mine, {**ALL, "sync": 6}, 3)
    others = {p.clip_id for p in store.pages(sid, "j02")} - {p.clip_id for p in store.pages(sid, "j01")}
    with pytest.raises(VastbenchError, match="not one of your assignments"):
        store.save_page(sid, "j01", sorted(others)[0], ALL, 3)
    assert store.raw_ratings(sid) == []


def test_events_are_append_only(opened):
    _, store, sid = opened
    store.log_event(sid, "j01", "probe", {"x": 1})
    for sql in ("UPDATE mos_events SET kind = 'x'", "DELETE FROM mos_events"):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))
    assert any(e["kind"] == "probe" for e in store.events(sid))


def test_export_matches_schema(opened, tmp_path):
    import pandas as pd

    from vastbench.mos.export import export_study
    from vastbench.mos.schema import RATING_COLUMNS, validate_ratings

    res, store, sid = opened
    for judge in ("j01", "j02"):
        for p in store.pages(sid, judge)[:5]:
            store.save_page(sid, judge, p.clip_id, ALL, 2.0)
    paths = export_study(store, sid, tmp_path / "export")
    full = pd.read_csv(paths["ratings_csv"])
    assert list(full.columns) == list(RATING_COLUMNS) and len(full) == 30
    assert list(pd.read_parquet(paths["ratings_parquet"]).columns) == list(RATING_COLUMNS)
    blind = pd.read_csv(paths["ratings_blind_csv"])
    assert "system" not in blind.columns and len(blind) == 30
    key = pd.read_csv(paths["key_csv"])
    assert set(key.columns) == {"clip", "system", "generator", "item", "kind"}
    assert set(blind.merge(key[["clip", "system"]], on="clip")["system"]) <= {"ground_truth", "static", "shifted_audio"}
    clean, problems = validate_ratings(full)
    assert len(clean) == 30
    assert set(full["kind"]) <= {"regular", "gold", "trap", "training"}
    assert full.loc[full["kind"] == "training", "expected"].notna().any()


def test_concurrent_saves_lose_nothing(opened):
    _, store, sid = opened
    errors = []

    def judge_loop(judge):
        try:
            s = Store.open(store.url)
            for p in s.pages(sid, judge):
                s.save_page(sid, judge, p.clip_id, ALL, 3.0)
                s.save_page(sid, judge, p.clip_id, {**ALL, "sync": 2}, 3.0)  # resubmission
            s.close()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=judge_loop, args=(j,)) for j in ("j01", "j02", "j03", "j04")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    expected = sum(len(store.pages(sid, j)) for j in ("j01", "j02", "j03", "j04")) * 3
    raw = store.raw_ratings(sid)
    assert len(raw) == expected and all(r["revision"] == 2 and r["score"] in (2, 3, 5) for r in raw)


def test_add_and_revoke_judge(opened):
    _, store, sid = opened
    base = {p.clip_id for p in store.pages(sid, "j03")}
    store.revoke_judge(sid, "j03", "left")
    jid, token = store.add_judge(sid, replaces="j03")
    assert jid == "j05" and store.judge_for_token(sid, token) == "j05"
    assert {p.clip_id for p in store.pages(sid, jid)} == base
    jid2, _ = store.add_judge(sid)
    assert len(store.pages(sid, jid2)) == len(base)
    with pytest.raises(VastbenchError, match="j99"):
        store.add_judge(sid, replaces="j99")
    assert [e["kind"] for e in store.events(sid)].count("judge_added") == 2


def test_schema_version_checks(opened, monkeypatch):
    _, store, _ = opened
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE mos_meta SET value = '0' WHERE key = 'schema_version'"))
    with pytest.raises(StorageError, match="version 0 is older.*no migration"):
        Store.open(store.url)
    calls = []
    monkeypatch.setitem(dbmod.MIGRATIONS, 0, lambda conn: calls.append(conn.dialect.name))
    Store.open(store.url).close()
    assert calls and store.schema_version() == dbmod.SCHEMA_VERSION
    assert any(e["kind"] == "schema_migrated" for e in store.events("*"))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE mos_meta SET value = '99' WHERE key = 'schema_version'"))
    with pytest.raises(StorageError, match="newer than this vastbench"):
        Store.open(store.url)


def test_unreachable_database_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="cannot reach database postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:9"):
        Store.open("postgresql+psycopg://u:secret@127.0.0.1:9/x", lock_timeout_s=2)
    with pytest.raises(StorageError, match="cannot use database URL"):
        Store.open("nosuchdialect://x")
    with pytest.raises(StorageError, match="cannot reach"):
        Store.open(f"sqlite:///{tmp_path}/no/such/dir/r.db")


def test_locked_sqlite_fails_cleanly_and_keeps_nothing_half(mos_run, tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = make_study(mos_run, tmp_path / "s", url)
    store = Store.open(url, lock_timeout_s=0.05)
    page = store.pages(res.study_id, "j01")[0]
    locker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked or unreachable.*nothing was lost"):
            store.save_page(res.study_id, "j01", page.clip_id, ALL, 3)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert store.raw_ratings(res.study_id) == []
    store.save_page(res.study_id, "j01", page.clip_id, ALL, 3)  # the same page saves once the lock is gone
    assert len(store.raw_ratings(res.study_id)) == 3
    store.close()


def test_foreign_database_refused(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE mos_ratings (x int)")
    con.close()
    with pytest.raises(StorageError, match="not made by vastbench"):
        Store.open(f"sqlite:///{path}")
