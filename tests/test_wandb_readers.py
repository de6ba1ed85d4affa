"""W&B's own reader of offline `.wandb` files (`wandb leet inspect --json`) against our parser:
value for value on the trainer's files and on a plain-wandb file, the fallback between them,
and the errors for files neither can read."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from adadim.analysis import load_runs, wandb_leet
from adadim.analysis.wandb_file import FILE_HEADER, CorruptWandbFile, UnsupportedWandbFile, read_run
from adadim.analysis.wandb_leet import LeetUnavailable, leet_command, read_offline_run, read_run_leet
from adadim.training.config import load_config
from adadim.training.trainer import train
from trainer_helpers import history, tiny_overrides
from wandb_writer import write_plain_run

needs_leet = pytest.mark.skipif(
    leet_command() is None, reason="the installed wandb has no `wandb leet inspect --json` (wandb >= 0.31)"
)


def same(a, b, numeric: bool = False) -> bool:
    """Equal values of the same kind, NaN equal to NaN, recursively. ``numeric``: an int equals
    a float of the same value (W&B's JSON writes an integral float of a config or summary as an int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, numeric) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], numeric) for k in a)
    kinds_match = type(a) is type(b) or (numeric and {type(a), type(b)} == {int, float})
    return kinds_match and a == b


def assert_same_run(ours: dict, theirs: dict) -> None:
    assert ours["id"] == theirs["id"] and ours["exit_code"] == theirs["exit_code"]
    for part in ("config", "summary"):
        keys = ours[part].keys() | theirs[part].keys()
        diff = {k for k in keys if not same(ours[part].get(k), theirs[part].get(k), True)}
        assert not diff, f"{part} differs at {sorted(diff)[:5]}"
    assert len(ours["history"]) == len(theirs["history"])
    for row, (a, b) in enumerate(zip(ours["history"], theirs["history"], strict=True)):
        assert a.keys() == b.keys(), f"history row {row}: keys differ"
        for key in a:  # every history value, kind included
            assert same(a[key], b[key]), f"history row {row}, {key}: {a[key]!r} != {b[key]!r}"


def wandb_file(directory: Path) -> Path:
    (found,) = directory.glob("**/offline-run-*/run-*.wandb")
    return found


def wait_for_exit_record(path: Path, timeout: float = 60) -> None:
    """wandb's finish() can return before its core has written the exit record (seen with
    wandb 0.31, in-process): wait for it, or the readers would see a run still writing."""
    deadline = time.monotonic() + timeout
    while read_run(path)["exit_code"] is None:
        assert time.monotonic() < deadline, f"{path}: no exit record after {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(load_config(None, tiny_overrides(root, "wb-readers", **{"wandb.mode": "offline", "optim.epochs": 1})))
    wait_for_exit_record(wandb_file(root / "wb-readers" / "wandb"))
    return root / "wb-readers"


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plain")
    expected = write_plain_run(str(directory), "plain1")
    path = wandb_file(directory)
    wait_for_exit_record(path)
    return path, expected


@needs_leet
def test_readers_agree_on_every_history_value_of_a_trainer_run(trainer_run):
    path = wandb_file(trainer_run / "wandb")
    ours, theirs = read_run(path), read_run_leet(path)
    assert_same_run(ours, theirs)
    # Both against the trainer's own history (NaN is written there as null).
    logged = history(trainer_run)
    assert len(logged) >= 4 and [r["_step"] for r in theirs["history"]] == [r["trainer/step"] for r in logged]
    for want, got in zip(logged, theirs["history"], strict=True):
        for key, value in want.items():
            value = math.nan if value is None else value
            assert same(got[key], value, numeric=True), f"step {want['trainer/step']}, {key}"
    assert theirs["config"]["optim.lr"] == 0.5 and theirs["exit_code"] == 0
    assert read_offline_run(path)[1] == "wandb-leet"


@needs_leet
def test_readers_agree_on_a_plain_wandb_file_and_on_what_was_logged(plain_run):
    path, expected = plain_run
    ours, theirs = read_run(path), read_run_leet(path)
    assert_same_run(ours, theirs)
    for got in (ours, theirs):
        assert got["id"] == expected["id"] and got["exit_code"] == expected["exit_code"]
        assert same({k: v for k, v in got["config"].items() if k != "_wandb"}, expected["config"], numeric=True)
        assert same(got["summary"]["best"], expected["summary"]["best"])
        assert len(got["history"]) == len(expected["history"])
        for row, want in zip(got["history"], expected["history"], strict=True):
            logged = {k: v for k, v in row.items() if k not in ("_runtime", "_timestamp")}
            assert same(logged, want, numeric=True), (logged, want)


@needs_leet
def test_a_torn_last_record_reads_the_complete_records_in_both(plain_run, tmp_path):
    path, expected = plain_run
    data = path.read_bytes()
    torn = tmp_path / "wandb" / "offline-run-x" / "run-torn.wandb"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(data[: len(data) - 40])  # a crash mid-write: the exit record is cut
    ours, (theirs, reader) = read_run(torn), read_offline_run(torn)
    assert reader == "wandb-leet" and ours["exit_code"] is None
    assert_same_run(ours, theirs)
    assert len(theirs["history"]) == len(expected["history"])


@needs_leet
def test_a_corrupt_record_falls_back_to_our_parser_and_its_error(plain_run, tmp_path):
    path, _ = plain_run
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    broken = tmp_path / "run-broken.wandb"
    broken.write_bytes(bytes(data))
    with pytest.raises(LeetUnavailable, match="corrupt"):
        read_run_leet(broken)  # W&B's reader skips the bad record and says so: not a clean read
    with pytest.raises(CorruptWandbFile, match="checksum mismatch"):
        read_offline_run(broken)
    with pytest.raises(LeetUnavailable):
        read_offline_run(broken, reader="wandb-leet")


def test_an_unknown_format_version_is_refused_in_one_line(plain_run, tmp_path):
    path, _ = plain_run
    data = path.read_bytes()
    newer = tmp_path / "run-newer.wandb"
    newer.write_bytes(FILE_HEADER[:-1] + bytes([7]) + data[len(FILE_HEADER) :])
    with pytest.raises(UnsupportedWandbFile, match="format version 7; this parser reads version 0") as error:
        read_offline_run(newer)
    assert "\n" not in str(error.value)
    foreign = tmp_path / "run-foreign.wandb"
    foreign.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(CorruptWandbFile, match="not a W&B transaction log"):
        read_offline_run(foreign)


def test_without_wandbs_reader_ours_serves_the_same_run(plain_run, monkeypatch):
    path, _ = plain_run
    monkeypatch.setattr(wandb_leet, "leet_command", lambda: None)  # as with wandb 0.30
    run, reader = read_offline_run(path)
    assert reader == "adadim"
    assert_same_run(run, read_run(path))
    with pytest.raises(LeetUnavailable, match=r"wandb 0\.31"):
        read_offline_run(path, reader="wandb-leet")
    with pytest.raises(ValueError, match=r"unknown \.wandb reader"):
        read_offline_run(path, reader="fastest")


def test_the_reader_can_be_chosen_by_environment(plain_run, monkeypatch):
    path, _ = plain_run
    monkeypatch.setenv("ADADIM_WANDB_READER", "adadim")
    assert read_offline_run(path)[1] == "adadim"
    monkeypatch.setenv("ADADIM_WANDB_READER", "bogus")
    with pytest.raises(ValueError, match="ADADIM_WANDB_READER"):
        read_offline_run(path)


@needs_leet
def test_load_runs_records_which_reader_served_each_run(trainer_run, monkeypatch):
    first = load_runs(trainer_run / "wandb", progress=False, cache_dir=None)
    assert first.runs.loc["wb-readers", "reader"] == "wandb-leet"
    monkeypatch.setenv("ADADIM_WANDB_READER", "adadim")
    second = load_runs(trainer_run / "wandb", progress=False, cache_dir=None)
    assert second.runs.loc["wb-readers", "reader"] == "adadim"
    # The same tables; only the column order differs (W&B's reader sorts a record's keys).
    pd.testing.assert_frame_equal(first.history.sort_index(axis=1), second.history.sort_index(axis=1))
    runs = [rs.runs.drop(columns="reader").sort_index(axis=1) for rs in (first, second)]
    pd.testing.assert_frame_equal(*runs, check_dtype=False)  # an integral float config value reads as an int


@pytest.mark.wandb_compat
def test_files_written_by_another_wandb_version(tmp_path):
    """CI tests the wandb that pip installs (the newest). To check another version, write its
    offline files in a throwaway venv and read them here:

        python3 -m venv /tmp/wb-old && /tmp/wb-old/bin/pip install 'wandb==0.19.*'
        ADADIM_WANDB_COMPAT_PYTHON=/tmp/wb-old/bin/python .venv/bin/python -m pytest -m wandb_compat \
            tests/test_wandb_readers.py
    """
    python = os.environ.get("ADADIM_WANDB_COMPAT_PYTHON")
    if not python:
        pytest.skip("set ADADIM_WANDB_COMPAT_PYTHON to the python of a venv with another wandb (see the docstring)")
    writer = Path(__file__).with_name("wandb_writer.py")
    subprocess.run([python, str(writer), str(tmp_path), "old1"], check=True, capture_output=True, timeout=300)
    expected = json.loads((tmp_path / "expected.json").read_text())
    path = wandb_file(tmp_path / "wandb")
    wait_for_exit_record(path)
    ours = read_run(path)
    assert len(ours["history"]) == len(expected["history"]), f"written by wandb {expected['wandb']}"
    for row, want in zip(ours["history"], expected["history"], strict=True):
        assert same({k: v for k, v in row.items() if k not in ("_runtime", "_timestamp")}, want, numeric=True)
    if leet_command() is not None:
        assert_same_run(ours, read_run_leet(path))
    import wandb

    print(f"wandb {expected['wandb']} wrote it; read by ours and by wandb {wandb.__version__}'s reader")
