"""Typed, validated suite configs: versioned YAML files in ``vastbench/studies/`` with ``include``.

A suite file may ``include:`` another suite (by name or relative path) and
override any of its keys; dictionaries merge recursively, lists and scalars are
replaced.  ``--set key.path=value`` overrides are applied last and validated the
same way.  Unknown keys are errors that name the file, the key and the closest
valid key.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vastbench.errors import VastbenchError

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_INCLUDE_DEPTH = 8


STUDIES_DIR = Path(__file__).resolve().parent / "studies"   # the bundled suites, shipped in the wheel


def studies_dirs() -> list[Path]:
    """Where suite names are looked up: $VASTBENCH_STUDIES (os.pathsep list), then the bundled suites."""
    extra = [Path(p) for p in os.environ.get("VASTBENCH_STUDIES", "").split(os.pathsep) if p]
    return extra + [STUDIES_DIR]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(_Strict):
    name: str = "synthtalk"
    profile: str = "quick"
    seed: int = 0
    root: str | None = None  # default: the vastbench cache (see vastbench.paths)
    args: dict[str, Any] = Field(default_factory=dict)


class RequestsConfig(_Strict):
    split: str = "test"
    limit: int | None = None
    # Where the style prompt comes from: the driving clip itself, another clip of
    # the same speaking style (same identity when possible), or another identity.
    prompt: Literal["self", "same_style", "cross_identity"] = "same_style"
    seed: int = 0
    # Only these target identities (None: all).  Personalized renderers train one
    # model per target identity, so quick suites name a few.
    identities: list[str] | None = None
    # Draw the style prompt from this split (another identity, any style) instead of
    # the driving clip's style: zero-shot transfer of styles the models never saw.
    prompt_split: str | None = None

    @field_validator("limit")
    @classmethod
    def _positive(cls, v):
        if v is not None and v <= 0:
            raise ValueError("limit must be a positive number of requests (or null for all)")
        return v


class SystemConfig(_Strict):
    label: str
    generator: str
    args: dict[str, Any] = Field(default_factory=dict)
    description: str = ""

    @field_validator("label")
    @classmethod
    def _safe_label(cls, v: str):
        if not v or any(c in v for c in "/\\ \t") or v.startswith("."):
            raise ValueError(f"label '{v}' must be a non-empty name without slashes or spaces")
        return v


class MetricConfig(_Strict):
    """A metric with constructor arguments, e.g. ``{name: lse_d, args: {crops: centre}}``."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class StatisticsConfig(_Strict):
    ci: float = 0.95
    bootstrap: int = 2000
    reference: str | None = None
    seed: int = 0


class MosConfig(_Strict):
    enabled: bool = False
    systems: list[str] | None = None
    clips: int = 20
    judges: int = 15
    ratings_per_clip: int = 5
    seed: int = 0


class ReportConfig(_Strict):
    title: str | None = None
    tables: bool = True
    html: bool = True


class SuiteConfig(_Strict):
    version: int
    name: str
    description: str = ""
    seed: int = 0
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    requests: RequestsConfig = Field(default_factory=RequestsConfig)
    systems: list[SystemConfig]
    metrics: list[str | MetricConfig]   # a registered name, or {name, args}
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    mos: MosConfig = Field(default_factory=MosConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("systems")
    @classmethod
    def _unique_labels(cls, v: list[SystemConfig]):
        labels = [s.label for s in v]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"duplicate system labels {dupes}; every system needs its own label")
        if not v:
            raise ValueError("a suite needs at least one system")
        return v

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: list):
        names = [m if isinstance(m, str) else m.name for m in v]
        dupes = sorted({x for x in names if names.count(x) > 1})
        if dupes:
            raise ValueError(f"metric {dupes[0]} is listed twice; list each metric once (with its args)")
        return v

    def metric_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(registry name, constructor arguments)]`` in the suite's order."""
        return [(m, {}) if isinstance(m, str) else (m.name, dict(m.args)) for m in self.metrics]

    def config_hash(self) -> str:
        # None values are left out, so adding a new optional key (default None) keeps the
        # hashes, and the resumability, of existing runs.
        return stable_hash(self.model_dump(mode="json", exclude_none=True))

    def short_description(self) -> str:
        first = self.description.strip().split(". ")[0].strip()
        return first.rstrip(".") + "." if first else ""


# --------------------------------------------------------------------------- hashing
def stable_hash(obj: Any, n: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj``: a config hash for caches."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


# --------------------------------------------------------------------------- loading
def resolve_suite_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise VastbenchError(f"{p}: no such suite file")
        return p.resolve()
    names = {}
    for d in studies_dirs():
        for f in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
            names.setdefault(f.stem, f)
    if str(name_or_path) in names:
        return names[str(name_or_path)].resolve()
    from vastbench.registry import did_you_mean

    raise VastbenchError(f"unknown suite '{name_or_path}'{did_you_mean(str(name_or_path), names)} (see `vastbench suites`)")


def list_suites() -> list[tuple[str, Path]]:
    seen: dict[str, Path] = {}
    for d in studies_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.y*ml")):
                seen.setdefault(f.stem, f)
    return sorted(seen.items())


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise VastbenchError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise VastbenchError(f"{path}: a suite file must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict, origin: dict, path: Path, prefix: str = "") -> dict:
    """Deep-merge ``over`` into ``base``; record which file each key came from."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, origin, path, key + ".")
        else:
            out[k] = copy.deepcopy(v)
            _mark(origin, key, v, path)
    return out


def _mark(origin: dict, key: str, value: Any, path: Path) -> None:
    origin[key] = path
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(origin, f"{key}.{k}", v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _mark(origin, f"{key}.{i}", v, path)


def load_raw(path: Path, origin: dict | None = None, depth: int = 0) -> dict:
    """Load a suite file with its includes resolved (not yet validated)."""
    if origin is None:
        origin = {}
    if depth > MAX_INCLUDE_DEPTH:
        raise VastbenchError(f"{path}: include chain deeper than {MAX_INCLUDE_DEPTH}; is there a cycle?")
    data = _read_yaml(path)
    inc = data.pop("include", None)
    base: dict = {}
    if inc is not None:
        incs = inc if isinstance(inc, list) else [inc]
        for item in incs:
            p = Path(item)
            target = (path.parent / p) if (p.suffix in (".yaml", ".yml")) else resolve_suite_path(str(item))
            if not Path(target).exists():
                raise VastbenchError(f"{path}: include '{item}' not found (looked for {target})")
            base = _merge(base, load_raw(Path(target).resolve(), origin, depth + 1), {}, path)
    return _merge(base, data, origin, path)


def parse_set(items: list[str] | None) -> list[tuple[str, Any]]:
    out = []
    for item in items or []:
        if "=" not in item:
            raise VastbenchError(f"--set '{item}': expected key.path=value, e.g. --set requests.limit=4")
        k, v = item.split("=", 1)
        out.append((k.strip(), yaml.safe_load(v) if v.strip() else None))
    return out


def _apply_set(raw: dict, key: str, value: Any, origin: dict) -> None:
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_index(part, node, key)]
        else:
            if part not in node or not isinstance(node[part], (dict, list)):
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, key)] = value
    else:
        node[last] = value
    origin[key] = Path("--set")


def _index(part: str, node: list, key: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise VastbenchError(f"--set {key}: '{part}' is not an index of a list of {len(node)} items")
    return int(part)


def load_suite(name_or_path: str | Path, overrides: list[str] | None = None,
               profile: str | None = None) -> SuiteConfig:
    """Load, resolve includes, apply ``--set`` overrides, and validate a suite."""
    path = resolve_suite_path(name_or_path)
    origin: dict[str, Path] = {}
    raw = load_raw(path, origin)
    for k, v in parse_set(overrides):
        _apply_set(raw, k, v, origin)
    if profile is not None:
        raw.setdefault("dataset", {})["profile"] = profile
    return validate_suite(raw, path, origin)


def validate_suite(raw: dict, path: Path, origin: dict | None = None) -> SuiteConfig:
    origin = origin or {}
    try:
        return SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise VastbenchError(_format_error(err, path, origin, len(exc.errors()))) from None


def _format_error(err: dict, path: Path, origin: dict, n: int) -> str:
    loc = [str(x) for x in err["loc"]]
    key = ".".join(loc)
    src = _origin_of(key, origin) or path
    more = f" (+{n - 1} more)" if n > 1 else ""
    if err["type"] == "extra_forbidden":
        valid = _fields_at(SuiteConfig, err["loc"][:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
        return f"{src}: unknown key '{key}'{hint}{more}"
    if err["type"] == "missing":
        return f"{src}: missing required key '{key}'{more}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{src}: invalid value for '{key}': {msg}{more}"


def _origin_of(key: str, origin: dict) -> Path | None:
    parts = key.split(".")
    while parts:
        k = ".".join(parts)
        if k in origin:
            return origin[k]
        parts.pop()
    return None


def _fields_at(model: type[BaseModel], loc) -> list[str]:
    """Valid field names of the (sub)model at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        # Unwrap Optional[...] and friends.
        while get_origin(current) is not None and get_origin(current) not in (list, dict):
            args = [a for a in get_args(current) if a is not type(None)]
            current = args[0] if args else current
            if get_origin(current) is None:
                break
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []
