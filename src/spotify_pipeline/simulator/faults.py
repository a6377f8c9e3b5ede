"""Faults the simulator serves on demand: rate limits, 429 storms, 5xx, dropped connections, slowness."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

FaultKind = Literal[
    "429",
    "quota",
    "500",
    "502",
    "503",
    "drop",
    "truncate",
    "malformed",
    "slow",
    "unknown_field",
    "missing_items",
    "bad_type",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
# Faults that answer 200 with a changed body instead of failing the request.
BODY_FAULTS = frozenset({"unknown_field", "missing_items", "bad_type"})


@dataclass
class Fault:
    """A scripted fault: served to the next `count` requests whose path starts with `path_prefix`."""

    kind: FaultKind
    count: int = 1
    path_prefix: str = "/v1/"
    retry_after: int = 1
    delay_ms: int = 500

    def matches(self, path: str) -> bool:
        return path.startswith(self.path_prefix)


@dataclass
class FaultPlan:
    """Standing fault settings plus a queue of scripted faults. Thread-safe."""

    latency_ms: int = 0
    rate_limit: int = 0  # max requests per window; 0 = unlimited
    rate_window_s: float = 30.0
    error_rate: float = 0.0  # share of API requests answered with a random 500/502/503
    drop_rate: float = 0.0  # share of API requests whose connection is dropped
    seed: int = 0
    _queue: list[Fault] = field(default_factory=list)
    _recent: collections.deque[float] = field(default_factory=collections.deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # nosec B311

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def next_fault(self, path: str) -> Fault | None:
        """The fault to serve for this request, if any: scripted first, then rate limit, then random."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._queue.remove(fault)
                    return Fault(fault.kind, 1, fault.path_prefix, fault.retry_after, fault.delay_ms)
            if not path.startswith("/v1/"):
                return None
            if self.rate_limit:
                now = time.monotonic()
                while self._recent and now - self._recent[0] >= self.rate_window_s:
                    self._recent.popleft()
                if len(self._recent) >= self.rate_limit:
                    wait = self.rate_window_s - (now - self._recent[0])
                    return Fault("429", retry_after=max(1, int(wait + 0.999)))
                self._recent.append(now)
            if self.error_rate and self._rng.random() < self.error_rate:
                return Fault(self._rng.choice(("500", "502", "503")))  # type: ignore[arg-type]
            if self.drop_rate and self._rng.random() < self.drop_rate:
                return Fault("drop")
        return None
