"""Study management shared by the CLI and the admin page: open, add/revoke judges, export."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from vastbench.errors import VastbenchError
from vastbench.rundir import atomic_write_text


def open_study(study_dir: str | Path, db_url: str | None = None, create: bool = True):
    """``(StudyDir, Store, study_id)``; loads the study into an empty database."""
    from vastbench.mos.db import Store
    from vastbench.mos.design import StudyDir

    sd = StudyDir(study_dir)
    study = sd.load()
    store = Store.open(db_url or sd.default_db_url, create=create)
    try:
        store.ensure_study(sd)
    except BaseException:
        store.close()
        raise
    return sd, store, study["study_id"]


def _append_link(sd, judge_id: str, link: str) -> None:
    rows = []
    if sd.links_path.exists():
        with open(sd.links_path, newline="") as f:
            rows = list(csv.DictReader(f))
    rows.append({"judge": judge_id, "link": link})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["judge", "link"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(sd.links_path, buf.getvalue())
    os.chmod(sd.links_path, 0o600)


def add_judge(sd, store, study_id: str, base_url: str, replaces: str | None = None) -> tuple[str, str]:
    """Add a judge; returns ``(judge_id, link)`` and records the link in private/links.csv."""
    judge_id, token = store.add_judge(study_id, replaces=replaces)
    link = f"{base_url.rstrip('/')}/?t={token}"
    _append_link(sd, judge_id, link)
    return judge_id, link


def revoke_judge(store, study_id: str, judge_id: str, reason: str = "") -> None:
    if judge_id not in {j["judge_id"] for j in store.judges(study_id)}:
        raise VastbenchError(f"judge {judge_id} is not in study {study_id}; see `vastbench mos status`")
    store.revoke_judge(study_id, judge_id, reason)


def export(sd, store, study_id: str, out: str | Path | None = None, include_revoked: bool = False) -> dict[str, Path]:
    from vastbench.mos.export import export_study

    return export_study(store, study_id, out or sd.exports_dir, include_revoked=include_revoked)


__all__ = ["open_study", "add_judge", "revoke_judge", "export"]
