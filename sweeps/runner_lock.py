"""One runner per sweep folder, and one per study root.

Two `adadim sweep local` (or `adadim study`) processes on one folder would start the same
trials, report each other's trials as failed and overwrite each other's ``sweep.json``. The
runner holds the folder's OS lock (`filelock`, through the trainer's `RunLock`, which records
the holder's PID and host) for as long as it runs; a second one is refused at once, and the
lock goes with the process however it ends.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from pathlib import Path

from adadim.training.run_lock import RunDirectoryError, RunLock, RunLocked

from .spec import SweepError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def hold_runner_lock(folder: Path, what: str) -> RunLock:
    """Lock ``folder`` for this runner (``what``: "sweep folder", "study root") or raise
    `SweepError` in one line naming the holder. Call ``.release()`` when done."""
    try:
        return RunLock(folder, orphan_grace=2.0).acquire()
    except RunLocked as error:
        owner = error.owner or {}
        holder = f"PID {owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}" if owner else "unknown"
        raise SweepError(
            f"{what} {folder} is already being run by another process ({holder}); "
            "wait for it to finish, or stop it (its trials stop with it) and run again"
        ) from None
    except RunDirectoryError as error:
        raise SweepError(str(error).replace("run directory", what)) from None


def die_with_parent() -> None:
    """In a trial's process before it starts (``preexec_fn``): the kernel sends it SIGTERM when
    the runner dies, even by SIGKILL, so the trial checkpoints and stops instead of running on
    alone and holding its run lock against the next runner. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
