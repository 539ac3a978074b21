"""Bring third-party weights in: ``vastbench assets import`` (offline) and ``assets fetch`` (connected).

Official weights (SyncNet, LPIPS's AlexNet trunk, pytorch-fid's Inception, the
wav2vec2 phoneme model) cannot be downloaded on an offline machine.  They are
downloaded elsewhere (``vastbench assets fetch NAME`` on a connected machine, or
by hand) and imported here: ``import`` finds which asset a file is, checks it
against its pin, and copies it atomically to where the code that uses it looks.

**Where.**  ``$VASTBENCH_CACHE/assets/<filename>`` (SyncNet: where
:func:`vastbench.metrics.lse.resolve_weights` looks; wav2vec2: the default
directory of :mod:`vastbench.features.wav2vec2`), or, for files that a library
loads itself, the torch hub cache ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``): torchvision reads AlexNet's trunk there for
``lpips``, and :func:`vastbench.metrics.fid.inception_weights` looks there for
pytorch-fid's file first.

**Pins**, three kinds:

- a full sha256 in the catalogue (``AssetSpec.sha256``): the file must match;
- a sha256 prefix (torch hub's convention: ``name-<first 8 hex of the
  sha256>.pth``): ``lpips-alexnet`` (``7be5be79``) and
  ``pytorch-fid-inception`` (``6726825d``); a partial check, but a wrong or
  truncated file fails it;
- a local pin, for assets whose public hash is not known here
  (``syncnet-official``, ``wav2vec2-phoneme``): the first import records the
  hash in ``$VASTBENCH_CACHE/assets/pins.json``; a different file is refused
  later unless ``--force`` (which replaces the file and the pin).  ``--force``
  never overrides a catalogue pin.

**Directory assets** (the wav2vec2 model) are imported from a directory or a
``.zip``/``.tar[.gz|.bz2|.xz]`` of one (a single top-level folder is
descended into).  Their hash is the sha256 of the ``sha256sum`` listing of their
files, hidden paths (``.cache/`` written by ``hf download``, ``.gitattributes``)
excluded, sorted bytewise by path; in a shell::

    cd DIR && find . -type f ! -path '*/.*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum

Only those files are copied.  A file is written to a temporary name beside its
destination and renamed into place; a directory is built beside its destination
and swapped in by two renames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vastbench.assets import ASSETS, AssetSpec
from vastbench.errors import VastbenchError
from vastbench.paths import cache_dir
from vastbench.rundir import sha256_file

log = logging.getLogger(__name__)

PINS_FILE = "pins.json"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
DOWNLOAD_TIMEOUT_S = 15.0
CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportedAssetSpec(AssetSpec):
    """An asset the user imports, with where it goes, how it is pinned and what uses it."""

    location: str = "assets"              # "assets": $VASTBENCH_CACHE/assets; "torch-hub": torch hub checkpoints
    is_dir: bool = False                  # a directory of files (a transformers model)
    sha256_prefix: str | None = None      # partial pin: the hash prefix in a torch hub file name
    urls: tuple[str, ...] = ()            # pinned download URL (a file) or URLs of a directory's files
    required: tuple[str, ...] = ()        # files a directory must hold ("a|b": either)
    used_by: str = ""                     # the metric or feature that reads it

    @property
    def path(self) -> Path:
        if self.location == "torch-hub":
            return torch_hub_checkpoints() / self.filename
        return cache_dir() / "assets" / self.filename


def torch_hub_checkpoints() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torchvision and pytorch-fid look for downloaded weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


CATALOGS = ("vastbench.features.assets_catalog", "vastbench.evalnets.assets_catalog")


def _catalog() -> dict[str, AssetSpec]:
    """Every registered asset, after importing the catalogues that register them."""
    import importlib

    for module in CATALOGS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return ASSETS


def _spec(name: str) -> AssetSpec:
    assets = _catalog()
    if name not in assets:
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"unknown asset '{name}'{did_you_mean(name, assets)}")
    return assets[name]


def _is_dir_asset(spec: AssetSpec) -> bool:
    return bool(getattr(spec, "is_dir", False))


# ----------------------------------------------------------------------------- hashing
def _visible_files(root: Path) -> list[tuple[str, Path]]:
    """``("./rel/path", path)`` of the non-hidden files under ``root``, sorted bytewise like ``LC_ALL=C sort``."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        out.append(("./" + rel.as_posix(), p))
    return sorted(out, key=lambda r: r[0].encode("utf-8"))


def tree_sha256(root: str | Path) -> str:
    """The pin of a directory asset: sha256 of its ``sha256sum`` listing (see the module docstring)."""
    listing = "".join(f"{sha256_file(p)}  {rel}\n" for rel, p in _visible_files(Path(root)))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def content_sha256(path: str | Path) -> str:
    """sha256 of a file, or the listing hash of a directory."""
    path = Path(path)
    return tree_sha256(path) if path.is_dir() else sha256_file(path)


# ----------------------------------------------------------------------------- pins
def pins_path() -> Path:
    return cache_dir() / "assets" / PINS_FILE


def local_pins() -> dict[str, dict]:
    path = pins_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise VastbenchError(f"{path}: not valid JSON; fix or delete it (it holds the hashes pinned "
                             f"on first import)") from None


def _record_pin(name: str, digest: str, source: Path) -> None:
    pins = local_pins()
    pins[name] = {"sha256": digest, "source": str(source), "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = pins_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    tmp.write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def pin_of(spec: AssetSpec) -> tuple[str, str | None]:
    """``(kind, value)``: ``("sha256", full)``, ``("prefix", hex)``, ``("local", full)`` or ``("none", None)``."""
    if spec.sha256:
        return "sha256", spec.sha256
    prefix = getattr(spec, "sha256_prefix", None)
    if prefix:
        return "prefix", prefix
    local = local_pins().get(spec.name, {}).get("sha256")
    return ("local", local) if local else ("none", None)


def pin_matches(spec: AssetSpec, digest: str) -> bool | None:
    """True or False against the asset's pin; None when it has none yet."""
    kind, pin = pin_of(spec)
    if kind == "none":
        return None
    return digest.startswith(pin) if kind == "prefix" else digest == pin


def _pin_problem(spec: AssetSpec, digest: str, source: Path, force: bool) -> str | None:
    kind, pin = pin_of(spec)
    if pin_matches(spec, digest) is not False:
        return None
    if kind == "sha256":
        return (f"{source} has sha256 {digest}, but asset '{spec.name}' is pinned to sha256 {pin}; "
                f"not imported: it is not the file vastbench's numbers are computed with")
    if kind == "prefix":
        return (f"{source} has sha256 {digest}, but asset '{spec.name}' ({spec.filename}) is pinned to sha256 "
                f"{pin}... (the hash prefix in its file name); not imported: a wrong or corrupted file")
    if force:
        return None
    return (f"{source} has sha256 {digest}, but asset '{spec.name}' was pinned on its first import to sha256 "
            f"{pin} (in {pins_path()}); not imported: pass --force to replace the file and its pin")


# ----------------------------------------------------------------------------- staging
def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _extract(archive: Path, into: Path) -> Path:
    """Extract a .zip or .tar[.*] safely (nothing outside ``into``); returns the content root."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if not (into / member).resolve().is_relative_to(into.resolve()):
                        raise VastbenchError(f"{archive}: member {member!r} would land outside the asset folder")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")  # refuses absolute paths, '..', devices and outside links
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise VastbenchError(f"{archive}: not a readable archive ({type(exc).__name__}: {exc})") from None
    return _content_root(into)


def _content_root(path: Path) -> Path:
    """Descend while a folder holds exactly one visible entry and it is a folder (``model/`` in an archive)."""
    while True:
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            return path
        path = entries[0]


def _missing_required(spec: AssetSpec, root: Path) -> list[str]:
    return [r for r in getattr(spec, "required", ()) if not any((root / alt).is_file() for alt in r.split("|"))]


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while block := fi.read(CHUNK):
            h.update(block)
            fo.write(block)
        fo.flush()
        os.fsync(fo.fileno())
    return h.hexdigest()


def _install(content: Path, dest: Path, digest: str) -> None:
    """Copy a file or directory to ``dest`` atomically (temporary name beside it, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.part-{os.getpid()}"
    try:
        if content.is_file():
            written = _copy_hashing(content, tmp)
        else:
            if tmp.exists():
                shutil.rmtree(tmp)
            for rel, p in _visible_files(content):
                target = tmp / rel[2:]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)
            written = tree_sha256(tmp)
        if written != digest:
            raise VastbenchError(f"{content} changed while it was copied (sha256 {digest} before, {written} after); "
                                 f"import it again")
        if content.is_file() and not dest.is_dir():
            os.replace(tmp, dest)
            return
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------- identify and import
def _identify(content: Path, source: Path, digest: str) -> AssetSpec:
    """The asset a file or directory is: by its hash against the pins, then by its name or contents."""
    candidates = [s for s in _catalog().values() if not s.shipped and _is_dir_asset(s) == content.is_dir()]
    for kind in ("sha256", "local", "prefix"):
        for spec in candidates:
            k, _ = pin_of(spec)
            if k == kind and pin_matches(spec, digest):
                return spec
    names = {source.name, content.name}
    for suffix in ARCHIVE_SUFFIXES:
        if source.name.lower().endswith(suffix):
            names.add(source.name[: -len(suffix)])
    by_name = [s for s in candidates if s.filename in names]
    if len(by_name) == 1:
        return by_name[0]
    if content.is_dir():
        by_files = [s for s in candidates if getattr(s, "required", ()) and not _missing_required(s, content)]
        if len(by_files) == 1:
            return by_files[0]
    choices = ", ".join(s.name for s in candidates) or "none"
    raise VastbenchError(
        f"cannot tell which asset {source} is: its sha256 {digest} matches no pin and its name no asset file; "
        f"name it with `vastbench assets import {source} --as NAME` (NAME: {choices})")


def import_asset(source: str | Path, name: str | None = None, force: bool = False) -> dict:
    """Verify ``source`` against its asset's pin and copy it where the code looks; returns what was done."""
    source = Path(source).expanduser()
    if not source.exists():
        raise VastbenchError(f"{source}: no such file or directory")
    spec = _spec(name) if name else None
    if spec is not None and spec.shipped:
        raise VastbenchError(f"asset '{spec.name}' ships inside the package; nothing to import ({spec.recipe})")
    staging_root = cache_dir() / "assets"
    staging_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=staging_root) as staging:
        want_dir = _is_dir_asset(spec) if spec is not None else None
        if _is_archive(source) and want_dir is not False:
            content = _extract(source, Path(staging))
        elif source.is_dir():
            content = _content_root(source)
        else:
            content = source
        digest = content_sha256(content)
        spec = spec or _identify(content, source, digest)
        if _is_dir_asset(spec) != content.is_dir():
            what = "a directory (give the directory, or a .zip/.tar of it)" if _is_dir_asset(spec) else "a file"
            raise VastbenchError(f"asset '{spec.name}' is {what}; {source} is not")
        if content.is_dir() and (missing := _missing_required(spec, content)):
            raise VastbenchError(f"{source}: no {missing[0].replace('|', ' or ')} in it; asset '{spec.name}' "
                                 f"needs {', '.join(r.replace('|', ' or ') for r in spec.required)}")
        problem = _pin_problem(spec, digest, source, force)
        if problem:
            raise VastbenchError(problem)
        kind, _ = pin_of(spec)
        dest = spec.path
        if content.resolve() != dest.resolve():
            _install(content, dest, digest)
        recorded = kind == "none" or (kind == "local" and force)
        if recorded:
            _record_pin(spec.name, digest, source)
    log.info("imported %s to %s (sha256 %s)", spec.name, dest, digest)
    return {"name": spec.name, "path": str(dest), "sha256": digest, "pin": "local" if recorded else kind,
            "pin_recorded": recorded}


# ----------------------------------------------------------------------------- fetch (connected machines)
def _offline_message(name: str, url: str, exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return (f"cannot download asset '{name}' from {url} ({type(exc).__name__}: {reason}); this machine looks "
            f"offline: on a connected machine run `vastbench assets fetch {name}` (or download {url}), "
            f"copy the result here and run `vastbench assets import PATH`")


def _download(url: str, dest: Path, name: str, timeout: float, progress=None) -> bool:
    """Download ``url`` to ``dest``; False on HTTP 404 (an optional file), a one-line error otherwise."""
    request = urllib.request.Request(url, headers={"User-Agent": "vastbench"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) if getattr(resp, "headers", None) else 0
            chunks = iter(lambda: resp.read(CHUNK), b"")
            if progress is not None and total:
                chunks = progress.track(chunks, f"download {dest.name}", total=-(-total // CHUNK))
            for block in chunks:
                out.write(block)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise VastbenchError(f"cannot download asset '{name}' from {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise VastbenchError(_offline_message(name, url, exc)) from None
    return True


def fetch_asset(name: str, force: bool = False, timeout: float = DOWNLOAD_TIMEOUT_S, progress=None) -> dict:
    """Download an asset from its pinned URL(s) and import it (verified against its pin)."""
    spec = _spec(name)
    urls = getattr(spec, "urls", ())
    if not urls:
        raise VastbenchError(f"asset '{name}' has no download URL; {spec.recipe}")
    staging_root = cache_dir() / "assets"
    staging_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=staging_root) as staging:
        if _is_dir_asset(spec):
            target = Path(staging) / spec.filename
            target.mkdir()
            for url in urls:
                if not _download(url, target / url.rsplit("/", 1)[-1], name, timeout, progress):
                    log.info("%s: %s not found (HTTP 404); skipped", name, url)
        else:
            target = Path(staging) / spec.filename
            if not _download(urls[0], target, name, timeout, progress):
                raise VastbenchError(f"cannot download asset '{name}': {urls[0]} is not found (HTTP 404)")
        return import_asset(target, name=name, force=force)


# ----------------------------------------------------------------------------- status
def _lse_in_use() -> str:
    from vastbench.metrics import lse

    official = _spec("syncnet-official").path.is_file()
    try:
        kind, label = lse.describe_weights(lse.resolve_weights())
    except VastbenchError:
        return "LSE-D/LSE-C: unavailable (official and SynthTalk SyncNet absent)"
    if kind == "official":
        return "LSE-D/LSE-C uses: official SyncNet"
    why = "official absent" if not official else f"${lse.ENV_WEIGHTS} overrides the official file"
    return f"LSE-D/LSE-C uses: {label} ({why})"


def _lpips_in_use() -> str:
    from vastbench.metrics.lpips_metric import alexnet_weights_path

    if alexnet_weights_path().is_file():
        return "LPIPS uses: standard LPIPS (ImageNet AlexNet trunk)"
    return "LPIPS uses: only the substitute LPIPS* with an untrained AlexNet, when allowed (official absent)"


def _fid_in_use() -> str:
    from vastbench.metrics.fid import inception_weights

    try:
        path, source = inception_weights()
    except VastbenchError:
        return "FID: unavailable (no Inception weights)"
    if source == "pytorch-fid":
        return "FID uses: pytorch-fid's Inception file"
    return f"FID uses: {source}'s port of the same TF Inception weights (pytorch-fid file absent)"


def _wav2vec2_in_use() -> str:
    from vastbench.features.wav2vec2 import default_dir

    if (default_dir() / "config.json").is_file():
        return f"real-speech PPG: wav2vec2 phoneme model available at {default_dir()}"
    return "real-speech PPG uses: built-in SynthTalk recognizer (wav2vec2 absent)"


IN_USE: dict[str, Callable[[], str]] = {
    "ppg-synthtalk": lambda: "PPG (VAST's speech input) uses: built-in recognizer",
    "syncnet-official": _lse_in_use,
    "lpips-alexnet": _lpips_in_use,
    "pytorch-fid-inception": _fid_in_use,
    "wav2vec2-phoneme": _wav2vec2_in_use,
}


def _in_use(spec: AssetSpec) -> str:
    probe = IN_USE.get(spec.name)
    if probe is None:
        return getattr(spec, "used_by", "") or spec.description
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - a status line must not break the listing
        return f"{getattr(spec, 'used_by', '') or spec.name}: unknown ({type(exc).__name__}: {exc})"


def asset_report() -> list[dict]:
    """Per asset: where it is, whether it is present and verified against its pin, and what uses it."""
    rows = []
    for spec in _catalog().values():
        path = spec.path
        present = path.is_dir() if _is_dir_asset(spec) else path.is_file()
        digest = content_sha256(path) if present else None
        kind, pin = pin_of(spec)
        ok = pin_matches(spec, digest) if present else None
        if not present:
            state = "missing"
        elif ok is None:
            state = "present, not pinned (import it to pin)"
        elif ok:
            state = {"sha256": "verified", "prefix": "verified (sha256 prefix)", "local": "verified (local pin)"}[kind]
        else:
            state = "MISMATCH" + (" (local pin)" if kind == "local" else "")
        pin_text = {"sha256": f"sha256 {(pin or '')[:16]}", "prefix": f"sha256 prefix {pin}",
                    "local": f"local pin {(pin or '')[:16]}", "none": "pinned on first import"}[kind]
        rows.append({"name": spec.name, "pin_text": pin_text, "path": str(path), "present": present,
                     "verified": bool(ok),
                     "state": state, "sha256": digest, "pin_kind": kind, "pin": pin,
                     "used_by": getattr(spec, "used_by", ""), "in_use": _in_use(spec),
                     "description": spec.description})
    return rows
