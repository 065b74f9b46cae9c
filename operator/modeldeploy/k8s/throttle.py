"""A client-side rate limit on API requests: a token bucket, as client-go's flowcontrol has.

`burst` requests may go at once; after that, `qps` a second. A restart with thousands of ModelDeployments,
or a fleet-wide rollout, then spreads its writes out instead of flooding the API server, which would
otherwise answer 429 to this operator and to every other client sharing its priority level.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Thread-safe; a request reserves its slot under the lock and sleeps outside it, so waiters queue in order."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._at = clock()
        self.waited = 0.0  # seconds requests spent waiting, in total (a metric)

    def wait(self) -> float:
        """Block until this request may go; how long it waited."""
        if self.qps <= 0:
            return 0.0  # no limit
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1
            delay = -self._tokens / self.qps if self._tokens < 0 else 0.0
            self.waited += delay
        if delay > 0:
            self._sleep(delay)
        return delay
