from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time

from spotify_pipeline.extract.ratelimit import RateLimiter
from spotify_pipeline.extract.retry import RetryPolicy, parse_retry_after


def test_retry_after_seconds_and_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)
    waits = [policy.backoff(n, rng) for n in range(1, 8)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0
    assert all(w <= 5.0 for w in waits) and max(waits) > 2.5


def test_rate_limiter_spaces_requests_across_threads() -> None:
    limiter = RateLimiter(rate=50, burst=1)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    # 20 requests at 50/s with no burst take at least 19 intervals of 20 ms.
    assert stamps[-1] - stamps[0] >= 19 / 50 * 0.95


class _FakeTime:
    """A clock that sleeps exactly as asked, except the sleeps listed in `late`, which overrun."""

    def __init__(self, late: dict[int, float]) -> None:
        self.now, self.sleeps, self.late = 100.0, 0, late

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds + self.late.get(self.sleeps, 0.0)


def test_a_late_wake_does_not_bunch_the_requests_after_it() -> None:
    # The first wait overruns by 60 ms (a stalled process). Sending then, and giving the next request its
    # slot, already past, would put two requests at the same instant (the old limiter did: gap 0).
    fake = _FakeTime(late={1: 0.060})
    limiter = RateLimiter(rate=50, burst=1, pacing=1.0, clock=fake.clock, sleep=fake.sleep)
    sent = []
    for _ in range(6):
        limiter.acquire()
        sent.append(fake.now)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 1 / 50 - 1e-9, gaps
    # Nothing is lost beyond the stall itself: six requests take five intervals plus the overrun.
    assert sent[-1] - sent[0] <= 5 / 50 + 0.060 + 1e-9


def test_an_idle_limiter_allows_its_burst_at_once() -> None:
    fake = _FakeTime(late={})
    limiter = RateLimiter(rate=50, burst=5, pacing=1.0, clock=fake.clock, sleep=fake.sleep)
    limiter.acquire()
    fake.now += 10  # idle: the next five requests may go at once, the sixth waits its interval
    waits = [limiter.acquire() for _ in range(6)]
    assert waits[:5] == [0.0] * 5 and abs(waits[5] - 1 / 50) < 1e-9, waits
