"""Analysis runs off the reconcile workers: a bounded pool, one run at a time per ModelDeployment.

A reconcile that finds a run due starts it here and goes on without waiting; the run's endpoints
may take their whole timeout (a webhook up to 300 s) without holding a reconcile worker, so one
team's slow or dead endpoint never delays another team's rollback. When a run finishes, `notify`
asks for a reconcile of its ModelDeployment, which takes the finished run and folds it in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from modeldeploy.api.status import Measurement

log = logging.getLogger("modeldeploy.analysis")
Key = tuple[str, str]  # (namespace, name)
# Runs taken at once, across all ModelDeployments (each has at most one going): their endpoints' waits hold these
# threads, never a reconcile's.
ANALYSIS_WORKERS = 8


@dataclass(frozen=True)
class Finished:
    """A run's measurements, the revision it measured and when it began."""

    revision: int
    started: datetime
    measurements: tuple[Measurement, ...]
    # The request count of a warm-up by requests, measured with the run (None: not asked for, or not known).
    requests: float | None = None


class AnalysisRuns:
    """With `workers` > 0, runs go to a pool of that many threads; with 0 they run at once, in the caller's
    thread (for one-shot callers such as a benchmark or a test that drives reconciles by hand)."""

    def __init__(self, workers: int, notify: Callable[[str, str], None] = lambda _ns, _name: None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analysis") if workers else None
        self._notify = notify
        self._lock = threading.Lock()
        self._running: set[Key] = set()
        self._finished: dict[Key, Finished] = {}

    def running(self, key: Key) -> bool:
        with self._lock:
            return key in self._running

    def finished(self, key: Key) -> bool:
        """Is a verdict waiting for this ModelDeployment's next reconcile?"""
        with self._lock:
            return key in self._finished

    def take(self, key: Key) -> Finished | None:
        """The finished run of this ModelDeployment, if any; it is handed out once."""
        with self._lock:
            return self._finished.pop(key, None)

    def give_back(self, key: Key, run: Finished) -> None:
        """A taken run whose reconcile failed before its status was written: the next reconcile takes it again, so
        the evidence a verdict rests on is never lost to a refused write (unless a newer run has finished)."""
        with self._lock:
            self._finished.setdefault(key, run)

    def start(self, key: Key, revision: int, started: datetime, measure: Callable[[], tuple[Measurement, ...]],
              count: Callable[[], float | None] | None = None) -> None:
        """Run `measure` (and `count`, a warm-up's request count, when given) for this ModelDeployment unless a
        run of it is already going."""
        with self._lock:
            if key in self._running:
                return
            self._running.add(key)
        if self._pool is None:
            self._finish(key, revision, started, measure, count)
        else:
            self._pool.submit(self._finish, key, revision, started, measure, count)

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone: drop its finished run (a running one ends unread)."""
        with self._lock:
            self._finished.pop(key, None)

    def _finish(self, key: Key, revision: int, started: datetime, measure: Callable[[], tuple[Measurement, ...]],
                count: Callable[[], float | None] | None) -> None:
        try:
            # The count first: requests it counts were served before the run's measurements were taken.
            requests = count() if count is not None else None
            measurements = measure()
        except Exception:  # a provider bug must not kill the pool's thread or leave the key running forever
            log.exception("%s/%s: the analysis run failed", *key)
            measurements, requests = (), None
        with self._lock:
            self._running.discard(key)
            if measurements:
                self._finished[key] = Finished(revision, started, measurements, requests)
        if self._pool is not None:
            self._notify(*key)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
