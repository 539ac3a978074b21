"""Load: 15 judges x 40 pages saved concurrently through the storage layer the
page uses, with the serving process killed mid-way and restarted.  Prints
p50/p95 save latency; asserts zero lost and zero duplicated ratings.

The "server" is a subprocess holding one Store shared by 15 judge threads (as
Streamlit sessions share it); each judge does what the page does: read its
pages, take the first one without a complete rating, save it.  The first
process kills itself (os._exit, mid-flight for the other threads) after a
fixed number of saves; the second resumes every judge from the database and,
like a browser retrying, re-submits each judge's last saved page first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.mos.conftest import make_study
from vastbench.mos.db import Store

N_JUDGES, N_PAGES = 15, 40
WORKER = textwrap.dedent('''
    import json, os, sys, threading, time
    from vastbench.mos.db import Store
    study_id, url, out, crash_after, judges = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
    store = Store.open(url)
    lat, lock, count = [], threading.Lock(), [0]
    def scores(judge, pos):
        h = (int(judge[1:]) * 31 + pos * 7)
        return {"sync": 1 + h % 5, "expressiveness": 1 + (h // 5) % 5, "naturalness": 1 + (h // 25) % 5}
    def run(judge):
        pages = store.pages(study_id, judge)
        done = [p for p in pages if p.done]
        if done and crash_after < 0:  # a retried submission after the restart: must update, not duplicate
            store.save_page(study_id, judge, done[-1].clip_id, scores(judge, done[-1].position), 5.0)
        for p in pages:
            if p.done:
                continue
            t = time.perf_counter()
            store.save_page(study_id, judge, p.clip_id, scores(judge, p.position), 5.0)
            with lock:
                lat.append(time.perf_counter() - t)
                count[0] += 1
                if count[0] == crash_after:
                    with open(out, "w") as f:
                        json.dump(lat, f)
                    os._exit(137)  # the server dies; other judges are mid-save
    threads = [threading.Thread(target=run, args=(j,)) for j in judges]
    for t in threads: t.start()
    for t in threads: t.join()
    with open(out, "w") as f:
        json.dump(lat, f)
''')


def _big_run(src: Path, dst: Path, n_items: int) -> Path:
    """A run directory with n_items requests, reusing the smoke clips."""
    dst.mkdir(parents=True)
    shutil.copy(src / "manifest.json", dst / "manifest.json")
    reqs = [json.loads(line) for line in (src / "requests.jsonl").read_text().splitlines() if line.strip()]
    lines = []
    for i in range(n_items):
        r = dict(reqs[i % len(reqs)], request_id=f"r{i:04d}")
        lines.append(json.dumps(r))
        for sysdir in (src / "systems").iterdir():
            clips = dst / "systems" / sysdir.name / "clips"
            clips.mkdir(parents=True, exist_ok=True)
            shutil.copy(sysdir / "generator.json", clips.parent / "generator.json")
            shutil.copy(sysdir / "clips" / f"{reqs[i % len(reqs)]['request_id']}.mp4", clips / f"r{i:04d}.mp4")
    (dst / "requests.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def _phase(study_id, url, out, crash_after, judges) -> tuple[int, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-c", WORKER, study_id, url, str(out), str(crash_after), ",".join(judges)],
                          capture_output=True, text=True, timeout=600, env=env)
    return proc.returncode, (json.loads(out.read_text()) if out.exists() else []), proc.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_fifteen_judges_forty_pages_with_restart(mos_run, tmp_path, backend, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'ratings.db'}"
    else:
        from tests.mos.conftest import new_pg_database

        url = new_pg_database(request.getfixturevalue("postgres_server")[0])
    run = _big_run(Path(mos_run), tmp_path / "run", 12)  # 12 items x 3 systems + 2 training + gold + trap = 40
    res = make_study(run, tmp_path / "study", url, judges=N_JUDGES, ratings_per_clip=N_JUDGES, n_gold=1, n_trap=1)
    store = Store.open(url)
    sid = res.study_id
    judges = [j["judge_id"] for j in store.judges(sid)]
    assert all(len(store.pages(sid, j)) == N_PAGES for j in judges)
    total = N_JUDGES * N_PAGES

    rc1, lat1, err1 = _phase(sid, url, tmp_path / "lat1.json", total // 2, judges)
    assert rc1 == 137, f"the first server should have died mid-way: {err1[-2000:]}"
    mid_raw = store.raw_ratings(sid)
    mid = len(mid_raw)
    assert 0 < mid < total * 3 and mid % 3 == 0, "a page is saved whole or not at all"
    started = {r["judge_id"] for r in mid_raw}
    rc2, lat2, err2 = _phase(sid, url, tmp_path / "lat2.json", -1, judges)
    assert rc2 == 0, err2[-2000:]

    raw = store.raw_ratings(sid)
    keys = [(r["judge_id"], r["clip_id"], r["criterion"]) for r in raw]
    assert len(keys) == len(set(keys)), "duplicated ratings"
    assert len(raw) == total * 3, f"lost ratings: {total * 3 - len(raw)}"
    pos = {(a["judge_id"], a["clip_id"]): a["position"] for a in store.assignments(sid)}
    for r in raw:
        h = int(r["judge_id"][1:]) * 31 + pos[(r["judge_id"], r["clip_id"])] * 7
        want = {"sync": 1 + h % 5, "expressiveness": 1 + (h // 5) % 5, "naturalness": 1 + (h // 25) % 5}
        assert r["score"] == want[r["criterion"]], "a rating was saved with the wrong score"
    assert all(p.done for j in judges for p in store.pages(sid, j))
    retried = sum(r["revision"] == 2 for r in raw)
    assert retried == 3 * len(started), "each retried page updated its three rows in place"
    lat = np.array(lat1 + lat2) * 1000
    print(f"\n[{backend}] {len(lat)} page saves by {N_JUDGES} concurrent judges, restart after {len(lat1)}: "
          f"save latency p50 {np.percentile(lat, 50):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms, "
          f"max {lat.max():.1f} ms")
    store.close()


def _scores(judge: str, pos: int) -> dict[str, int]:
    h = int(judge[1:]) * 31 + pos * 7
    return {"sync": 1 + h % 5, "expressiveness": 1 + (h // 5) % 5, "naturalness": 1 + (h // 25) % 5}


@pytest.mark.slow
def test_real_server_fifteen_judges_with_restart(mos_run, tmp_path):
    """15 judges x 40 pages through the real Streamlit server (its websocket
    protocol, the widget states a browser sends); the server is killed half-way
    and restarted on the same port; judges reconnect and carry on."""
    import asyncio
    import re
    import time

    pytest.importorskip("websockets", reason="the protocol-level judges need the websockets package")
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    from tests.mos.conftest import Server, WsJudge, tokens

    run = _big_run(Path(mos_run), tmp_path / "run", 12)
    res = make_study(run, tmp_path / "study", judges=N_JUDGES, ratings_per_clip=N_JUDGES, n_gold=1, n_trap=1)
    toks = tokens(res.study_dir)
    server = Server(res.study_dir).start()
    lat: list[float] = []
    state = {"saves": 0, "restarting": None}
    total = N_JUDGES * N_PAGES

    async def restart():
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)

    async def judge(jid: str):
        client = WsJudge(server.base, toks[jid])
        widgets: list = []
        while True:
            try:
                if client.ws is None:
                    await client.connect()
                    widgets = []
                t0 = time.perf_counter()
                els = await client.rerun(widgets)
                if widgets and any(w.trigger_value and w.id.endswith("next") for w in widgets):
                    lat.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - the server went away: reconnect once it is back
                client.ws = None
                if state["restarting"] is not None:
                    await state["restarting"]
                else:
                    await asyncio.sleep(0.2)  # waiting for a restarting server, not timing
                continue
            kinds = [k for k, _ in els]
            texts = " ".join(getattr(e, k).body if k == "markdown" else "" for k, e in els)
            if "Thank you" in " ".join(e.heading.body for k, e in els if k == "heading"):
                await client.close()
                return
            buttons = [e.button for k, e in els if k == "button"]
            radios = [e.radio for k, e in els if k == "radio"]
            if radios:
                prog = next(e.progress.text for k, e in els if k == "progress")
                pos = int(re.search(r"Video (\d+) of", prog).group(1)) - 1
                want = _scores(jid, pos)
                crit = ["sync", "expressiveness", "naturalness"]
                submit = next(b for b in buttons if b.is_form_submitter)
                widgets = [WidgetState(id=r.id, string_value=r.options[5 - want[c]]) for r, c in zip(radios, crit)]
                widgets.append(WidgetState(id=submit.id, trigger_value=True))
                state["saves"] += 1
                if state["saves"] == total // 2 and state["restarting"] is None:
                    state["restarting"] = asyncio.ensure_future(restart())
            elif buttons:  # instructions "start" or training feedback "Continue"
                widgets = [WidgetState(id=buttons[0].id, trigger_value=True)]
            else:
                raise AssertionError(f"{jid}: unexpected page {kinds} {texts[:200]}")

    async def main():
        await asyncio.gather(*(judge(j) for j in sorted(toks)))
        if state["restarting"] is not None:
            await state["restarting"]

    t = time.perf_counter()
    try:
        # A fresh thread owns its own event loop: an earlier test (Playwright's sync API) may
        # leave a running loop in the main thread, where asyncio.run() refuses to start.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(lambda: asyncio.run(asyncio.wait_for(main(), 540))).result()
    finally:
        server.stop()
    store = Store.open(res.db_url)
    raw = store.raw_ratings(res.study_id)
    keys = [(r["judge_id"], r["clip_id"], r["criterion"]) for r in raw]
    assert len(keys) == len(set(keys)), "duplicated ratings"
    assert len(raw) == total * 3, f"lost ratings: {total * 3 - len(raw)}"
    pos = {(a["judge_id"], a["clip_id"]): a["position"] for a in store.assignments(res.study_id)}
    assert all(r["score"] == _scores(r["judge_id"], pos[(r["judge_id"], r["clip_id"])])[r["criterion"]] for r in raw)
    assert state["restarting"] is not None, "the server was restarted mid-way"
    ms = np.array(lat) * 1000
    print(f"\n[real server, sqlite] {len(ms)} confirmed saves by {N_JUDGES} judges in {time.perf_counter() - t:.0f} s "
          f"with a restart: Next -> next page p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms")
    store.close()
