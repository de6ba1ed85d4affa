"""The run-directory lock, against real processes: a live holder, a SIGKILLed one, and the
forked children a dead holder can leave behind for a moment."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from adadim.training.run_lock import (
    LOCK_FILE,
    OWNER_FILE,
    RunDirectoryError,
    RunLock,
    RunLocked,
    acquire_run_lock,
    read_owner,
)
from trainer_helpers import env

HOLDER = textwrap.dedent(
    """
    import sys, time
    from adadim.training.run_lock import acquire_run_lock
    lock = acquire_run_lock(sys.argv[1])
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes stdin (or kills us)
    lock.release()
    """
)

# A holder that forks a child sharing its lock, as a data-loader worker does, then waits to be killed.
FORKING_HOLDER = textwrap.dedent(
    """
    import fcntl, json, os, socket, sys, time
    run_dir, child_seconds = sys.argv[1], float(sys.argv[2])
    os.makedirs(run_dir, exist_ok=True)
    fd = os.open(os.path.join(run_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(os.path.join(run_dir, ".lock.owner"), "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}, f)
    if os.fork() == 0:
        time.sleep(child_seconds)
        os._exit(0)
    print("held", flush=True)
    time.sleep(600)
    """
)


def _start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


@pytest.mark.slow
def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start(HOLDER, str(run_dir))
    try:
        owner_before = (run_dir / OWNER_FILE).read_text()
        started = time.monotonic()
        with pytest.raises(RunLocked) as refused:
            acquire_run_lock(run_dir)
        assert time.monotonic() - started < 1.0
        assert refused.value.pid == holder.pid
        assert f"PID {holder.pid} on" in str(refused.value) and "\n" not in str(refused.value)
        assert (run_dir / OWNER_FILE).read_text() == owner_before  # the refused writer changed nothing
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    # A clean release leaves no owner record, and the next writer takes the lock silently.
    assert not (run_dir / OWNER_FILE).exists() and (run_dir / LOCK_FILE).exists()
    with RunLock(run_dir) as lock:
        assert lock.is_held and read_owner(run_dir)["pid"] == os.getpid()
    assert not (run_dir / OWNER_FILE).exists()


@pytest.mark.slow
def test_the_lock_of_a_sigkilled_holder_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = _start(HOLDER, str(run_dir))
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert read_owner(run_dir)["pid"] == holder.pid  # the dead holder's record is still there
    lock = acquire_run_lock(run_dir, orphan_grace=0.0)
    try:
        assert read_owner(run_dir)["pid"] == os.getpid()
        assert f"left locked by PID {holder.pid}" in capsys.readouterr().err
        # And this process now refuses a third writer, in another process.
        probe = subprocess.run(
            [sys.executable, "-c", HOLDER, str(run_dir)], capture_output=True, text=True, env=env(), timeout=60
        )
        assert probe.returncode != 0 and f"PID {os.getpid()} on" in probe.stderr
    finally:
        lock.release()


@pytest.mark.slow
def test_forked_children_of_a_killed_holder_delay_the_takeover_until_they_exit(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start(FORKING_HOLDER, str(run_dir), "2.0")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    # The child still shares the flock: without a grace period the takeover is refused.
    with pytest.raises(RunLocked):
        acquire_run_lock(run_dir, orphan_grace=0.1)
    started = time.monotonic()
    lock = acquire_run_lock(run_dir, orphan_grace=30.0)
    waited = time.monotonic() - started
    lock.release()
    assert 0.2 < waited < 10.0


def test_an_unwritable_run_root_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirectoryError, match="cannot create run directory") as refused:
        acquire_run_lock(blocker / "runs" / "r0")
    assert "\n" not in str(refused.value)
    assert blocker.read_text() == "not a folder"


def test_owner_record_is_json_with_pid_host_and_time(tmp_path):
    with RunLock(tmp_path / "run"):
        record = json.loads((tmp_path / "run" / OWNER_FILE).read_text())
    assert set(record) == {"pid", "host", "since"} and record["pid"] == os.getpid()
