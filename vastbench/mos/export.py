"""Exports of a MOS study: ratings (CSV + Parquet) and the separate un-blinding key.

``export_study`` writes a fresh folder (default ``STUDY/exports/<UTC time>/``):

* ``ratings_blind.csv`` / ``.parquet``  every column of the ratings schema but ``system``
* ``key.csv``                           clip -> system, generator, item, kind (the un-blinding key)
* ``ratings.csv`` / ``.parquet``        the analysis table: blind ratings joined with the key,
                                        exactly ``RATING_COLUMNS`` (admin only)
* ``comments.csv``, ``events.jsonl``, ``export.json`` (counts, schema version, time)

Ratings of revoked judges are left out unless ``include_revoked``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from pathlib import Path

from vastbench.rundir import atomic_write_bytes, atomic_write_json, atomic_write_text

_FALLBACK_COLUMNS = ("study", "judge", "clip", "system", "item", "criterion", "score", "kind", "expected",
                     "time_on_page_s", "clip_duration_s", "simulated", "created_at")


def rating_columns() -> list[str]:
    try:
        from vastbench.mos.schema import RATING_COLUMNS
        return list(RATING_COLUMNS)
    except ImportError:  # pragma: no cover
        return list(_FALLBACK_COLUMNS)


def _parquet_bytes(df) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _csv_text(df) -> str:
    return df.to_csv(index=False)


def export_study(store, study_id: str, out_dir: str | Path, include_revoked: bool = False) -> dict[str, Path]:
    """Write the export files; returns ``{name: path}``."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        out = out / stamp
    out.mkdir(parents=True, exist_ok=True)
    full = store.ratings_frame(study_id, include_revoked=include_revoked)
    blind = full.drop(columns=["system"])
    key_rows = [{"clip": c["clip_id"], "system": c["system"], "generator": c["generator"], "item": c["item"],
                 "kind": c["kind"]} for c in sorted(store.clips(study_id), key=lambda c: c["clip_id"])]
    paths: dict[str, Path] = {}
    paths["ratings_blind_csv"] = atomic_write_text(out / "ratings_blind.csv", _csv_text(blind))
    paths["ratings_blind_parquet"] = atomic_write_bytes(out / "ratings_blind.parquet", _parquet_bytes(blind))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["clip", "system", "generator", "item", "kind"])
    w.writeheader()
    w.writerows(key_rows)
    paths["key_csv"] = atomic_write_text(out / "key.csv", buf.getvalue())
    paths["ratings_csv"] = atomic_write_text(out / "ratings.csv", _csv_text(full))
    paths["ratings_parquet"] = atomic_write_bytes(out / "ratings.parquet", _parquet_bytes(full))
    cbuf = io.StringIO()
    cw = csv.DictWriter(cbuf, fieldnames=["judge", "clip", "text", "updated_at"])
    cw.writeheader()
    for c in store.comments(study_id):
        cw.writerow({"judge": c["judge_id"], "clip": c["clip_id"], "text": c["text"], "updated_at": c["updated_at"]})
    paths["comments_csv"] = atomic_write_text(out / "comments.csv", cbuf.getvalue())
    paths["events_jsonl"] = atomic_write_text(
        out / "events.jsonl", "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in store.events(study_id)))
    paths["export_json"] = atomic_write_json(out / "export.json", {
        "study": study_id, "ratings": int(len(full)), "judges": int(full["judge"].nunique()) if len(full) else 0,
        "include_revoked": include_revoked, "schema_version": store.schema_version(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "ratings.* join the un-blinding key (key.csv) in: admin only; share ratings_blind.* otherwise",
    })
    return paths


__all__ = ["export_study", "rating_columns"]
