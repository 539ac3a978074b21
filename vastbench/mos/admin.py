"""The admin page (Streamlit), behind the study's password (scrypt hash in the database).

Progress per judge and per system, QC flags, live MOS per system and criterion,
add or revoke a judge, and exports (the un-blinding key is a separate file).
Only this page shows system names.
"""

from __future__ import annotations

import os

from vastbench.errors import VastbenchError


def _login(ctx) -> bool:
    import streamlit as st

    ss = st.session_state
    if ss.get("admin_ok") == ctx.study_id:
        return True
    st.title("Study administration")
    with st.form("admin_login"):
        pw = st.text_input("Admin password", type="password", key="admin_password")
        ok = st.form_submit_button("Sign in", type="primary")
    if ok:
        if ctx.store.verify_admin(ctx.study_id, pw or ""):
            ss.admin_ok = ctx.study_id
            ctx.store.log_event(ctx.study_id, None, "admin_login", {})
            st.rerun()
        ctx.store.log_event(ctx.study_id, None, "admin_login_failed", {})
        st.error("Wrong password.")
    return False


def _base_url() -> str:
    import streamlit as st

    env = os.environ.get("VASTBENCH_MOS_BASE_URL")
    if env:
        return env
    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - AppTest has no request
        url = ""
    return url.split("?", 1)[0].rstrip("/") or "http://localhost:8501"


def render_admin(ctx) -> None:
    import streamlit as st

    from vastbench.mos import manage, monitor

    if not _login(ctx):
        return
    store, sid = ctx.store, ctx.study_id
    st.title(f"Admin: {ctx.title}")
    st.caption(f"study {sid} · database {_masked(ctx.db_url)}")
    ratings = store.ratings_frame(sid, include_revoked=True)
    active = ratings[~ratings["judge"].isin({j["judge_id"] for j in store.judges(sid) if j["revoked_at"]})]
    jp = monitor.judge_progress(store, sid)
    c1, c2, c3 = st.columns(3)
    c1.metric("Judges active", int((~jp["revoked"]).sum()) if len(jp) else 0)
    c2.metric("Judges finished", int((jp["completed"] & ~jp["revoked"]).sum()) if len(jp) else 0)
    c3.metric("Pages rated", f"{int(jp.loc[~jp['revoked'], 'rated'].sum())} / {int(jp.loc[~jp['revoked'], 'pages'].sum())}")

    t_prog, t_qc, t_mos, t_judges, t_export = st.tabs(["Progress", "QC flags", "Live MOS", "Judges", "Export"])
    with t_prog:
        st.subheader("Per judge")
        st.dataframe(jp, hide_index=True, width="stretch")
        st.subheader("Per system (regular pages)")
        st.dataframe(monitor.system_progress(store, sid), hide_index=True, width="stretch")
    with t_qc:
        st.caption("gold: a known-bad or known-good clip rated against its rule; trap: an instructed answer not "
                   "given; too fast: rated before the clip could have been watched; straight-lining: the same "
                   f"score on at least {int(monitor.STRAIGHT_SHARE * 100)}% of pages.")
        st.dataframe(monitor.qc_flags(ratings), hide_index=True, width="stretch")
    with t_mos:
        st.caption("Regular clips, active judges; mean ± t-based 95% CI. The export's analysis accounts for "
                   "judge and clip effects.")
        st.dataframe(monitor.mos_table(monitor.live_mos(active), ctx.criteria), hide_index=True, width="stretch")
    with t_judges:
        _judges_tab(ctx, jp, manage)
    with t_export:
        _export_tab(ctx, manage)


def _masked(url: str) -> str:
    from vastbench.mos.security import mask_url
    return mask_url(url)


def _judges_tab(ctx, jp, manage) -> None:
    import streamlit as st

    ids = list(jp["judge"]) if len(jp) else []
    active = [j for j, r in zip(ids, jp["revoked"]) if not r] if ids else []
    st.subheader("Add a judge")
    replaces = st.selectbox("Give the new judge the clips of (optional; e.g. a revoked judge)", ["(balanced)"] + ids,
                            key="add_replaces")
    if st.button("Add judge", key="add_judge"):
        try:
            jid, link = manage.add_judge(ctx.study_dir, ctx.store, ctx.study_id, _base_url(),
                                         None if replaces == "(balanced)" else replaces)
        except VastbenchError as exc:
            st.error(str(exc))
        else:
            st.success(f"Added {jid}. Send this link (it is shown once here and kept in private/links.csv):")
            st.code(link, language=None)
    st.subheader("Revoke a judge")
    who = st.selectbox("Judge", active, index=None, key="revoke_who")
    reason = st.text_input("Reason (kept in the event log)", key="revoke_reason")
    if st.button("Revoke", key="revoke", disabled=who is None):
        manage.revoke_judge(ctx.store, ctx.study_id, who, reason)
        st.success(f"{who} revoked: their link no longer works and their ratings leave the live results.")


def _export_tab(ctx, manage) -> None:
    import streamlit as st

    st.caption("ratings_blind.* hold no system; key.csv is the un-blinding key; ratings.* join it in "
               "(for the analysis, admin only).")
    include = st.checkbox("Include revoked judges", key="export_revoked")
    if st.button("Export now", key="export"):
        paths = manage.export(ctx.study_dir, ctx.store, ctx.study_id, include_revoked=include)
        st.session_state.export_paths = {k: str(v) for k, v in paths.items()}
    paths = st.session_state.get("export_paths")
    if paths:
        st.success(f"Exported to {os.path.dirname(paths['ratings_csv'])}")
        for name, mime in (("ratings_csv", "text/csv"), ("ratings_parquet", "application/octet-stream"),
                           ("ratings_blind_csv", "text/csv"), ("key_csv", "text/csv")):
            with open(paths[name], "rb") as f:
                st.download_button(f"Download {os.path.basename(paths[name])}", f.read(),
                                   file_name=os.path.basename(paths[name]), mime=mime, key=f"dl_{name}")


__all__ = ["render_admin"]
