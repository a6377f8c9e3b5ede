"""A client-side rate limiter shared by every worker thread of a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Requests are paced at this share of the configured rate: a request leaves the limiter at its slot but
# reaches the server a few milliseconds later or earlier (thread scheduling, connection reuse), and at
# exactly the limit that jitter puts one request too many into some rolling window. Each 429 then pauses
# every worker for a whole `Retry-After`, which costs far more than the 5% (see docs/BENCHMARKS.md).
PACING = 0.95


class RateLimiter:
    """At most `rate` requests per second on average, bursts up to `burst`. 0 = unlimited.

    Each request reserves the next slot on a fixed grid (1/rate apart) and sleeps until it. Slots are
    not lost when a thread wakes a little late, so the achieved rate is the configured one; a token bucket
    capped at one token loses every oversleep instead (about 15% at 50 req/s, measured). A thread that
    wakes more than one interval late (the process was stalled) takes a fresh slot instead of sending:
    the threads holding the next slots were stalled too, and sending them all at once is a burst that a
    server counting over a rolling window answers with 429. The default burst is 1: requests are evenly
    spaced. `pacing` is the share of `rate` actually used.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        pacing: float = PACING,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate * pacing
        self.burst = max(1.0, burst)
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        interval = 1.0 / self.rate
        started = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                # An idle limiter has no backlog: the earliest slot is now, minus the allowed burst.
                slot = max(self._next_slot, now - (self.burst - 1) * interval)
                self._next_slot = slot + interval
            if slot <= now:
                return now - started
            self._sleep(slot - now)
            woke = self._clock()
            if woke - slot <= interval:
                return woke - started
