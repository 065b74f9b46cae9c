"""One reconcile at a time per ModelDeployment, with bursts of triggers coalesced.

A trigger that arrives while a reconcile of the same object waits to start
adds nothing: that reconcile will read the newest state anyway. Failures and
time-based steps come back through a timer, never a polling loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from modeldeploy.reconcile.core import Result

log = logging.getLogger("modeldeploy.queue")
Key = tuple[str, str]
RETRY_SECONDS = (1, 2, 5, 10, 30)


@dataclass(frozen=True)
class Hold:
    """A gate's answer that this process must not reconcile now (e.g. another replica is active)."""

    reason: str
    retry_after: float | None = None  # None: drop the trigger and its timers; a new event brings it back


# Asked before every reconcile, with the object's namespace: None lets it run.
Gate = Callable[[str], Awaitable[Hold | None]]


class Coalescer:
    def __init__(self, run: Callable[[str, str], Awaitable[Result]],
                 observe: Callable[[Key, Result | None, BaseException | None], None] | None = None,
                 gate: Gate | None = None) -> None:
        self._run = run
        self._observe = observe
        self._gate = gate
        self._locks: dict[Key, asyncio.Lock] = {}
        self._pending: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._deleted: set[Key] = set()  # deleted while a reconcile of theirs was running

    async def trigger(self, namespace: str, name: str) -> None:
        """Reconcile now, or fold into a reconcile that is about to start."""
        key = (namespace, name)
        if key in self._pending:
            return
        self._pending.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._pending.discard(key)
            try:
                hold = await self._gate(namespace) if self._gate is not None else None
                if hold is not None:
                    # Timers are dropped too: a standby replica must not act on its own clock.
                    log.debug("not reconciling %s/%s: %s", namespace, name, hold.reason)
                    self._schedule(key, hold.retry_after)
                    return
                result = await self._run(namespace, name)
            except Exception as exc:  # the operator must outlive any one object
                if key in self._deleted:  # nothing left to retry
                    self._deleted.discard(key)
                    self._drop(key)
                    return
                n = self._failures.get(key, 0)
                self._failures[key] = n + 1
                delay = RETRY_SECONDS[min(n, len(RETRY_SECONDS) - 1)]
                log.warning("reconcile of %s/%s failed (%s: %s); retrying in %ss",
                            namespace, name, type(exc).__name__, exc, delay)
                if self._observe:
                    self._observe(key, None, exc)
                self._schedule(key, delay)
                return
        self._failures.pop(key, None)
        if key in self._deleted:
            # Deleted while this reconcile ran: its result must not bring back metrics or a timer.
            self._deleted.discard(key)
            result = replace(result, gone=True)
        if self._observe:
            self._observe(key, result, None)
        if result.gone:
            self._drop(key)
        else:
            self._schedule(key, result.requeue_after)

    def failing(self, namespace: str, name: str) -> int:
        """How many reconciles of this object have failed in a row (0 after a success)."""
        return self._failures.get((namespace, name), 0)

    def _schedule(self, key: Key, delay: float | None) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(delay, 0.05), lambda: asyncio.ensure_future(self.trigger(*key)))

    def forget(self, namespace: str, name: str) -> None:
        """A deleted object: drop what is kept for it, and tell a reconcile of it still running."""
        key = (namespace, name)
        lock = self._locks.get(key)
        if lock is not None and lock.locked():
            self._deleted.add(key)
        self._drop(key)

    def _drop(self, key: Key) -> None:
        """Drop an object's timer, failure count and (when idle) its lock."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked() and key not in self._pending:
            del self._locks[key]

    def __len__(self) -> int:
        """Objects it keeps anything for."""
        return len(self._locks.keys() | self._timers.keys() | self._failures.keys())
