"""The threads reconciles run on, protective work first.

A reconcile blocks (the API client is synchronous), so it runs on a thread. The threads take work from one
queue in order of priority, then arrival: a reconcile that can protect serving (a rollout in flight, which
may need a rollback, or an analysis verdict waiting to be acted on) never waits behind the routine ones of
thousands of settled ModelDeployments, such as those an operator restart resumes all at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from modeldeploy.api.status import Phase

T = TypeVar("T")
URGENT, ROUTINE = 0, 1
# As many as Python's default executor; more do not help when the CPUs, not the threads, are the limit.
THREADS = min(32, (os.cpu_count() or 1) + 4)
# Phases in which a rollout is in flight: the next reconcile may have to roll back or promote.
IN_FLIGHT = frozenset({Phase.PROGRESSING.value, Phase.PAUSED.value, Phase.DEGRADED.value})


def priority(md: dict[str, Any] | None, verdict_waiting: bool) -> int:
    """How urgent a reconcile is, from the ModelDeployment as the cache holds it and its analysis: a rollout in
    flight, a verdict waiting, or a spec not yet acted on (a new version, a fix) comes first."""
    if md is None:
        return ROUTINE  # not seen yet; its watch event follows at once
    status = md.get("status") or {}
    if verdict_waiting or status.get("phase") in IN_FLIGHT or status.get("canaryRevision") is not None:
        return URGENT
    if (md.get("metadata") or {}).get("generation") != status.get("observedGeneration"):
        return URGENT
    return ROUTINE


class Workers:
    def __init__(self, threads: int = THREADS) -> None:
        self._threads = threads
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._started: list[threading.Thread] = []

    async def run(self, priority: int, fn: Callable[[], T]) -> T:
        """Run fn on a worker thread when its turn comes; its result (or exception) back on this loop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting coroutine, which raises it
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, result, None)

        with self._ready:
            heapq.heappush(self._queue, (priority, next(self._order), job))
            if len(self._started) < self._threads:
                thread = threading.Thread(target=self._work, name=f"reconcile-{len(self._started)}", daemon=True)
                self._started.append(thread)
                thread.start()
            self._ready.notify()
        return await done

    def waiting(self) -> int:
        with self._ready:
            return len(self._queue)

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                _, _, job = heapq.heappop(self._queue)
            job()


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
