"""Named points where the fault-injection tests kill the process with SIGKILL, to prove a crash there loses
nothing. Inert unless SPOTIFY_PIPELINE_CRASH_AT is set (to `<point>` or `<point>:<n>`, the n-th pass).

Points: extract.page_stored, raw.temp_written (a raw file's bytes are on disk under a temporary name),
raw.part_written, transform.table_committed (after each table's commit), transform.tables_committed (after the
bookkeeping commit), transform.run_recorded (after a run's own pipeline_runs line, the publish's last
commit), transform.published (after the publish journal is removed), history.raw_run_written (an import's raw
run written, its publish not begun), repair.catalog_swapped (a repair's new catalog renamed into place, its
renumbered publish journal not yet). tests/reliability kills a run at each extract, raw and transform point;
tests/history/test_import_publish.py and tests/tables/test_portable.py kill at the last two. With
SPOTIFY_PIPELINE_CRASH_SIGNAL=SIGSTOP the process stops itself there instead, so a test can look at the lake
while a live run is paused at that point, then let it go on (SIGCONT) or kill it.
"""

from __future__ import annotations

import collections
import os
import signal
import threading

ENV = "SPOTIFY_PIPELINE_CRASH_AT"
SIGNAL_ENV = "SPOTIFY_PIPELINE_CRASH_SIGNAL"  # SIGKILL (the default) or SIGSTOP
_passes: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _passes[name] += 1
        hit = _passes[name] == int(nth or 1)
    if hit:
        os.kill(os.getpid(), signal.SIGSTOP if os.environ.get(SIGNAL_ENV) == "SIGSTOP" else signal.SIGKILL)
