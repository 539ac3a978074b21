"""Headless Chromium drives the real server: a judge rates three clips, reloads,
sees the fourth, finishes; the database holds exactly those ratings; the admin
page opens with the password.  Screenshots go to tests/artifacts/mos/."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from tests.mos.conftest import ADMIN_PASSWORD, ARTIFACTS, Server, make_study, tokens
from vastbench.mos.db import Store

pytestmark = pytest.mark.browser

SECRETS = ("ground_truth", "shifted_audio", "r0000", "r0001", "r0002", "r0003", "r0004", "r0005")


def _wait_text(page, text, timeout=30_000):
    page.get_by_text(text).first.wait_for(timeout=timeout)


def _rate_page(page, scores):
    groups = page.locator("div[role=radiogroup]")
    groups.first.wait_for()
    assert groups.count() == 3
    for i, v in enumerate(scores):
        groups.nth(i).locator("label").filter(has_text=re.compile(rf"^{v} ·")).click()
    page.get_by_role("button", name="Next").click()


def _video_sha(page) -> str:
    video = page.locator("video").first
    video.wait_for()
    src = video.get_attribute("src")
    assert src and re.search(r"/media/[0-9a-f]+\.mp4$", src), src
    body = page.request.get(src if src.startswith("http") else page.url.split("/?")[0] + src).body()
    return hashlib.sha256(body).hexdigest()


def _assert_blind(page, clip_ids=()):
    html = page.content()
    leaked = [w for w in (*SECRETS, *clip_ids) if w in html]
    assert not leaked, f"page HTML reveals {leaked}"


def _progress(page) -> str:
    return page.locator("[data-testid=stProgress]").first.inner_text()


def test_judge_rates_reloads_finishes(chromium, mos_run, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    res = make_study(mos_run, tmp_path / "study", judges=2, ratings_per_clip=1, clips=2, n_gold=1, n_trap=1)
    token = tokens(res.study_dir)["j01"]
    store = Store.open(res.db_url)
    pages = store.pages(res.study_id, "j01")
    given: dict[str, dict] = {}
    clip_ids = [c["clip_id"] for c in store.clips(res.study_id)]
    with Server(res.study_dir) as server:
        ctx = chromium.new_context(viewport={"width": 1000, "height": 1700})
        page = ctx.new_page()
        page.goto(f"{server.base}/?t={token}")
        _wait_text(page, "I have read the instructions, start")
        page.screenshot(path=str(ARTIFACTS / "01_instructions.png"), full_page=True)
        _assert_blind(page)
        page.get_by_role("button", name="I have read the instructions, start").click()

        def rate_current(n: int, scores, shot: str | None = None):
            _wait_text(page, f"Video {n} of {len(pages)}")
            # Streamlit updates the header before it swaps the video element, and keeps the previous
            # element on screen (stale) until the rerun finishes: the right clip must appear, soon.
            deadline = time.time() + 15
            while (sha := _video_sha(page)) != pages[n - 1].sha256 and time.time() < deadline:
                page.wait_for_timeout(200)
            assert sha == pages[n - 1].sha256, f"page {n} shows the wrong clip"
            ok = page.evaluate("""async () => { const v = document.querySelector('video');
                v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));
                return {t: v.currentTime, d: v.duration, err: v.error && v.error.code}; }""")
            assert ok["err"] is None and ok["d"] > 1.0 and ok["t"] > 0, f"the clip does not play: {ok}"
            _assert_blind(page, clip_ids)
            if shot:
                page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
            _rate_page(page, scores)
            given[pages[n - 1].clip_id] = dict(zip(("sync", "expressiveness", "naturalness"), scores))
            if pages[n - 1].kind == "training":
                _wait_text(page, "Practice video: expected answer")
                if n == 1:
                    page.screenshot(path=str(ARTIFACTS / "03_training_feedback.png"), full_page=True)
                page.get_by_role("button", name="Continue").click()

        rate_current(1, (2, 3, 4))
        rate_current(2, (5, 4, 4))
        rate_current(3, (3, 3, 3), shot="02_rating_page.png")
        _wait_text(page, f"Video 4 of {len(pages)}")
        page.reload()
        _wait_text(page, f"Video 4 of {len(pages)}")
        assert "Instructions" not in page.locator("h1").all_inner_texts()
        for n in range(4, len(pages) + 1):
            rate_current(n, (1 + n % 5, 2, 1 + (n * 2) % 5))
        _wait_text(page, "Thank you!")
        code = store.completion_code(res.study_id, "j01")
        _wait_text(page, code)
        page.screenshot(path=str(ARTIFACTS / "04_done.png"), full_page=True)

        # the database holds exactly the ratings given, once each
        raw = store.raw_ratings(res.study_id)
        got = {}
        for r in raw:
            got.setdefault(r["clip_id"], {})[r["criterion"]] = r["score"]
        assert got == given and len(raw) == 3 * len(pages)
        assert all(r["revision"] == 1 and r["judge_id"] == "j01" for r in raw)

        # a wrong link and the admin page
        bad = ctx.new_page()
        bad.goto(f"{server.base}/?t=not-a-real-token")
        _wait_text(bad, "this link is not valid")
        admin = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
        admin.goto(f"{server.base}/?admin")
        admin.get_by_label("Admin password").fill("wrong")
        admin.get_by_role("button", name="Sign in").click()
        _wait_text(admin, "Wrong password")
        assert "ground_truth" not in admin.content()
        admin.get_by_label("Admin password").fill(ADMIN_PASSWORD)
        admin.get_by_role("button", name="Sign in").click()
        _wait_text(admin, "Per judge")
        admin.wait_for_timeout(1500)  # let the data grids paint before the screenshot
        admin.screenshot(path=str(ARTIFACTS / "05_admin_progress.png"), full_page=True)
        admin.get_by_role("tab", name="Live MOS").click()
        admin.wait_for_timeout(1000)
        admin.screenshot(path=str(ARTIFACTS / "06_admin_mos.png"), full_page=True)
    store.close()
