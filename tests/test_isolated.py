"""`in_child` (isolated.py): a call runs in a real child process that exits, its result or exception comes back,
and a stop signal to the parent stops the child and leaves none behind. Real processes, no mocks."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spotify_pipeline.errors import ApiError, PipelineError, RetryWaitTooLong
from spotify_pipeline.isolated import in_child

ROOT = Path(__file__).resolve().parents[1]


def gone(pid: int) -> bool:
    """The process has exited (a zombie whose parent is not ours to reap counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def children() -> set[int]:
    """This process's live children, from /proc."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # exited while we looked
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()):
            found.add(int(status.parent.name))
    return found


@contextmanager
def reaped(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process, killed and waited for on the way out if it is still running (a test that fails midway
    leaves nothing behind)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def fail_with_api_error(url: str) -> None:
    raise ApiError("the API said no", status=503, url=url, retriable=True, hint="try later")


def fail_unrebuildable() -> None:
    raise RetryWaitTooLong("asked to wait 3600 s", retry_after=3600, quota_exceeded=True)


def log_a_warning(message: str) -> None:
    logging.getLogger("spotify_pipeline.isolated_test").warning(message)


def sleep_after_writing_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_the_call_runs_in_a_child_that_exits_and_its_result_comes_back() -> None:
    before = children()
    pid = in_child(os.getpid)
    assert pid != os.getpid() and gone(pid)
    assert in_child(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    assert children() == before


def test_an_exception_comes_back_with_its_type_and_details() -> None:
    with pytest.raises(ApiError) as raised:
        in_child(fail_with_api_error, "https://api.example/v1/me")
    assert (raised.value.status, raised.value.url, raised.value.hint) == (503, "https://api.example/v1/me", "try later")
    assert str(raised.value) == "the API said no (try later)"


def test_the_child_logs_in_the_parents_format(capfd: pytest.CaptureFixture[str]) -> None:
    """`--log-format json` set up here holds in the child too (the run's warnings stay JSON lines)."""
    from spotify_pipeline.cli.main import _setup_logging

    logger = logging.getLogger("spotify_pipeline")
    saved = logger.handlers[:], logger.level
    try:
        _setup_logging("json", False)
        capfd.readouterr()
        in_child(log_a_warning, "from the child")
        line = capfd.readouterr().err.strip()
    finally:
        logger.handlers[:], logger.level = saved
    assert json.loads(line)["msg"] == "from the child" and json.loads(line)["level"] == "warning"


def test_an_exception_that_cannot_be_rebuilt_comes_back_as_a_pipeline_error_with_its_exit_code() -> None:
    with pytest.raises(PipelineError) as raised:
        in_child(fail_unrebuildable)
    assert "asked to wait 3600 s" in str(raised.value) and raised.value.exit_code == 5


def parent_waiting_on_a_sleeping_child(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A parent as the CLI runs one (signals raised as `Interrupted`), waiting on a child that sleeps; the
    child's pid once it runs."""
    marker = tmp_path / "child.pid"
    script = (
        "import sys\n"
        "from spotify_pipeline.cli.common import stop_on_signals\n"
        "from spotify_pipeline.errors import Interrupted\n"
        "from spotify_pipeline.isolated import in_child\n"
        "from tests.test_isolated import sleep_after_writing_pid\n"
        "try:\n"
        "    with stop_on_signals():\n"
        f"        in_child(sleep_after_writing_pid, {str(marker)!r})\n"
        "except Interrupted as exc:\n"
        "    print('stopped:', exc.reason)\n"
        "    sys.exit(exc.exit_code)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        if time.monotonic() > deadline or parent.poll() is not None:
            parent.kill()
            raise AssertionError(parent.communicate())
        time.sleep(0.05)
    return parent, int(marker.read_text())


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10  # the signal takes a moment to arrive
    while not gone(pid):
        assert time.monotonic() < deadline, f"child {pid} still running"
        time.sleep(0.05)


def test_sigterm_to_the_parent_stops_the_child_and_leaves_none_behind(tmp_path: Path) -> None:
    """SIGTERM to the parent alone reaches the child (its own session) once, which stops and reports; the
    parent exits 143, as the CLI does."""
    parent, child = parent_waiting_on_a_sleeping_child(tmp_path)
    with reaped(parent):
        parent.send_signal(signal.SIGTERM)
        out, err = parent.communicate(timeout=60)
    assert parent.returncode == 143, err
    assert "stopped: terminated (SIGTERM)" in out and "Traceback" not in err
    wait_gone(child)


def test_a_parent_killed_outright_takes_its_child_with_it(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) gives the parent no chance to forward anything: the child still stops."""
    parent, child = parent_waiting_on_a_sleeping_child(tmp_path)
    parent.kill()
    parent.communicate(timeout=60)
    wait_gone(child)


def exit_hard() -> None:
    os._exit(7)


def test_a_child_that_dies_without_reporting_is_one_line_error() -> None:
    with pytest.raises(PipelineError) as raised:
        in_child(exit_hard)
    assert "exited (7) before reporting its result" in str(raised.value) and "\n" not in str(raised.value)
