"""The per-object queue: bursts coalesce, one reconcile at a time per object, deleted objects are forgotten."""

from __future__ import annotations

import asyncio

from modeldeploy.handlers.queue import Coalescer
from modeldeploy.reconcile.core import Result


class Runs:
    """A reconcile stand-in that records its calls and holds each one until released."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.calls: list[tuple[str, str]] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def __call__(self, namespace: str, name: str) -> Result:
        self.calls.append((namespace, name))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await self.release.wait()
        self.running -= 1
        return self.result


def test_a_burst_of_triggers_costs_at_most_two_reconciles() -> None:
    async def scenario() -> Runs:
        runs = Runs(Result(phase="Healthy"))
        queue = Coalescer(runs)
        # One reconcile runs; ten more triggers arrive meanwhile
        tasks = [asyncio.create_task(queue.trigger("ml", "fraud")) for _ in range(11)]
        await asyncio.sleep(0.01)
        runs.release.set()
        await asyncio.gather(*tasks)
        return runs

    runs = asyncio.run(scenario())
    # The first, and one more that reads the newest state; never two at once
    assert runs.calls == [("ml", "fraud")] * 2
    assert runs.most_at_once == 1


def test_objects_do_not_wait_for_each_other() -> None:
    async def scenario() -> Runs:
        runs = Runs(Result(phase="Healthy"))
        queue = Coalescer(runs)
        tasks = [asyncio.create_task(queue.trigger("ml", name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0.01)
        seen = runs.running
        runs.release.set()
        await asyncio.gather(*tasks)
        assert seen == 3
        return runs

    asyncio.run(scenario())


def test_a_gone_object_leaves_nothing_behind() -> None:
    async def scenario() -> int:
        runs = Runs(Result(gone=True, requeue_after=5))
        runs.release.set()
        queue = Coalescer(runs)
        await queue.trigger("ml", "fraud")
        return len(queue)

    assert asyncio.run(scenario()) == 0


def test_a_live_object_keeps_its_timer_until_forgotten() -> None:
    async def scenario() -> tuple[int, int]:
        runs = Runs(Result(phase="Progressing", requeue_after=60))
        runs.release.set()
        queue = Coalescer(runs)
        await queue.trigger("ml", "fraud")
        kept = len(queue)
        queue.forget("ml", "fraud")
        return kept, len(queue)

    assert asyncio.run(scenario()) == (1, 0)


def test_deleted_while_its_reconcile_runs_nothing_comes_back() -> None:
    async def scenario() -> tuple[list[bool], int]:
        runs = Runs(Result(phase="Healthy", requeue_after=60))  # the reconcile read the object before deletion
        seen: list[bool] = []
        queue = Coalescer(runs, observe=lambda _key, result, _error: seen.append(bool(result and result.gone)))
        task = asyncio.create_task(queue.trigger("ml", "fraud"))
        await asyncio.sleep(0.01)
        queue.forget("ml", "fraud")  # the DELETED event arrives meanwhile
        runs.release.set()
        await task
        return seen, len(queue)

    # The finished reconcile is reported as gone (its metrics are dropped), and no timer is left
    assert asyncio.run(scenario()) == ([True], 0)


def test_a_recreated_object_is_reconciled_after_the_deleted_ones_run() -> None:
    async def scenario() -> list[bool]:
        runs = Runs(Result(phase="Healthy"))
        seen: list[bool] = []
        queue = Coalescer(runs, observe=lambda _key, result, _error: seen.append(bool(result and result.gone)))
        first = asyncio.create_task(queue.trigger("ml", "fraud"))
        await asyncio.sleep(0.01)
        queue.forget("ml", "fraud")  # deleted ...
        second = asyncio.create_task(queue.trigger("ml", "fraud"))  # ... and made again
        await asyncio.sleep(0.01)
        runs.release.set()
        await asyncio.gather(first, second)
        return seen

    # The old run counts as gone; the new object's run is an ordinary one
    assert asyncio.run(scenario()) == [True, False]


def test_failures_in_a_row_are_counted_until_a_reconcile_succeeds() -> None:
    # (the reconcile reports a transient API failure to users only once it keeps failing: it needs this count)
    outcomes = [RuntimeError("503"), RuntimeError("409"), Result(phase="Healthy")]

    async def run(namespace: str, name: str) -> Result:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def scenario() -> list[int]:
        queue = Coalescer(run)
        seen = [queue.failing("ml", "fraud")]
        for _ in range(3):
            await queue.trigger("ml", "fraud")
            seen.append(queue.failing("ml", "fraud"))
        queue.forget("ml", "fraud")  # its retry timer
        return seen

    assert asyncio.run(scenario()) == [0, 1, 2, 0]
