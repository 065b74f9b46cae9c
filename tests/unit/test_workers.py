"""Reconcile threads: protective work first, whatever routine work queued before it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modeldeploy.handlers.workers import ROUTINE, URGENT, Workers, priority


def md(generation: int = 1, **status: object) -> dict[str, object]:
    return {"metadata": {"generation": generation}, "status": {"observedGeneration": 1, **status}}


def test_a_rollout_in_flight_a_waiting_verdict_or_a_new_spec_is_urgent():
    assert priority(md(phase="Healthy"), verdict_waiting=False) == ROUTINE
    assert priority(None, verdict_waiting=False) == ROUTINE  # not seen yet
    assert priority(md(phase="Healthy"), verdict_waiting=True) == URGENT
    for phase in ("Progressing", "Paused", "Degraded"):
        assert priority(md(phase=phase), verdict_waiting=False) == URGENT, phase
    assert priority(md(phase="Healthy", canaryRevision=3), verdict_waiting=False) == URGENT
    assert priority(md(phase="Failed"), verdict_waiting=False) == ROUTINE  # waits for a spec change ...
    assert priority(md(2, phase="Failed"), verdict_waiting=False) == URGENT  # ... which comes first
    assert priority({"metadata": {"generation": 1}}, verdict_waiting=False) == URGENT  # never reconciled


def test_urgent_work_overtakes_routine_work_queued_before_it():
    async def scenario() -> list[str]:
        workers = Workers(threads=1)
        gate = threading.Event()
        order: list[str] = []

        def job(name: str) -> str:
            if name == "first":
                gate.wait(5)  # holds the only thread while the rest queue
            order.append(name)
            return name

        first = asyncio.ensure_future(workers.run(ROUTINE, lambda: job("first")))
        await asyncio.sleep(0.05)
        routine = [asyncio.ensure_future(workers.run(ROUTINE, lambda i=i: job(f"routine-{i}"))) for i in range(50)]
        await asyncio.sleep(0.05)
        urgent = asyncio.ensure_future(workers.run(URGENT, lambda: job("rollback")))
        await asyncio.sleep(0.05)
        assert workers.waiting() == 51
        gate.set()
        assert await urgent == "rollback"
        await asyncio.gather(first, *routine)
        return order

    order = asyncio.run(scenario())
    assert order[:2] == ["first", "rollback"]
    assert order[2:] == [f"routine-{i}" for i in range(50)]  # routine work keeps its order


def test_a_failing_job_raises_in_its_caller_and_the_thread_lives_on():
    async def scenario() -> str:
        workers = Workers(threads=1)

        def boom() -> str:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await workers.run(ROUTINE, boom)
        return await workers.run(ROUTINE, lambda: "still here")

    assert asyncio.run(scenario()) == "still here"
