"""Polling helpers for tests: wait for a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_NOTHING = object()


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.2,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
    until: Callable[[T], object] | None = None,
) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    With `until`, `predicate` is an observation (a count, an object) and
    `until(observation)` decides; the observation is returned, and shown on
    timeout, which makes for better failure messages than a bare False.
    Exceptions of the types in `ignore` count as "not yet" (e.g. a 404 while an
    object is being created); any other exception propagates at once. On timeout
    raises AssertionError naming `message` and the last value (or exception) seen.
    """
    deadline = time.monotonic() + timeout
    last: object = _NOTHING
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if (until(value) if until is not None else value):
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = "nothing (never called)" if last is _NOTHING else repr(last)
            raise AssertionError(f"{message}: not true within {timeout:g} s; last observed: {seen}")
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], T],
    duration: float,
    interval: float = 0.2,
    message: str = "condition",
    until: Callable[[T], object] | None = None,
) -> None:
    """Assert that `predicate` stays truthy on every poll for `duration` seconds.

    The counterpart of `wait_for` for "it must not happen" checks (a pod must stay
    unready): fails at the first falsy value, with that value in the message.
    `until` works as in `wait_for`: it judges each observation.
    """
    deadline = time.monotonic() + duration
    polls = 0
    while True:
        value = predicate()
        polls += 1
        if not (until(value) if until is not None else value):
            raise AssertionError(f"{message}: stopped holding after {polls} polls; observed: {value!r}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
