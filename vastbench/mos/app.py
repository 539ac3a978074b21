"""The judge's page (Streamlit).  ``vastbench mos serve`` runs it; so does AppTest.

Routing by query parameter: ``?t=<token>`` is a judge's page, ``?admin`` the
admin page (password), anything else a landing page.  The study directory and
database URL come from the environment variables :data:`ENV_STUDY` and
:data:`ENV_DB` (set by ``serve``), so the same script runs under AppTest.

What the browser receives: instructions, one clip as video bytes (served by
Streamlit under a content hash, never a file name), the three scales and a
progress bar.  No system label, item id, clip id or file name is ever written
into the page; widget keys are page positions.

Every "Next" saves the page's three ratings in one transaction and the page
shown next is always "the first assignment without a complete rating", read
from the database: a reload, a new tab or a new device resumes exactly there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from vastbench.errors import VastbenchError

ENV_STUDY = "VASTBENCH_MOS_STUDY"
ENV_DB = "VASTBENCH_MOS_DB"
ENV_BASE_URL = "VASTBENCH_MOS_BASE_URL"
PAGE_TITLE = "Video rating study"
VIDEO_WIDTH = 512  # px; small clips are upscaled by the browser, large ones fit the column


@dataclass
class Context:
    study_dir: object  # StudyDir
    study_id: str
    title: str
    criteria: list[str]
    store: object      # Store
    db_url: str


def _criteria():
    from vastbench.mos.schema import CRITERIA
    return CRITERIA


def describe_rule(rule: str | None) -> str:
    """``"<=2"`` -> ``"1 or 2"``; for training feedback."""
    from vastbench.mos.schema import parse_expected

    parsed = parse_expected(rule)
    if parsed is None:
        return "any score"
    op, v = parsed
    if op == "&":
        return " and ".join(describe_rule(f"{o}{int(x)}") for o, x in v)
    v = int(v)
    allowed = {"<=": range(1, v + 1), "<": range(1, v), ">=": range(v, 6), ">": range(v + 1, 6),
               "==": [v], "=": [v], "!=": [x for x in range(1, 6) if x != v]}[op]
    allowed = [str(x) for x in allowed]
    return allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + " or " + allowed[-1]


def _context(study_dir: str, db_url: str | None) -> Context:
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def build(study_dir: str, db_url: str | None) -> Context:
        from vastbench.mos.db import Store
        from vastbench.mos.design import StudyDir

        sd = StudyDir(study_dir)
        study = sd.load()
        url = db_url or sd.default_db_url
        store = Store.open(url)
        store.ensure_study(sd)
        return Context(sd, study["study_id"], study["title"], list(study["criteria"]), store, url)

    return build(study_dir, db_url)


def _clip_bytes(path: str, sha256: str) -> bytes:
    import hashlib

    import streamlit as st

    @st.cache_data(show_spinner=False, max_entries=512)
    def read(path: str, sha256: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise VastbenchError("clip file is damaged (checksum differs)")
        return data

    return read(path, sha256)


# --------------------------------------------------------------------------- entry
def main() -> None:
    import streamlit as st

    admin = "admin" in st.query_params
    st.set_page_config(page_title=PAGE_TITLE, layout="wide" if admin else "centered",
                       initial_sidebar_state="collapsed")
    study_dir = os.environ.get(ENV_STUDY)
    if not study_dir:
        st.error(f"The rating app was started without a study; start it with `vastbench mos serve STUDY` "
                 f"(or set {ENV_STUDY}).")
        st.stop()
    try:
        ctx = _context(study_dir, os.environ.get(ENV_DB) or None)
    except VastbenchError as exc:
        st.error(f"The study cannot be opened: {exc}")
        st.stop()
    params = st.query_params
    if admin:
        from vastbench.mos.admin import render_admin

        render_admin(ctx)
        return
    token = params.get("t")
    if not token:
        st.title(PAGE_TITLE)
        st.info("Please open the personal link you were sent to take part in this study.")
        return
    from vastbench.mos.db import StorageError, TokenError

    try:
        judge = ctx.store.judge_for_token(ctx.study_id, token)
    except TokenError as exc:
        st.title(PAGE_TITLE)
        st.error(f"Sorry, {exc}.")
        return
    except StorageError as exc:
        st.error(f"The study is temporarily unavailable ({exc}). Please reload this page in a minute.")
        return
    render_judge(ctx, judge)


# --------------------------------------------------------------------------- judge
def _instructions(ctx: Context, n_pages: int, expanded: bool = True) -> None:
    import streamlit as st

    crits = _criteria()
    st.markdown(
        f"You will watch **{n_pages} short talking-face videos**, one per page. Turn your **sound on**, "
        "watch each video **to the end** (replay it if you like), then answer three questions about it. "
        "The first videos are practice: after rating them you will see the answer we expected. "
        "A few pages check attention; please read every page carefully.\n\n"
        "Each answer is saved as soon as you press **Next**. You can stop and come back later with the "
        "same link, on any device: you will continue where you left off. At the end you get a completion code.")
    for name in ctx.criteria:
        c = crits[name]
        with st.expander(f"{c.label}: {c.question}", expanded=expanded):
            st.markdown("\n".join(f"- **{s}**: {c.anchors[s]}" for s in (5, 4, 3, 2, 1)))


def render_judge(ctx: Context, judge: str) -> None:
    import streamlit as st

    from vastbench.mos.db import StorageError

    ss = st.session_state
    store = ctx.store
    try:
        pages = store.pages(ctx.study_id, judge)
    except StorageError as exc:
        st.error(f"The study is temporarily unavailable ({exc}). Please reload this page in a minute.")
        return
    total = len(pages)
    n_done = sum(p.done for p in pages)

    fb = ss.get("feedback")
    if fb:
        _feedback_page(fb, n_done, total)
        return
    current = next((p for p in pages if not p.done), None)
    if current is None:
        st.title("Thank you!")
        st.progress(1.0, text=f"{total} of {total} videos rated")
        st.success("You have rated every video. Your answers are saved.")
        st.markdown("Your completion code:")
        st.code(store.completion_code(ctx.study_id, judge), language=None)
        if not ss.get("completed_logged"):
            if not store.has_event(ctx.study_id, judge, "completed"):
                store.log_event(ctx.study_id, judge, "completed", {"pages": total})
            ss.completed_logged = True
        return

    if not ss.get("instructions_ok") and not store.has_event(ctx.study_id, judge, "instructions_accepted"):
        st.title("Instructions")
        _instructions(ctx, total)
        if st.button("I have read the instructions, start", type="primary", key="start"):
            store.log_event(ctx.study_id, judge, "instructions_accepted", {})
            ss.instructions_ok = True
            st.rerun()
        return
    ss.instructions_ok = True
    _rating_page(ctx, judge, current, n_done, total)


def _feedback_page(fb: dict, n_done: int, total: int) -> None:
    import streamlit as st

    crits = _criteria()
    st.progress(n_done / max(total, 1), text=f"{n_done} of {total} videos rated")
    st.subheader("Practice video: expected answer")
    from vastbench.mos.schema import check_expected

    lines = []
    for name, rule in fb["expected"].items():
        given = fb["given"].get(name)
        verdict = "that matches" if check_expected(given, rule) else "please keep the scale in mind"
        lines.append(f"- **{crits[name].label}**: expected **{describe_rule(rule)}**, you chose **{given}**: {verdict}.")
    st.markdown("\n".join(lines))
    if fb.get("text"):
        st.info(fb["text"])
    if st.button("Continue", type="primary", key=f"continue_{fb['position']}"):
        del st.session_state["feedback"]
        st.rerun()


def _rating_page(ctx: Context, judge: str, page, n_done: int, total: int) -> None:
    import streamlit as st

    from vastbench.mos.db import StorageError, TokenError

    ss = st.session_state
    crits = _criteria()
    pos = page.position
    st.progress(n_done / max(total, 1), text=f"Video {n_done + 1} of {total}")
    if ss.get("notice"):
        st.warning(ss.pop("notice"))
    with st.expander("Instructions and scales", expanded=False):
        _instructions(ctx, total, expanded=False)
    if page.kind == "training":
        st.info("Practice video: after you press Next you will see the answer we expected.")
    try:
        data = _clip_bytes(str(ctx.study_dir.clip_path(page.file)), page.sha256)
    except (OSError, VastbenchError) as exc:
        reason = "missing" if isinstance(exc, FileNotFoundError) else "damaged"
        st.error(f"This video cannot be played right now (the file is {reason}). Your earlier answers are saved. "
                 "Please tell the study organiser and reload this page later.")
        key = f"unavailable_{pos}"
        if not ss.get(key):
            ctx.store.log_event(ctx.study_id, judge, "clip_unavailable", {"position": pos, "reason": reason})
            ss[key] = True
        return
    shown_key = f"shown_{pos}"
    if shown_key not in ss:
        ss[shown_key] = time.time()
    st.video(data, format="video/mp4", width=VIDEO_WIDTH)
    if page.instruction:
        st.markdown(f"**{page.instruction}**")
    with st.form(key=f"page_{pos}", clear_on_submit=False, border=False):
        values = {}
        for name in ctx.criteria:
            c = crits[name]
            values[name] = st.radio(
                f"**{c.label}**: {c.question}", options=[5, 4, 3, 2, 1], index=None,
                format_func=lambda v, c=c: f"{v} · {c.anchors[v]}", key=f"p{pos}_{name}")
        comment = st.text_area("Comment (optional)", key=f"p{pos}_comment", max_chars=2000, height=80)
        submitted = st.form_submit_button("Next", type="primary", key="next")
    if not submitted:
        return
    missing = [crits[n].label for n in ctx.criteria if values[n] is None]
    if missing:
        st.error(f"Please answer all three questions before going on (missing: {', '.join(missing)}).")
        return
    elapsed = time.time() - ss[shown_key]
    try:
        res = ctx.store.save_page(ctx.study_id, judge, page.clip_id, values, elapsed, comment or None)
    except TokenError as exc:
        st.error(f"Sorry, {exc}.")
        return
    except StorageError:
        st.error("Your answers could not be saved just now (the database is busy or unreachable). They are still "
                 "on this page: please press Next again in a moment.")
        return
    except VastbenchError as exc:
        st.error(str(exc))
        return
    if res.too_fast:
        ss.notice = "Please watch each video to the end before rating it."
    if page.kind == "training" and page.expected:
        ss.feedback = {"position": pos, "expected": page.expected, "given": values, "text": page.feedback}
    st.rerun()


__all__ = ["main", "render_judge", "describe_rule", "ENV_STUDY", "ENV_DB", "ENV_BASE_URL", "PAGE_TITLE"]
