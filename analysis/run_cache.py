"""The Parquet cache of parsed runs: one file per run, and a manifest of the files each run was
parsed from (path, size, mtime, ctime and content digest; for W&B runs their state, last step
and heartbeat).

Design notes: docs/analysis.md, "Design notes: run_cache".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

# The manifest's format; a manifest of another version is ignored and the cache rebuilt. In
# version 5 an entry's signature holds each source file's size, mtime and ctime, the entry its
# files' content digests and when they were taken, and its Parquet file's digest; runs are keyed
# by their path below the source.
CACHE_VERSION = 5
# A file whose ctime is this close to when its digest was taken may have changed again within
# the same timestamp tick (2 s: the coarsest common file system's), so its times prove nothing.
RACY_NS = 2_000_000_000
# Windows reports the creation time as st_ctime: there the times never stand in for the digest.
TRUST_CTIME = os.name != "nt"


class CacheError(ValueError):
    """A cache folder that was asked for explicitly and cannot be used."""


def user_cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adadim"


def unwritable(directory: Path, create: bool = True) -> str | None:
    """Why files cannot be written in ``directory`` (None: they can). With ``create`` a missing
    folder is made; without, its nearest existing parent is probed and nothing is left behind.
    The probe is a real file: permission bits say nothing to root or on a read-only mount."""
    directory = Path(directory)
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        else:
            while not directory.exists() and directory.parent != directory:
                directory = directory.parent
            if not directory.is_dir():
                return f"{directory} is not a folder"
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def cache_location(source: str | Path, is_project: bool, cache_dir, notes: list[str]) -> Path | None:
    """The cache folder for ``source`` (see the module docstring); fallbacks are added to ``notes``."""
    if cache_dir is None:
        return None
    if cache_dir != "auto":
        reason = unwritable(Path(cache_dir))
        if reason:
            raise CacheError(f"cannot use the cache folder {cache_dir}: {reason}")
        return Path(cache_dir)
    if is_project:
        candidates = [user_cache_root() / str(source).replace("/", "__")]
    else:
        path = Path(source).resolve()
        beside = (path if path.is_dir() else path.parent) / ".adadim-cache"
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
        candidates = [beside, user_cache_root() / "local" / f"{path.name}-{digest}"]
    for i, candidate in enumerate(candidates):
        reason = unwritable(candidate)
        if reason is None:
            if i > 0:
                notes.append(f"the cache is in {candidate}")
            return candidate
        notes.append(f"cannot write the cache in {candidate} ({reason})")
    notes.append("loading without a cache")
    return None


def signature(files: Iterable[Path]) -> list:
    """Each source file's path, size, modification time and change time. No program can set a
    ctime back (``os.utime`` sets it to now), so a file rewritten in place with its old size and
    mtime still differs here; then `Cache.get` compares content digests."""
    rows = []
    for path in files:
        stat = path.stat()
        rows.append([str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns])
    return sorted(rows)


def content_check(sig: list) -> dict:
    """The content digest of each file of a file signature and when it was taken, for `put`
    (taken before the run is parsed, so a change during the parse is seen next time); empty for
    a W&B API run, whose signature names no files."""
    if not all(isinstance(row, list) for row in sig):
        return {}
    checked_ns = time.time_ns()
    return {"contents": [_digest(Path(row[0])) for row in sig], "checked_ns": checked_ns}


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Cache:
    """Parsed runs by key; a key's entry is valid while its signature is unchanged. A run that
    could not be parsed is remembered as its reason (``bad``)."""

    def __init__(self, directory: Path | None, notes: list[str]) -> None:
        self.directory, self.notes = directory, notes
        self.manifest: dict = {}
        if directory is not None:
            path = directory / "manifest.json"
            try:
                manifest = json.loads(path.read_text()) if path.is_file() else {}
            except (OSError, ValueError):  # unreadable or garbled: start over
                manifest = {}
            if isinstance(manifest, dict) and manifest.get("version") == CACHE_VERSION:
                self.manifest = manifest.get("runs", {})

    def _file(self, key: str) -> Path:
        assert self.directory is not None  # callers return early when the cache is off
        return self.directory / f"{key.replace('/', '__')}.parquet"

    def _off(self, error: OSError) -> None:
        self.notes.append(f"the cache in {self.directory} stopped working ({error.strerror or error}); not caching")
        self.directory = None

    def get(self, key: str, sig: list):
        """(meta, history), a `str` reason for a run known to be bad, or None."""
        entry = self.manifest.get(key)
        if self.directory is None or entry is None or not _unchanged(entry, sig):
            return None
        if entry.get("bad"):
            return str(entry["bad"])
        try:
            data = self._file(key).read_bytes()
            history = pd.read_parquet(io.BytesIO(data))
        except Exception:  # a missing or damaged Parquet file: parse the run again
            return None
        # unique() first: iterating an Arrow-backed column row by row cost seconds per 2M rows
        run_ids = {str(v) for v in history["run_id"].unique()} if "run_id" in history else set()
        if hashlib.sha1(data).hexdigest() != entry.get("digest") or run_ids - {str(entry["meta"].get("run_id"))}:
            # Valid Parquet, but not what was written for this run (another run's file copied over it).
            self.notes.append(f"the cache entry of run {key} does not match the run it was written for; rebuilt")
            return None
        return entry["meta"], history

    def put(
        self,
        key: str,
        sig: list,
        meta: dict | None,
        history: pd.DataFrame | None,
        bad: str | None = None,
        check: dict | None = None,
    ):
        """Store a parsed run; ``check``: its files' `content_check`, taken before the parse."""
        if self.directory is None:
            return
        digest = None
        try:
            if bad is None:
                assert history is not None  # a run that is not bad comes with its history
                history.to_parquet(self._file(key), index=False)
                digest = hashlib.sha1(self._file(key).read_bytes()).hexdigest()
        except OSError as error:
            self._off(error)
            return
        self.manifest[key] = {"signature": sig, "meta": _jsonable(meta), "bad": bad, "digest": digest, **(check or {})}

    def save(self) -> None:
        if self.directory is None:
            return
        try:
            tmp = self.directory / ".manifest.json.tmp"
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "runs": self.manifest}))
            tmp.replace(self.directory / "manifest.json")
        except OSError as error:
            self._off(error)


def _unchanged(entry: dict, sig: list) -> bool:
    """Whether an entry's run files are still the ones it was parsed from. Equal times settle it
    when they are older than the entry's digests by more than `RACY_NS`; otherwise files of the
    same paths and sizes are compared by content (after a touch, a chmod or a restore that keeps
    mtimes), and an entry whose content matches takes the new times, trusted from then on."""
    if not all(isinstance(row, list) for row in sig):
        return entry["signature"] == sig  # a W&B API run: its state, last step and heartbeat
    contents, old = entry.get("contents"), entry["signature"]
    if contents is None:
        return False
    if old == sig and _times_settle(entry):
        return True
    if len(old) != len(sig) or any(a[:2] != b[:2] for a, b in zip(old, sig, strict=True)):
        return False  # another file, or another size
    try:
        check = content_check(sig)
    except OSError:
        return False
    if check.get("contents") != contents:
        return False
    entry.update(signature=sig, **check)
    return True


def _times_settle(entry: dict) -> bool:
    checked_ns = entry.get("checked_ns")
    if not TRUST_CTIME or not isinstance(checked_ns, int):
        return False
    return all(row[3] < checked_ns - RACY_NS for row in entry["signature"])


def _jsonable(meta: dict | None):
    if meta is None:
        return None
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in meta.items()}
