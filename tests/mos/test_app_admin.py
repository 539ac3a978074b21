"""The admin page under AppTest: password gate, progress, QC, live MOS, judges, export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit", reason="the rating app needs the 'app' extra: pip install 'vastbench[app]'")

from tests.mos.conftest import ADMIN_PASSWORD, app_test, texts, tokens  # noqa: E402
from vastbench.mos import monitor  # noqa: E402
from vastbench.mos.db import Store  # noqa: E402


def _login(at, password):
    at.text_input(key="admin_password").input(password)
    return at.button[0].click().run()


@pytest.fixture
def rated(study):
    """j01 has rated every page with the same score; j02 three pages."""
    store = Store.open(study.db_url)
    sid = study.study_id
    for p in store.pages(sid, "j01"):
        store.save_page(sid, "j01", p.clip_id, {"sync": 5, "expressiveness": 5, "naturalness": 5}, 0.2)
    for p in store.pages(sid, "j02")[:3]:
        store.save_page(sid, "j02", p.clip_id, {"sync": 2, "expressiveness": 3, "naturalness": 4}, 30)
    yield study, store, sid
    store.close()


def test_admin_requires_the_password(rated, monkeypatch):
    study, store, sid = rated
    at = app_test(monkeypatch, study.study_dir, admin="1")
    page = texts(at)
    assert "Admin password" in [t.label for t in at.text_input] and not at.dataframe
    assert "ground_truth" not in page and "j01" not in page
    at = _login(at, "not the password")
    assert "Wrong password" in texts(at) and not at.dataframe and not at.tabs
    at = _login(at, ADMIN_PASSWORD)
    assert not at.exception and len(at.tabs) == 5 and len(at.dataframe) == 4
    frames = [d.value for d in at.dataframe]
    mos = next(f for f in frames if "system" in f.columns and "sync" in f.columns)
    assert set(mos["system"]) == {"ground_truth", "static", "shifted_audio"}
    qc = next(f for f in frames if "flags" in f.columns).set_index("judge")
    assert "too fast" in qc.loc["j01", "flags"] and "straight-lining" in qc.loc["j01", "flags"]
    assert "gold" in qc.loc["j01", "flags"] or qc.loc["j01", "gold_checked"] == 0
    assert "too fast" not in qc.loc["j02", "flags"]
    kinds = [e["kind"] for e in store.events(sid)]
    assert "admin_login_failed" in kinds and "admin_login" in kinds


def test_token_does_not_open_admin(rated, monkeypatch):
    study, _, _ = rated
    at = app_test(monkeypatch, study.study_dir, admin="1", t=tokens(study.study_dir)["j01"])
    assert not at.dataframe and "Admin password" in [t.label for t in at.text_input]


def test_admin_adds_revokes_and_exports(rated, monkeypatch):
    study, store, sid = rated
    monkeypatch.setenv("VASTBENCH_MOS_BASE_URL", "https://rate.example.org")
    at = _login(app_test(monkeypatch, study.study_dir, admin="1"), ADMIN_PASSWORD)
    at = at.button(key="add_judge").click().run()
    link = next(c.value for c in at.code if "?t=" in c.value)
    assert link.startswith("https://rate.example.org/?t=")
    assert store.judge_for_token(sid, link.split("?t=")[1]) == "j05"
    assert link in (Path(study.study_dir) / "private" / "links.csv").read_text()
    at = at.selectbox(key="revoke_who").select("j02").run()
    at.text_input(key="revoke_reason").input("test")
    at = at.button(key="revoke").click().run()
    assert next(j for j in store.judges(sid) if j["judge_id"] == "j02")["revoked_at"]
    at = at.button(key="export").click().run()
    assert "Exported to" in texts(at) and len(at.get("download_button")) == 4
    out = Path(at.session_state["export_paths"]["ratings_csv"])
    df = pd.read_csv(out)
    assert set(df["judge"]) == {"j01"}, "revoked judges are left out of the export"
    assert (out.parent / "key.csv").exists() and "system" not in pd.read_csv(out.parent / "ratings_blind.csv").columns


def test_monitor_views(rated):
    study, store, sid = rated
    jp = monitor.judge_progress(store, sid).set_index("judge")
    assert jp.loc["j01", "completed"] and jp.loc["j02", "rated"] == 3 and jp.loc["j03", "rated"] == 0
    sp = monitor.system_progress(store, sid)
    assert set(sp["system"]) == {"ground_truth", "static", "shifted_audio"}
    assert (sp["pages_planned"] == sp["pages_planned"].iloc[0]).all(), "balanced per system"
    live = monitor.live_mos(store.ratings_frame(sid))
    assert set(live["criterion"]) == {"sync", "expressiveness", "naturalness"} and (live["n"] > 0).all()
    wide = monitor.mos_table(live, ["sync", "expressiveness", "naturalness"])
    assert list(wide.columns) == ["system", "sync", "expressiveness", "naturalness"]
