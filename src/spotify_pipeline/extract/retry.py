"""Retry policy as data: which failures are retried, how long to wait, and the cap on `Retry-After`."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass, field

RETRIABLE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for 5xx and connection errors; 429 waits `Retry-After`."""

    max_retries: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_wait: float = 120.0  # the longest Retry-After we accept; beyond it the run stops cleanly
    statuses: frozenset[int] = field(default=RETRIABLE_STATUSES)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)  # nosec B311


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date. None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())
