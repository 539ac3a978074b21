"""The judge's page under Streamlit's AppTest: instructions, required scales,
resume, time on page, training feedback, completion, bad links and bad files."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("streamlit", reason="the rating app needs the 'app' extra: pip install 'vastbench[app]'")

from tests.mos.conftest import app_test, make_study, rate, texts, tokens  # noqa: E402
from vastbench.mos.db import StorageError, Store  # noqa: E402
from vastbench.mos.design import StudyDir  # noqa: E402

SYSTEM_WORDS = ("ground_truth", "shifted_audio", "static", "r0000", "r0001", "generator")


@pytest.fixture
def judge(study, monkeypatch):
    toks = tokens(study.study_dir)
    store = Store.open(study.db_url)
    yield study, toks, store
    store.close()


def _start(monkeypatch, study, token):
    at = app_test(monkeypatch, study.study_dir, t=token)
    if at.button and at.button[0].key == "start":
        at = at.button(key="start").click().run()
    return at


def test_instructions_then_all_scales_required(judge, monkeypatch):
    study, toks, store = judge
    at = app_test(monkeypatch, study.study_dir, t=toks["j01"])
    assert not at.exception
    page = texts(at)
    assert "Instructions" in page and "sound on" in page
    for phrase in ("Speech-lip sync", "Expressiveness & richness", "Overall naturalness",
                   "totally unreasonable", "monotonous", "blurred"):
        assert phrase in page
    assert not at.radio, "no rating before the instructions are accepted"
    at = at.button(key="start").click().run()
    assert len(at.radio) == 3 and all(r.value is None for r in at.radio), "no scale is preselected"
    assert len(at.get("video")) == 1
    at = rate(at, (None, None, None))
    assert "answer all three questions" in texts(at)
    at = rate(at, (2, 3, None))
    assert "missing: Overall naturalness" in texts(at)
    assert store.raw_ratings(study.study_id) == []
    at = rate(at, (None, None, 4), comment="lips lag")
    raw = store.raw_ratings(study.study_id)
    assert sorted((r["criterion"], r["score"]) for r in raw) == [("expressiveness", 3), ("naturalness", 4), ("sync", 2)]
    assert store.comments(study.study_id)[0]["text"] == "lips lag"
    # the first page is a training clip: the expected answer is shown, then Continue
    assert "expected" in texts(at) and at.button(key="continue_0")
    at = at.button(key="continue_0").click().run()
    assert "Video 2 of" in at.get("progress")[0].proto.text


def test_reload_resumes_exactly(judge, monkeypatch):
    study, toks, store = judge
    at = _start(monkeypatch, study, toks["j02"])
    for _ in range(3):
        at = rate(at)
        if at.button and at.button[0].key and at.button[0].key.startswith("continue"):
            at = at.button[0].click().run()
    pages = store.pages(study.study_id, "j02")
    assert [p.done for p in pages[:4]] == [True, True, True, False]
    again = app_test(monkeypatch, study.study_dir, t=toks["j02"])  # a reload / another device
    assert "Instructions" not in [t.value for t in again.title], "instructions are not repeated"
    assert "Video 4 of" in again.get("progress")[0].proto.text
    again = rate(again, (1, 1, 1))
    saved = {r["clip_id"] for r in store.raw_ratings(study.study_id) if r["score"] == 1}
    assert saved == {pages[3].clip_id}, "the fourth clip was the one shown after the reload"


def test_time_on_page_and_too_fast_flag(judge, monkeypatch):
    study, toks, store = judge
    at = _start(monkeypatch, study, toks["j03"])
    at = rate(at)  # answered at once: faster than the clip lasts
    raw = store.raw_ratings(study.study_id)
    assert all(r["too_fast"] for r in raw) and all(r["time_on_page_s"] < 1.2 for r in raw)
    at = at.button[0].click().run()  # continue after the training feedback
    pos = store.pages(study.study_id, "j03")[1].position
    at.session_state[f"shown_{pos}"] = time.time() - 30  # the judge watched for 30 s
    at = rate(at)
    second = [r for r in store.raw_ratings(study.study_id) if r["clip_id"] == store.pages(study.study_id, "j03")[1].clip_id]
    assert second and not any(r["too_fast"] for r in second) and all(r["time_on_page_s"] >= 30 for r in second)


def test_completion_code_at_the_end(mos_run, tmp_path, monkeypatch):
    res = make_study(mos_run, tmp_path / "s", judges=2, ratings_per_clip=1, clips=2, n_gold=1, n_trap=1,
                     systems=["static", "ground_truth"])
    token = tokens(res.study_dir)["j01"]
    store = Store.open(res.db_url)
    n = len(store.pages(res.study_id, "j01"))
    at = _start(monkeypatch, res, token)
    for _ in range(n):
        at = rate(at)
        if at.button and (at.button[0].key or "").startswith("continue"):
            at = at.button[0].click().run()
    assert "Thank you" in texts(at)
    code = store.completion_code(res.study_id, "j01")
    assert code in texts(at) and code.startswith("VB-")
    assert len(store.raw_ratings(res.study_id)) == 3 * n
    assert sum(e["kind"] == "completed" for e in store.events(res.study_id)) == 1
    store.close()


@pytest.mark.parametrize("token,message", [("not-a-token", "not valid"), (None, "open the personal link")])
def test_wrong_or_missing_token(study, monkeypatch, token, message):
    at = app_test(monkeypatch, study.study_dir, **({"t": token} if token else {}))
    assert message in texts(at) and not at.radio and not at.get("video")


def test_revoked_token(judge, monkeypatch):
    study, toks, store = judge
    at = _start(monkeypatch, study, toks["j04"])
    store.revoke_judge(study.study_id, "j04", "duplicate account")
    at = rate(at)  # the page was open when the link was withdrawn: nothing is saved
    assert "withdrawn" in texts(at)
    assert store.raw_ratings(study.study_id) == []
    again = app_test(monkeypatch, study.study_dir, t=toks["j04"])
    assert "withdrawn" in texts(again) and not again.radio


def test_page_shows_no_system_or_item(judge, monkeypatch):
    study, toks, _ = judge
    at = _start(monkeypatch, study, toks["j01"])
    for _ in range(4):
        page = texts(at).lower()
        assert not any(w in page for w in SYSTEM_WORDS), page
        assert all(not (w.key or "").startswith(tuple("0123456789abcdef")) or len(w.key) < 20 for w in at.radio)
        at = rate(at)
        if at.button and (at.button[0].key or "").startswith("continue"):
            at = at.button[0].click().run()


def test_missing_and_corrupt_clip_message(judge, monkeypatch):
    study, toks, store = judge
    sd = StudyDir(study.study_dir)
    first = store.pages(study.study_id, "j01")[0]
    path = sd.clip_path(first.file)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    at = _start(monkeypatch, study, toks["j01"])
    assert "cannot be played" in texts(at) and "damaged" in texts(at) and not at.radio
    path.unlink()
    at = app_test(monkeypatch, study.study_dir, t=toks["j01"])  # a reload
    assert "cannot be played" in texts(at) and "missing" in texts(at)
    assert any(e["kind"] == "clip_unavailable" for e in store.events(study.study_id))
    path.write_bytes(data)  # restored: the judge goes on
    at = app_test(monkeypatch, study.study_dir, t=toks["j01"])
    assert len(at.radio) == 3


def test_unsaved_answers_stay_when_the_database_fails(judge, monkeypatch):
    study, toks, store = judge
    at = _start(monkeypatch, study, toks["j01"])

    def down(*a, **k):
        raise StorageError("could not save the rating: database is locked or unreachable")

    monkeypatch.setattr(Store, "save_page", down)
    at = rate(at, (5, 4, 3))
    assert "could not be saved" in texts(at)
    assert [r.value for r in at.radio] == [5, 4, 3], "the answers are still on the page"
    monkeypatch.undo()
    monkeypatch.setenv("VASTBENCH_MOS_STUDY", str(study.study_dir))
    at = at.button(key="next").click().run()
    assert sorted(r["score"] for r in store.raw_ratings(study.study_id)) == [3, 4, 5]
