"""The ratings table of a MOS study: columns, criteria, validation.

The rating app exports exactly :data:`RATING_COLUMNS`, one row per
(judge, clip, criterion) rating.  :func:`validate_ratings` is the single entry
point for every statistics function: it never raises for a partially bad file;
each kind of bad row is dropped and reported as one line (what is wrong, how
many rows, how to fix it), and the rest is analysed.  It raises
:class:`~vastbench.errors.VastbenchError` only when required columns are
missing or when nothing usable remains.

Only ``kind == "regular"`` rows enter MOS.  ``gold`` and ``trap`` rows feed
judge screening (their ``expected`` rule, e.g. ``"<=2"``, is checked with
:func:`check_expected`); ``training`` rows are kept but ignored by statistics.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from vastbench.errors import VastbenchError

# --------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------

#: Column name -> (logical dtype, description).  The rating app's export has
#: exactly these columns, in this order.
RATING_COLUMNS: dict[str, tuple[str, str]] = {
    "study": ("str", "study id"),
    "judge": ("str", "anonymous judge id"),
    "clip": ("str", "anonymous clip id (reveals neither system nor item)"),
    "system": ("str", "system that rendered the clip (hidden from judges)"),
    "item": ("str", "content id = request id; the same item rendered by different systems pairs them"),
    "criterion": ("str", "one of CRITERIA: sync, expressiveness, naturalness"),
    "score": ("int", "rating 1..5"),
    "kind": ("str", "regular | gold | trap | training"),
    "expected": ("str?", "for gold/trap/training: rule the score must satisfy, e.g. '<=2', '==4', '!=1'"),
    "time_on_page_s": ("float", "seconds the judge spent on the clip's page"),
    "clip_duration_s": ("float", "clip duration in seconds"),
    "simulated": ("bool", "True for ratings from simulated judges"),
    "created_at": ("str", "ISO-8601 timestamp of the rating"),
}

#: Columns without which no analysis is possible (missing -> VastbenchError).
REQUIRED_COLUMNS: tuple[str, ...] = ("study", "judge", "clip", "system", "item", "criterion", "score", "kind")

#: Columns that are filled with a default (and reported) when absent.
OPTIONAL_DEFAULTS: dict[str, object] = {
    "expected": None,
    "time_on_page_s": float("nan"),
    "clip_duration_s": float("nan"),
    "simulated": False,
    "created_at": "",
}

KINDS: tuple[str, ...] = ("regular", "gold", "trap", "training")
SCORE_MIN, SCORE_MAX = 1, 5

# --------------------------------------------------------------------------
# Criteria (worded from the VAST supplementary, Sec. 3 "MOS Guideline")
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One rating scale.  ``anchors[5]`` and ``anchors[1]`` follow the VAST
    guideline word for word in substance; 4, 3 and 2 are our interpolations."""

    name: str
    label: str  # table/column header, e.g. "Lip sync"
    short: str  # compact header, e.g. "Sync"
    question: str
    anchors: dict[int, str] = field(default_factory=dict)


CRITERIA: dict[str, Criterion] = {
    "sync": Criterion(
        name="sync",
        label="Speech-lip sync",
        short="Sync",
        question="How much do the lip movements match the audio?",
        anchors={
            5: "Very good: no wrong lip movements; nothing different from the real person talking.",
            4: "Good: lips match the audio, with rare small mismatches.",
            3: "Fair: noticeable mismatches, but most of the content can be followed from the lips.",
            2: "Poor: frequent wrong lip movements; the content is hard to read from the lips.",
            1: "Very poor: the lip movements are totally unreasonable; the content cannot be read from the lips at all.",
        },
    ),
    "expressiveness": Criterion(
        name="expressiveness",
        label="Expressiveness & richness",
        short="Expr.",
        question="How vivid or exaggerated is the avatar presented?",
        anchors={
            5: "Very good: rich and contagious expression, especially on the mouth region.",
            4: "Good: clearly expressive, varied facial movements.",
            3: "Fair: some expression, but limited in range or variety.",
            2: "Poor: little expression; mostly flat facial movements.",
            1: "Very poor: unreal and monotonous facial movements.",
        },
    ),
    "naturalness": Criterion(
        name="naturalness",
        label="Overall naturalness",
        short="Nat.",
        question="How real and natural is the synthesized video?",
        anchors={
            5: "Very good: high-quality images and a natural avatar appearance.",
            4: "Good: natural overall, with minor artifacts only on close inspection.",
            3: "Fair: noticeably synthetic in places, with visible but limited artifacts.",
            2: "Poor: clearly fake; artifacts or blur are frequent.",
            1: "Very poor: fake artifacts or blurred images that can be easily observed.",
        },
    ),
}

CRITERION_NAMES: tuple[str, ...] = tuple(CRITERIA)

# --------------------------------------------------------------------------
# Expected-score rules for gold / trap / training clips
# --------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt, "=": operator.eq,
}
_RULE_RE = re.compile(r"^\s*(<=|>=|==|!=|<|>|=)?\s*([0-9]+(?:\.[0-9]+)?)\s*$")


def _is_missing(x) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def parse_expected(rule) -> tuple[str, float] | None:
    """Parse an expected-score rule: ``"<=2"``, ``">=4"``, ``"==4"``, ``"!=1"``,
    ``"<3"``, ``">3"``, or a bare number (``4`` or ``"4"`` means ``==4``).
    Several rules joined by ``&`` must all hold (``">=2&<=3"``).  Returns
    ``None`` for a missing rule; raises ``ValueError`` for an unparseable one."""
    if _is_missing(rule):
        return None
    if isinstance(rule, (int, float, np.integer, np.floating)):
        return ("==", float(rule))
    text = str(rule).strip()
    if not text:
        return None
    parts = [p for p in text.split("&")]
    parsed = []
    for p in parts:
        m = _RULE_RE.match(p)
        if not m:
            raise ValueError(f"unparseable expected rule {rule!r}")
        parsed.append((m.group(1) or "==", float(m.group(2))))
    if len(parsed) == 1:
        return parsed[0]
    return ("&", tuple(parsed))  # type: ignore[return-value]


def check_expected(score, rule) -> bool | None:
    """True when ``score`` satisfies ``rule``, False when not, None without a rule."""
    parsed = parse_expected(rule)
    if parsed is None:
        return None
    op, val = parsed
    if op == "&":
        return all(_OPS[o](float(score), v) for o, v in val)  # type: ignore[union-attr]
    return bool(_OPS[op](float(score), val))


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def empty_ratings() -> pd.DataFrame:
    """An empty ratings table with the schema's columns and dtypes."""
    return _coerce_types(pd.DataFrame({c: [] for c in RATING_COLUMNS}))


def _coerce_types(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in ("study", "judge", "clip", "system", "item", "criterion", "kind", "created_at"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
        out[c] = [None if v is None else str(v) for v in out[c]]
        out[c] = out[c].astype(object)
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype("int64") if len(out) else out["score"].astype("int64")
    for c in ("time_on_page_s", "clip_duration_s"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    out["simulated"] = out["simulated"].astype(bool)
    out["expected"] = out["expected"].astype(object)
    return out[list(RATING_COLUMNS)]


def _rows(idx, limit: int = 5) -> str:
    idx = list(idx)
    shown = ", ".join(str(i) for i in idx[:limit])
    return f"rows {shown}" + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip() == "")


def _to_bool(v) -> bool:
    if _is_missing(v):
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(v)


def validate_ratings(
    df: pd.DataFrame,
    source: str = "ratings",
    *,
    systems=None,
    criteria=None,
    min_ratings_per_judge: int = 2,
) -> tuple[pd.DataFrame, list[str]]:
    """Check a ratings table; drop bad rows; report each problem on one line.

    ``source`` names the file/table in messages.  ``systems`` / ``criteria``
    (optional) are what the study design expects: a system or criterion with
    no usable regular rating is reported.  Returns ``(clean_df, problems)``;
    ``clean_df`` has exactly :data:`RATING_COLUMNS` with normalised dtypes
    (``score`` int64, ids str, ``simulated`` bool) and a fresh RangeIndex.

    Dropped (one problem line per kind): blank ids; unknown or missing
    criterion; unknown kind; score missing, non-integer or outside 1..5;
    gold/trap rows whose ``expected`` rule is missing or unparseable; clips
    whose rows disagree on system or item; repeated ratings of the same
    (judge, clip, criterion) -- the latest ``created_at`` is kept.
    Reported but kept: missing optional columns (filled with defaults),
    negative or non-numeric times (set to NaN), judges with fewer than
    ``min_ratings_per_judge`` regular ratings, systems or criteria without
    ratings, system x criterion cells that are empty while the criterion is
    rated for other systems, several studies mixed in one table.

    Raises VastbenchError when required columns are missing or no usable
    regular rating remains.
    """
    if not isinstance(df, pd.DataFrame):
        raise VastbenchError(f"{source}: expected a pandas DataFrame of ratings, got {type(df).__name__}; load the export with pandas.read_csv")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise VastbenchError(
            f"{source}: required rating columns missing: {', '.join(missing)}; "
            f"export ratings with the columns {', '.join(RATING_COLUMNS)}"
        )
    problems: list[str] = []
    d = df.copy()
    d.index = pd.RangeIndex(len(d))
    for c, default in OPTIONAL_DEFAULTS.items():
        if c not in d.columns:
            d[c] = [default] * len(d)
            problems.append(f"{source}: column '{c}' missing; filled with {default!r} (QC rules that need it are skipped); add it to the export")
    extra = [c for c in d.columns if c not in RATING_COLUMNS]
    if extra:
        problems.append(f"{source}: ignored unknown columns {', '.join(map(str, extra))}")
    raw_systems = set(d["system"].dropna().astype(str))
    n_in = len(d)
    if n_in == 0:
        raise VastbenchError(f"{source}: no ratings in the table; collect ratings or check the export path")

    keep = pd.Series(True, index=d.index)

    def drop(mask: pd.Series, what: str, fix: str):
        mask = mask & keep
        if mask.any():
            problems.append(f"{source}: {int(mask.sum())} rating(s) dropped: {what} ({_rows(d.index[mask])}); {fix}")
            keep[mask] = False

    for c in ("judge", "clip", "system", "item"):
        drop(_blank(d[c]), f"blank '{c}'", f"every rating needs a {c} id")

    crit = d["criterion"].astype(object).map(lambda v: None if _is_missing(v) else str(v).strip().lower())
    d["criterion"] = crit
    drop(crit.isna() | (crit == ""), "missing criterion", f"criterion must be one of {', '.join(CRITERION_NAMES)}")
    unknown_c = crit.notna() & (crit != "") & ~crit.isin(CRITERION_NAMES)
    if unknown_c.any():
        names = sorted(set(crit[unknown_c & keep]))
        drop(unknown_c, f"unknown criterion {', '.join(map(repr, names[:5]))}", f"criterion must be one of {', '.join(CRITERION_NAMES)}")

    kind = d["kind"].astype(object).map(lambda v: None if _is_missing(v) else str(v).strip().lower())
    d["kind"] = kind
    bad_kind = ~kind.isin(KINDS)
    if bad_kind.any():
        names = sorted({str(k) for k in kind[bad_kind & keep]})
        drop(bad_kind, f"unknown kind {', '.join(map(repr, names[:5]))}", f"kind must be one of {', '.join(KINDS)}")

    score = pd.to_numeric(d["score"], errors="coerce")
    drop(score.isna(), "score missing or not a number", f"scores must be integers {SCORE_MIN}..{SCORE_MAX}")
    nonint = score.notna() & (np.abs(score - np.round(score)) > 1e-9)
    drop(nonint, "score not an integer", f"scores must be integers {SCORE_MIN}..{SCORE_MAX}")
    outside = score.notna() & ((score < SCORE_MIN) | (score > SCORE_MAX))
    drop(outside, f"score outside {SCORE_MIN}..{SCORE_MAX}", f"scores must be integers {SCORE_MIN}..{SCORE_MAX}; check the scale the app used")
    d["score"] = score

    # gold/trap rows need a parseable expected rule
    is_check = d["kind"].isin(("gold", "trap"))
    bad_rule = pd.Series(False, index=d.index)
    no_rule = pd.Series(False, index=d.index)
    for i in d.index[is_check & keep]:
        try:
            if parse_expected(d.at[i, "expected"]) is None:
                no_rule[i] = True
        except ValueError:
            bad_rule[i] = True
    # A page has several criteria; a gold clip may carry a rule for only one
    # of them (e.g. sync).  Rows without a rule are kept but unchecked; only a
    # gold/trap *clip* with no rule at all is useless.
    if no_rule.any():
        clip_has_rule = (~no_rule & ~bad_rule & is_check & keep).groupby([d["judge"], d["clip"]]).transform("any")
        drop(no_rule & ~clip_has_rule, "gold/trap clip without an 'expected' rule", "give gold/trap clips an expected rule such as '<=2'")
    drop(bad_rule, "unparseable 'expected' rule", "use rules like '<=2', '>=4', '==3', '!=1'")

    for c in ("time_on_page_s", "clip_duration_s"):
        v = pd.to_numeric(d[c], errors="coerce")
        bad = (d[c].notna() & v.isna()) | (v < 0)
        if (bad & keep).any():
            problems.append(f"{source}: {int((bad & keep).sum())} non-numeric or negative '{c}' values set to NaN ({_rows(d.index[bad & keep])}); the too-fast rule skips them")
        d[c] = v.where(~bad)

    d["simulated"] = d["simulated"].map(_to_bool)
    d["created_at"] = d["created_at"].map(lambda v: "" if _is_missing(v) else str(v))

    d = d[keep].copy()
    for c in ("study", "judge", "clip", "system", "item"):
        d[c] = d[c].map(lambda v: "" if _is_missing(v) else str(v).strip())

    # a clip must belong to exactly one system and one item
    if len(d):
        nsys = d.groupby("clip")["system"].nunique()
        nitem = d.groupby("clip")["item"].nunique()
        bad_clips = sorted(set(nsys.index[nsys > 1]) | set(nitem.index[nitem > 1]))
        if bad_clips:
            m = d["clip"].isin(bad_clips)
            problems.append(
                f"{source}: {int(m.sum())} rating(s) dropped: clip(s) {', '.join(bad_clips[:5])} map to several systems or items; "
                "a clip id must identify one (system, item) rendering"
            )
            d = d[~m]

    # repeated ratings of the same judge/clip/criterion: keep the latest
    if len(d):
        order = d.sort_values("created_at", kind="stable")
        dup = order.duplicated(["judge", "clip", "criterion"], keep="last")
        if dup.any():
            problems.append(
                f"{source}: {int(dup.sum())} repeated rating(s) of the same judge, clip and criterion dropped ({_rows(order.index[dup])}); "
                "the latest (by created_at) is kept"
            )
            d = d.drop(index=order.index[dup])

    reg = d[d["kind"] == "regular"]
    if reg.empty:
        raise VastbenchError(
            f"{source}: no usable regular ratings remain (of {n_in} rows); "
            + ("; ".join(problems[-3:]) if problems else "all rows are gold/trap/training")
        )

    # reported, kept
    studies = sorted(set(d["study"]))
    if len(studies) > 1:
        problems.append(f"{source}: ratings of {len(studies)} studies mixed ({', '.join(studies[:5])}); analyse one study at a time (filter on 'study')")
    per_judge = reg.groupby("judge").size()
    all_judges = sorted(set(d["judge"]))
    few = [j for j in all_judges if per_judge.get(j, 0) < min_ratings_per_judge]
    if few:
        problems.append(
            f"{source}: judge(s) {', '.join(few[:5])}{' ...' if len(few) > 5 else ''} have fewer than {min_ratings_per_judge} regular ratings; "
            "kept, but they cannot be screened and add little"
        )
    present_sys = set(reg["system"])
    lost = sorted(raw_systems - present_sys - {s for s in raw_systems if s.startswith("__")})
    # systems that only ever appear on gold/trap/training clips are not "lost"
    nonreg_only = set(df.loc[df["kind"].astype(str).str.lower().isin(("gold", "trap", "training")), "system"].dropna().astype(str)) - set(
        df.loc[df["kind"].astype(str).str.lower() == "regular", "system"].dropna().astype(str)
    )
    lost = [s for s in lost if s not in nonreg_only]
    if systems is not None:
        lost = sorted(set(lost) | (set(map(str, systems)) - present_sys))
    for s in lost:
        problems.append(f"{source}: system '{s}' has no usable regular ratings; it is left out of every table (check its rows above)")
    present_crit = set(reg["criterion"])
    if criteria is not None:
        for c in criteria:
            if c not in present_crit:
                problems.append(f"{source}: criterion '{c}' has no usable regular ratings; it is left out of every table")
    for c in sorted(present_crit):
        have = set(reg.loc[reg["criterion"] == c, "system"])
        for s in sorted(present_sys - have):
            problems.append(f"{source}: system '{s}' has no '{c}' ratings while other systems do; that cell is left empty")

    clean = _coerce_types(d.reset_index(drop=True))
    return clean, problems


def regular(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that enter MOS (``kind == 'regular'``)."""
    return df[df["kind"] == "regular"]


def is_simulated(df: pd.DataFrame) -> bool:
    """True when any rating comes from a simulated judge (label every number)."""
    return bool("simulated" in df.columns and df["simulated"].astype(bool).any())


__all__ = [
    "RATING_COLUMNS", "REQUIRED_COLUMNS", "OPTIONAL_DEFAULTS", "KINDS", "SCORE_MIN", "SCORE_MAX",
    "Criterion", "CRITERIA", "CRITERION_NAMES",
    "parse_expected", "check_expected", "validate_ratings", "empty_ratings", "regular", "is_simulated",
]

