"""A client-side rate limiter shared by every worker thread of a run."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Token bucket: at most `rate` requests per second on average, bursts up to `burst`. 0 = unlimited.

    The default burst is 1: requests are evenly spaced, so even a server that counts over a short rolling
    window never sees more than `rate` in any second.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                delay = (1 - self._tokens) / self.rate
            time.sleep(delay)
            waited += delay
