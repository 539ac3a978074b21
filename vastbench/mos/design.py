"""MOS study design: pick clips, balance the assignment, anonymise, issue links.

A study directory (default ``RUN_DIR/mos/<study-id>/``) holds everything the
rating app needs and nothing a judge could use to un-blind it::

    study.json          design: clips (anonymous id, kind, expected rules,
                        duration, sha256), judges (token hash, order seed,
                        sequence), criteria, options, admin password hash
    clips/<id>.mp4      anonymous copies; the id is random hex
    private/key.csv     un-blinding key: clip -> system, generator, item, kind
    private/links.csv   judge -> token link (the only place tokens are kept)
    ratings.db          the default SQLite database (WAL)

The assignment is blocked by content item, as in :mod:`vastbench.mos.simulate`:
the ``k`` judges who get an item rate every system's rendering of it, so every
judge sees every system exactly equally often (paired comparisons within judge
and item) and every clip gets exactly ``k`` ratings.  Judge sets rotate over
items, so judge loads differ by at most one item (equal when ``items * k`` is a
multiple of the number of judges).  Each judge's order is shuffled with a
recorded seed so that no two consecutive pages show the same content.

Training clips (expected answer shown after rating) come first; gold clips
(the ``shifted_audio`` control must get sync <= 2, ground truth must not get
naturalness 1) and instructed-response trapping clips ("choose 2 on every
scale") are mixed into the sequence.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vastbench.errors import VastbenchError
from vastbench.mos import security
from vastbench.rundir import RunDir, atomic_write_json, atomic_write_text, now_iso, read_json, sha256_file

log = logging.getLogger(__name__)

STUDY_FORMAT = 1
SYNC_GOLD_GENERATOR = "shifted_audio"
NATURAL_GOLD_GENERATOR = "ground_truth"


def criteria_names() -> tuple[str, ...]:
    try:
        from vastbench.mos.schema import CRITERION_NAMES
        return tuple(CRITERION_NAMES)
    except ImportError:  # pragma: no cover - schema.py is owned elsewhere
        return ("sync", "expressiveness", "naturalness")


# --------------------------------------------------------------------------- options
@dataclass
class StudyOptions:
    """What ``vastbench mos create`` builds.  ``None`` values come from the
    run's suite (its ``mos:`` section) and then from these defaults."""

    systems: list[str] | None = None
    clips: int | None = None             # content items; each is rated for every system
    judges: int | None = None
    ratings_per_clip: int | None = None
    seed: int | None = None
    n_training: int = 2
    n_gold: int = 2
    n_trap: int = 1
    title: str | None = None
    admin_password: str | None = None    # None: generate one and return it once
    base_url: str = "http://localhost:8501"

    def resolved(self, suite_mos: dict | None) -> "StudyOptions":
        mos = suite_mos or {}
        out = StudyOptions(**asdict(self))
        out.systems = self.systems or mos.get("systems") or None
        out.clips = self.clips if self.clips is not None else int(mos.get("clips", 20))
        out.judges = self.judges if self.judges is not None else int(mos.get("judges", 15))
        out.ratings_per_clip = (self.ratings_per_clip if self.ratings_per_clip is not None
                                else int(mos.get("ratings_per_clip", 5)))
        out.seed = self.seed if self.seed is not None else int(mos.get("seed", 0))
        for name in ("clips", "judges", "ratings_per_clip"):
            if getattr(out, name) < 1:
                raise VastbenchError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(out, name)})")
        for name in ("n_training", "n_gold", "n_trap"):
            if getattr(out, name) < 0:
                raise VastbenchError(f"--{name.replace('n_', '').replace('_', '-')} must be >= 0")
        return out


@dataclass
class CreatedStudy:
    study_dir: Path
    study_id: str
    links: list[tuple[str, str]]          # (judge id, link)
    admin_password: str | None            # only when generated
    db_url: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- study dir
class StudyDir:
    """Paths of a study directory; the only way the app opens clip files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def study_json(self) -> Path:
        return self.root / "study.json"

    @property
    def clips_dir(self) -> Path:
        return self.root / "clips"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def key_path(self) -> Path:
        return self.private_dir / "key.csv"

    @property
    def links_path(self) -> Path:
        return self.private_dir / "links.csv"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def default_db_url(self) -> str:
        return f"sqlite:///{(self.root / 'ratings.db').resolve()}"

    def load(self) -> dict:
        data = read_json(self.study_json)
        if data is None:
            raise VastbenchError(f"{self.root}: not a MOS study directory (no study.json); "
                                 "create one with `vastbench mos create --run RUN_DIR`")
        if data.get("format") != STUDY_FORMAT:
            raise VastbenchError(f"{self.study_json}: study format {data.get('format')!r} is not {STUDY_FORMAT}; "
                                 "recreate the study with this vastbench")
        return data

    def load_key(self) -> dict[str, dict]:
        if not self.key_path.exists():
            raise VastbenchError(f"{self.key_path}: un-blinding key missing; restore it from your backup "
                                 "(the admin export and live results need it)")
        with open(self.key_path, newline="") as f:
            return {row["clip"]: row for row in csv.DictReader(f)}

    def clip_path(self, file_name: str) -> Path:
        """The clip file for a name from the database, refused unless it is an
        anonymous clip name inside ``clips/`` (no traversal, no symlink escape)."""
        name = str(file_name)
        if not security.CLIP_FILE_RE.match(name):
            raise VastbenchError(f"refusing clip file name {name!r}: not an anonymous clip name; "
                                 "the database does not belong to this study directory")
        base = self.clips_dir.resolve()
        path = (base / name).resolve()
        if path.parent != base:
            raise VastbenchError(f"refusing clip {name!r}: it resolves outside {base}")
        return path

    def check_clips(self, clips: list[dict], verify_hash: bool = True) -> list[str]:
        """One line per clip that is missing or damaged (empty when all are fine)."""
        problems = []
        for c in clips:
            try:
                path = self.clip_path(c["file"])
            except VastbenchError as exc:
                problems.append(str(exc))
                continue
            if not path.is_file():
                problems.append(f"clips/{c['file']} is missing")
            elif verify_hash and c.get("sha256") and sha256_file(path) != c["sha256"]:
                problems.append(f"clips/{c['file']} is corrupt (sha256 differs from study.json)")
        return problems


# --------------------------------------------------------------------------- assignment
def balanced_assignment(items: list[str], n_judges: int, k: int, rng: np.random.Generator) -> list[list[str]]:
    """Items per judge: each item goes to ``min(k, J)`` distinct judges; loads
    differ by at most one.  Judge sets rotate over items from a random start."""
    k = min(k, n_judges)
    perm = rng.permutation(n_judges)
    out: list[list[str]] = [[] for _ in range(n_judges)]
    for ii, item in enumerate(items):
        for t in range(k):
            out[int(perm[(ii * k + t) % n_judges])].append(item)
    return out


def order_without_repeats(entries: list[tuple[str, str]], rng: np.random.Generator,
                          previous: str | None = None) -> list[tuple[str, str]]:
    """Shuffle ``(clip_id, item)`` entries so that no two neighbours share an item.

    Random greedy (pick uniformly among the allowed entries, but take an item
    that would otherwise become impossible to spread first); falls back to the
    input order when the constraint cannot be met (one item dominating)."""
    remaining = list(entries)
    rng.shuffle(remaining)
    out: list[tuple[str, str]] = []
    last = previous
    while remaining:
        counts: dict[str, int] = {}
        for _, it in remaining:
            counts[it] = counts.get(it, 0) + 1
        n = len(remaining)
        urgent = [it for it, c in counts.items() if 2 * c > n]  # must go now or never fits
        allowed = [i for i, (_, it) in enumerate(remaining) if it != last]
        if urgent:
            allowed = [i for i in allowed if remaining[i][1] in urgent] or allowed
        if not allowed:
            allowed = list(range(len(remaining)))  # infeasible: accept a repeat
        pick = allowed[int(rng.integers(len(allowed)))]
        entry = remaining.pop(pick)
        out.append(entry)
        last = entry[1]
    return out


# --------------------------------------------------------------------------- create
def _generator_name(run: RunDir, label: str) -> str:
    info = read_json(run.system_dir(label) / "generator.json", {}) or {}
    return str(info.get("name") or label)


def _probe_duration(path: Path) -> float:
    from vastbench.media import probe

    try:
        meta = probe(path)
    except VastbenchError as exc:
        raise VastbenchError(f"{exc}; the run's clip cannot be used in a MOS study") from None
    dur = meta.get("duration") or (meta["n_frames"] / meta["fps"] if meta.get("fps") and meta.get("n_frames") else None)
    if not dur or not meta.get("n_frames"):
        raise VastbenchError(f"{path}: clip has no video frames; regenerate it (`vastbench run --resume`)")
    return float(dur)


def create_study(run_dir: str | Path, out: str | Path | None = None, options: StudyOptions | None = None,
                 db_url: str | None = None) -> CreatedStudy:
    """Build a study directory from a run directory and initialise its database."""
    from vastbench.data.requests import load_requests

    run = RunDir(run_dir)
    manifest = run.read_manifest()
    suite = manifest.get("suite") or {}
    opts = (options or StudyOptions()).resolved(suite.get("mos"))
    rng = np.random.default_rng(opts.seed)
    notes: list[str] = []
    crits = criteria_names()

    all_labels = sorted(p.name for p in (run.root / "systems").iterdir() if p.is_dir()) \
        if (run.root / "systems").is_dir() else []
    if not all_labels:
        raise VastbenchError(f"{run.root}: no systems/ in the run directory; run `vastbench run` to generate clips first")
    generators = {lab: _generator_name(run, lab) for lab in all_labels}
    systems = list(opts.systems or all_labels)
    unknown = [s for s in systems if s not in generators]
    if unknown:
        raise VastbenchError(f"--systems {', '.join(unknown)} not in {run.root}/systems (has {', '.join(all_labels)})")
    if len(set(systems)) != len(systems):
        raise VastbenchError("--systems lists a system twice; give each label once")

    requests = [r.request_id for r in load_requests(run.requests_path)]

    def have(label: str, item: str) -> bool:
        return run.clip_path(label, item).is_file()

    usable = [it for it in requests if all(have(s, it) for s in systems)]
    if len(usable) < len(requests):
        notes.append(f"{len(requests) - len(usable)} request(s) lack a clip from some system and are left out")
    if not usable:
        raise VastbenchError(f"{run.root}: no request has a clip from every system ({', '.join(systems)}); "
                             "check systems/*/errors.jsonl or pick --systems")
    n_items = min(opts.clips, len(usable))
    if n_items < opts.clips:
        notes.append(f"--clips {opts.clips} asked, only {n_items} items have clips from every system; using {n_items}")
    chosen = sorted(rng.choice(usable, size=n_items, replace=False).tolist(), key=requests.index)
    spare = [it for it in requests if it not in chosen]

    # anchors by generator name, not by label
    sync_anchor = next((lab for lab in all_labels if generators[lab] == SYNC_GOLD_GENERATOR), None)
    nat_anchor = next((lab for lab in all_labels if generators[lab] == NATURAL_GOLD_GENERATOR), None)

    def anchor_items(label: str | None) -> list[str]:
        if label is None:
            return []
        pool = [it for it in spare if have(label, it)] + [it for it in chosen if have(label, it)]
        return pool

    study_id = "mos-" + security.new_clip_id()[:8]
    root = Path(out) if out is not None else run.root / "mos" / study_id
    if root.exists() and any(root.iterdir()):
        raise VastbenchError(f"{root}: directory is not empty; pick a new --out (studies are never overwritten)")
    sd = StudyDir(root)
    sd.clips_dir.mkdir(parents=True, exist_ok=True)
    sd.private_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(sd.private_dir, 0o700)

    clips: list[dict] = []
    key_rows: list[dict] = []
    durations: dict[tuple[str, str], float] = {}

    def add_clip(label: str, item: str, kind: str, expected: dict | None = None, instruction: str | None = None,
                 feedback: str | None = None) -> dict:
        src = run.clip_path(label, item)
        if (label, item) not in durations:
            durations[(label, item)] = _probe_duration(src)
        cid = security.new_clip_id()
        file_name = f"{cid}.mp4"
        dst = sd.clips_dir / file_name
        tmp = sd.clips_dir / f".{file_name}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        rec = {"clip_id": cid, "file": file_name, "kind": kind, "expected": expected or {},
               "instruction": instruction, "feedback": feedback, "duration_s": durations[(label, item)],
               "sha256": sha256_file(dst), "item": item}
        clips.append(rec)
        key_rows.append({"clip": cid, "system": label, "generator": generators[label], "item": item, "kind": kind})
        return rec

    # regular clips: every chosen item x every system
    regular: dict[str, list[dict]] = {it: [add_clip(s, it, "regular") for s in systems] for it in chosen}

    # training: alternate the sync anchor (low sync) and the natural anchor (high sync)
    training: list[dict] = []
    train_specs = []
    if sync_anchor:
        train_specs.append((sync_anchor, {"sync": "<=2"},
                            "Here the voice is shifted against the lips, so speech-lip sync deserves 1 or 2."))
    if nat_anchor:
        train_specs.append((nat_anchor, {"sync": ">=4"},
                            "This is the original recording: lips and voice match, so speech-lip sync deserves 4 or 5."))
    if opts.n_training and not train_specs:
        notes.append("no shifted_audio or ground_truth system in the run: no training clips")
    used_train_items: list[str] = []
    for t in range(opts.n_training if train_specs else 0):
        label, exp, fb = train_specs[t % len(train_specs)]
        pool = [it for it in anchor_items(label) if it not in used_train_items] or anchor_items(label)
        item = pool[t // len(train_specs) % len(pool)]
        used_train_items.append(item)
        training.append(add_clip(label, item, "training", exp, feedback=fb))

    # gold pools, one entry per judge at most
    gold_pools: list[list[dict]] = []
    for label, exp in ((sync_anchor, {"sync": "<=2"}), (nat_anchor, {"naturalness": "!=1"})):
        if label is None or not opts.n_gold:
            continue
        pool_items = [it for it in anchor_items(label) if it not in used_train_items] or anchor_items(label)
        per = min(len(pool_items), max(1, int(np.ceil(opts.judges * opts.n_gold / 2))))
        gold_pools.append([add_clip(label, it, "gold", exp) for it in pool_items[:per]])
    if opts.n_gold and not gold_pools:
        notes.append("no shifted_audio or ground_truth system in the run: no gold clips")

    trap_pool: list[dict] = []
    for t in range(min(opts.judges, max(1, n_items)) if opts.n_trap else 0):
        value = (2, 4)[t % 2]
        item = chosen[int(rng.integers(len(chosen)))]
        label = systems[int(rng.integers(len(systems)))]
        instruction = (f"Attention check: whatever you see, please choose {value} on all three questions "
                       "for this clip.")
        trap_pool.append(add_clip(label, item, "trap", {c: f"=={value}" for c in crits}, instruction=instruction))

    # judges: balanced items, then mixed-in checks, then an order without repeats
    per_judge_items = balanced_assignment(chosen, opts.judges, opts.ratings_per_clip, rng)
    seeds = np.random.SeedSequence(opts.seed).generate_state(opts.judges).tolist()
    judges, links = [], []
    for j in range(opts.judges):
        judge_id = f"j{j + 1:02d}"
        jr = np.random.default_rng(seeds[j])
        entries = [(c["clip_id"], it) for it in per_judge_items[j] for c in regular[it]]
        for g in range(opts.n_gold if gold_pools else 0):
            pool = gold_pools[g % len(gold_pools)]
            c = pool[(j + g // len(gold_pools)) % len(pool)]
            if all(c["clip_id"] != e[0] for e in entries):
                entries.append((c["clip_id"], c["item"]))
        for t in range(opts.n_trap if trap_pool else 0):
            c = trap_pool[(j + t) % len(trap_pool)]
            if all(c["clip_id"] != e[0] for e in entries):
                entries.append((c["clip_id"], c["item"]))
        head = [(c["clip_id"], c["item"]) for c in training]
        body = order_without_repeats(entries, jr, previous=head[-1][1] if head else None)
        token = security.new_token()
        judges.append({"judge_id": judge_id, "token_sha256": security.hash_token(token),
                       "completion_code": security.new_completion_code(), "seed": int(seeds[j]),
                       "sequence": [cid for cid, _ in head + body]})
        links.append((judge_id, f"{opts.base_url.rstrip('/')}/?t={token}"))

    password = opts.admin_password
    generated = None
    if not password:
        password = generated = security.new_password()
    # items stay in the key only: study.json reveals neither system nor content
    public_clips = [{k: v for k, v in c.items() if k != "item"} for c in clips]
    study = {
        "format": STUDY_FORMAT, "study_id": study_id, "created_at": now_iso(),
        "title": opts.title or f"{suite.get('name', 'vastbench')} MOS study",
        "source_run": str(run.root.resolve()), "criteria": list(crits),
        "options": {k: v for k, v in asdict(opts).items() if k != "admin_password"},
        "systems": len(systems), "items": len(chosen),
        "admin_hash": security.hash_password(password), "clips": public_clips, "judges": judges,
    }
    _write_private_csv(sd.key_path, ["clip", "system", "generator", "item", "kind"], key_rows)
    _write_private_csv(sd.links_path, ["judge", "link"], [{"judge": j, "link": u} for j, u in links])
    atomic_write_json(sd.study_json, study)

    from vastbench.mos.db import Store

    url = db_url or sd.default_db_url
    with Store.open(url) as store:
        store.ensure_study(sd)
    log.info("created MOS study %s in %s", study_id, root)
    return CreatedStudy(sd.root, study_id, links, generated, url, notes)


def _write_private_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    os.chmod(path, 0o600)


def design_summary(study: dict) -> dict:
    """Counts per kind and the per-judge page count, for messages and tests."""
    kinds: dict[str, int] = {}
    for c in study["clips"]:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    pages = [len(j["sequence"]) for j in study["judges"]]
    return {"clips": kinds, "judges": len(study["judges"]), "pages_min": min(pages), "pages_max": max(pages)}


__all__ = ["StudyOptions", "CreatedStudy", "StudyDir", "create_study", "balanced_assignment",
           "order_without_repeats", "design_summary", "STUDY_FORMAT"]
