"""One writer per run directory: an OS file lock (``flock``, through `filelock`).

``with RunLock(run_dir): ...`` (or ``lock = acquire_run_lock(run_dir)`` ... ``lock.release()``)
creates the run directory, takes ``<run_dir>/.lock`` without waiting and records the holder
(PID, host, start time) in ``<run_dir>/.lock.owner``. A second writer is refused at once with
`RunLocked`, which names the holder.

The kernel drops an flock when the process holding it dies, so a run whose trainer was killed
(SIGKILL, the OOM killer) is simply taken over by the next writer: nothing stale has to be
cleaned up, and SIGKILL-then-resume works. The owner file is only for the message; when it
names a process of this host that is gone, the lock can still be held for a moment by its
forked children (data-loader workers, which exit once their parent is gone), so the next
writer waits up to ``orphan_grace`` seconds for them before refusing.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"


class RunDirectoryError(Exception):
    """A run directory that cannot be used: not writable, in use by another process, or holding
    files that are not a run's. The CLI reports it in one line with exit code 2."""


class RunLocked(RunDirectoryError):
    """Another process is writing this run."""

    def __init__(self, run_dir: Path, owner: dict | None) -> None:
        self.run_dir, self.owner = run_dir, owner
        self.pid = owner.get("pid") if owner else None
        if owner:
            holder = f"PID {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}"
        else:
            holder = "a process that has not said who it is"
        super().__init__(
            f"run {run_dir} is being written by another process ({holder}); wait for it to finish or use another run.id"
        )


def read_owner(run_dir: str | Path) -> dict | None:
    """What the holder of a run's lock wrote about itself (None when nothing readable is there).
    The lock file, not this record, decides who holds the run."""
    try:
        owner = json.loads((Path(run_dir) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _gone(owner: dict | None) -> bool:
    """True when the owner record names a process of this host that no longer exists."""
    if (
        os.name != "posix"
        or not owner
        or owner.get("host") != socket.gethostname()
        or not isinstance(owner.get("pid"), int)
    ):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class RunLock:
    """The exclusive lock of one run directory (see the module docstring)."""

    def __init__(self, run_dir: str | Path, orphan_grace: float = 10.0, poll: float = 0.05) -> None:
        self.run_dir = Path(run_dir)
        self.orphan_grace, self.poll = orphan_grace, poll
        self._lock = FileLock(str(self.run_dir / LOCK_FILE), timeout=0)

    @property
    def is_held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> RunLock:
        """Take the lock now or raise `RunLocked`; `RunDirectoryError` when the directory cannot
        be created or locked (a read-only ``run.root``). Acquiring a lock this object holds is a no-op."""
        if self._lock.is_locked:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunDirectoryError(f"cannot create run directory {self.run_dir}: {error.strerror or error}") from None
        deadline = None
        while True:
            try:
                self._lock.acquire()
                break
            except Timeout:
                owner = read_owner(self.run_dir)
                # A live holder (or one on another host) is refused at once. A missing record or
                # a dead holder's: the holder is writing its record, or the dead holder's forked
                # children still share the lock for a moment; look again until the grace ends.
                if owner is not None and not _gone(owner):
                    raise RunLocked(self.run_dir, owner) from None
                deadline = deadline or time.monotonic() + self.orphan_grace
                if time.monotonic() >= deadline:
                    raise RunLocked(self.run_dir, owner) from None
                time.sleep(self.poll)
            except OSError as error:
                raise RunDirectoryError(
                    f"cannot lock run directory {self.run_dir}: {error.strerror or error}"
                ) from None
        # A clean release deletes the record before unlocking: one still here is a dead holder's.
        previous = read_owner(self.run_dir)
        if previous is not None:
            print(
                f"adadim: run {self.run_dir} was left locked by PID {previous.get('pid')} on {previous.get('host')}, "
                "which is gone; taking it over",
                file=sys.stderr,
            )
        try:
            self._write_owner()
        except OSError as error:
            self._lock.release()
            raise RunDirectoryError(
                f"cannot write in run directory {self.run_dir}: {error.strerror or error}"
            ) from None
        return self

    def _write_owner(self) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        tmp = self.run_dir / f"{OWNER_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.run_dir / OWNER_FILE)

    def release(self) -> None:
        """Drop the owner record, then the lock (a no-op when not held)."""
        if not self._lock.is_locked:
            return
        try:
            (self.run_dir / OWNER_FILE).unlink(missing_ok=True)
        finally:
            self._lock.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def acquire_run_lock(run_dir: str | Path, orphan_grace: float = 10.0) -> RunLock:
    """Lock ``run_dir`` for this process (see `RunLock.acquire`); call ``.release()`` when done.
    A process that dies releases it without calling anything."""
    return RunLock(run_dir, orphan_grace).acquire()


def remove_unstarted(run_dir: str | Path) -> None:
    """Remove a run directory that holds nothing but its lock files: a run refused before it
    wrote anything leaves no folder behind. Call after releasing the lock."""
    run_dir = Path(run_dir)
    try:
        if {p.name for p in run_dir.iterdir()} <= {LOCK_FILE, OWNER_FILE}:
            for name in (OWNER_FILE, LOCK_FILE):
                (run_dir / name).unlink(missing_ok=True)
            run_dir.rmdir()
    except OSError:
        pass  # another writer got in, or the folder is not ours to tidy: leave it
