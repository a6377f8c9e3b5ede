"""The lake lock with real processes: many started at once behind a barrier, killed holders, foreign locks."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.errors import LakeError
from spotify_pipeline.lake.lock import LOCK_NAME, LakeLock

PROCESSES = 12
ROUNDS = 15
HOLD_S = 0.02


def _contend(root: str, barrier: Any, rounds: int, number: int) -> None:
    """One contender: each round, wait for everyone, try the lock, and while holding it prove no one else
    does (an O_EXCL marker file that only a holder creates and removes)."""
    lake = Path(root)
    marker = lake / "holder"
    for round_ in range(rounds):
        barrier.wait(timeout=60)
        try:
            with LakeLock(lake, "run"):
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    (lake / f"overlap-{round_}-{number}").touch()
                    time.sleep(HOLD_S)
                else:
                    os.close(fd)
                    (lake / f"held-{round_}-{number}").touch()
                    time.sleep(HOLD_S)
                    os.unlink(marker)
        except LakeError:
            pass
        barrier.wait(timeout=60)  # every holder has released before the next round starts


def test_processes_started_together_never_hold_the_lock_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    workers = [context.Process(target=_contend, args=(str(tmp_path), barrier, ROUNDS, n)) for n in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    overlaps = sorted(p.name for p in tmp_path.glob("overlap-*"))
    assert overlaps == [], f"{len(overlaps)} times a second process held the lock: {overlaps[:5]}"
    held_rounds = {int(p.name.split("-")[1]) for p in tmp_path.glob("held-*")}
    assert held_rounds == set(range(ROUNDS)), "every round, one process got the lock"


def test_a_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = _hold_in_subprocess(tmp_path)
    try:
        with pytest.raises(LakeError) as info, LakeLock(tmp_path, "transform"):
            pass
        assert f"another run (pid {holder.pid} " in str(info.value)
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    holder = _hold_in_subprocess(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()  # also closes its stdout pipe
    assert (tmp_path / LOCK_NAME).exists(), "a killed run leaves its lock file behind"
    with LakeLock(tmp_path, "run") as lock:
        assert lock.recovered_from is not None and lock.recovered_from["pid"] == holder.pid
    assert not (tmp_path / LOCK_NAME).exists(), "released cleanly"


def test_release_leaves_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    first = LakeLock(tmp_path, "run").__enter__()
    path.unlink()  # e.g. removed by hand while the first run went on
    with LakeLock(tmp_path, "run"):
        theirs = path.read_bytes()
        first.__exit__(None, None, None)
        assert path.read_bytes() == theirs, "releasing our lock must not delete another holder's"
        with pytest.raises(LakeError), LakeLock(tmp_path, "run"):
            pass
    assert not path.exists()


def test_a_corrupt_lock_file_with_no_holder_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with LakeLock(tmp_path, "run"):
        assert b"not json" not in path.read_bytes()


def _hold_in_subprocess(lake: Path) -> subprocess.Popen[str]:
    """A process that takes the lake's lock, says so, and holds it until killed."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from spotify_pipeline.lake.lock import LakeLock\n"
        "with LakeLock(Path(sys.argv[1]), 'run'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(lake)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "held":
        with contextlib.suppress(OSError):
            proc.kill()
        pytest.fail(f"the holder did not take the lock: {line!r}")
    return proc


def test_a_lock_file_nested_past_the_recursion_limit_is_taken_over(tmp_path: Path) -> None:
    """JSON nested past Python's recursion limit is a corrupt lock file like any other, not a crash."""
    path = tmp_path / LOCK_NAME
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000)
    with LakeLock(tmp_path, "run") as lock:
        assert lock.recovered_from == {"corrupt": True}
