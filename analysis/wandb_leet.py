"""Read an offline `.wandb` file through W&B's own reader first, our parser second.

Design notes: docs/dashboards.md, "Design notes: wandb_leet".
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
from pathlib import Path

from .wandb_file import empty_run, read_run

WANDB_READER = "wandb-leet"
OWN_READER = "adadim"
READERS = ("auto", WANDB_READER, OWN_READER)
READER_VARIABLE = "ADADIM_WANDB_READER"

# The core's notice for a file whose last record is cut short (a run still writing, or
# killed): the records before it are complete, as our parser also reads them.
TORN_TAIL_NOTICE = "reached the end of an incomplete .wandb file"
SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class LeetUnavailable(RuntimeError):
    """W&B's reader is missing, or it could not read this file cleanly."""


@functools.cache
def leet_command() -> tuple[str, ...] | None:
    """The core command that prints a `.wandb` file as JSON lines, or None when the installed
    wandb has none."""
    try:
        from wandb.util import get_core_path

        core = get_core_path()
        usage = subprocess.run([core, "leet", "inspect", "-h"], capture_output=True, text=True, timeout=60)
    except Exception:  # no wandb, no core for this platform, or it does not start
        return None
    if "-json" not in usage.stdout + usage.stderr:
        return None
    return (core, "leet", "inspect", "--no-observability", "--json")


def _plain(value):
    """A value from the core's JSON, with float NaN and infinities back as floats."""
    if isinstance(value, str):
        return SPECIAL_FLOATS.get(value, value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def leet_records(path: str | Path) -> list[dict]:
    """Every record of the file as W&B's core prints it (``{"num", "type", <type>: {...}}``)."""
    command = leet_command()
    if command is None:
        raise LeetUnavailable("the installed wandb has no `wandb leet inspect --json` (it came in wandb 0.31)")
    path = Path(path).resolve()
    done = subprocess.run(
        [*command, "--run-file", str(path), str(path.parent.parent)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    notices = [line for line in done.stderr.splitlines() if line.strip() and TORN_TAIL_NOTICE not in line]
    if done.returncode != 0 or notices:
        first = notices[0] if notices else f"exit code {done.returncode}"
        raise LeetUnavailable(f"{path}: W&B's reader: {first}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def read_run_leet(path: str | Path) -> dict:
    """`read_run` through W&B's own reader: the same dict (id, config, history, summary,
    exit_code)."""
    run = empty_run()
    for record in leet_records(path):
        kind = record.get("type")
        body = record.get(kind) or {}
        if kind == "run":
            run["id"] = body.get("run_id")
            run["config"].update(_plain(body.get("config", {}).get("update", {})))
        elif kind == "config":
            run["config"].update(_plain(body.get("update", {})))
        elif kind == "history":
            row = _plain(body.get("item", {}))
            if "step" in body:
                row.setdefault("_step", body["step"].get("num", 0))
            run["history"].append(row)
        elif kind == "summary":
            run["summary"].update(_plain(body.get("update", {})))
        elif kind == "exit":
            run["exit_code"] = body.get("exit_code", 0)
    return run


def read_offline_run(path: str | Path, reader: str | None = None) -> tuple[dict, str]:
    """One offline `.wandb` file as `read_run`'s dict, and the name of the reader that served it:
    W&B's own (``"wandb-leet"``) when it can read the file cleanly, else ours (``"adadim"``).
    ``reader`` (default: the environment variable ADADIM_WANDB_READER, else ``"auto"``) forces
    one of them."""
    if reader is None:
        reader = os.environ.get(READER_VARIABLE) or "auto"
        if reader not in READERS:
            raise ValueError(f"{READER_VARIABLE}={reader!r}: choose one of {', '.join(READERS)}")
    if reader not in READERS:
        raise ValueError(f"unknown .wandb reader {reader!r}; choose one of {', '.join(READERS)}")
    if reader != OWN_READER:
        try:
            return read_run_leet(path), WANDB_READER
        except LeetUnavailable:
            if reader == WANDB_READER:
                raise
    return read_run(path), OWN_READER
