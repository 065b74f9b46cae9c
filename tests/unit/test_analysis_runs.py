"""Analysis runs off the reconcile workers: a run that takes long holds a pool thread, never the caller; one
run at a time per ModelDeployment; a finished run is handed out once and asks for a reconcile."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from modeldeploy.api.status import Measurement, Verdict
from modeldeploy.reconcile.runs import AnalysisRuns

KEY = ("risk", "fraud")
AT = datetime(2025, 6, 1, tzinfo=UTC)
PASS = (Measurement(metric="m", verdict=Verdict.PASS, value=1.0),)


def test_a_slow_run_does_not_hold_the_caller_and_wakes_its_model_when_done() -> None:
    release, woken = threading.Event(), []
    runs = AnalysisRuns(2, notify=lambda ns, name: woken.append((ns, name)))
    started = time.monotonic()
    runs.start(KEY, 4, AT, lambda: (release.wait(5), PASS)[1])
    assert time.monotonic() - started < 0.5  # the caller went on
    assert runs.running(KEY) and runs.take(KEY) is None and woken == []
    release.set()
    deadline = time.monotonic() + 5
    while runs.running(KEY) and time.monotonic() < deadline:
        time.sleep(0.01)
    done = runs.take(KEY)
    assert done is not None and (done.revision, done.started, done.measurements) == (4, AT, PASS)
    assert woken == [KEY] and runs.take(KEY) is None  # handed out once
    runs.shutdown()


def test_one_run_at_a_time_per_model_and_others_beside_it() -> None:
    release, calls = threading.Event(), []

    def slow(name: str) -> tuple[Measurement, ...]:
        calls.append(name)
        release.wait(5)
        return PASS

    runs = AnalysisRuns(4)
    runs.start(KEY, 4, AT, lambda: slow("first"))
    runs.start(KEY, 4, AT, lambda: slow("again"))  # already going: not started
    runs.start(("risk", "other"), 1, AT, lambda: slow("other"))
    time.sleep(0.2)
    assert sorted(calls) == ["first", "other"]
    release.set()
    runs.shutdown()


def test_a_pool_of_workers_bounds_the_runs_going_at_once() -> None:
    release, going, most = threading.Event(), [0], [0]
    lock = threading.Lock()

    def slow() -> tuple[Measurement, ...]:
        with lock:
            going[0] += 1
            most[0] = max(most[0], going[0])
        release.wait(5)
        with lock:
            going[0] -= 1
        return PASS

    runs = AnalysisRuns(2)
    for i in range(5):
        runs.start(("risk", f"m{i}"), 1, AT, slow)
    time.sleep(0.3)
    assert most[0] == 2
    release.set()
    runs.shutdown()


def test_inline_runs_finish_before_start_returns() -> None:
    runs = AnalysisRuns(0)
    runs.start(KEY, 2, AT, lambda: PASS)
    assert not runs.running(KEY)
    done = runs.take(KEY)
    assert done is not None and done.measurements == PASS


def test_a_failing_run_frees_its_model_and_says_so(caplog) -> None:  # type: ignore[no-untyped-def]
    runs = AnalysisRuns(0)

    def broken() -> tuple[Measurement, ...]:
        raise RuntimeError("provider bug")

    runs.start(KEY, 2, AT, broken)
    assert not runs.running(KEY) and runs.take(KEY) is None
    assert "the analysis run failed" in caplog.text
    runs.start(KEY, 2, AT, lambda: PASS)  # the next one is taken
    assert runs.take(KEY) is not None


def test_a_model_that_is_gone_drops_its_finished_run() -> None:
    runs = AnalysisRuns(0)
    runs.start(KEY, 2, AT, lambda: PASS)
    runs.forget(KEY)
    assert runs.take(KEY) is None


def test_a_run_given_back_is_taken_again_unless_a_newer_one_finished() -> None:
    # (a reconcile that took a run and then failed to write its status gives it back: the verdict's evidence
    # must reach status)
    runs = AnalysisRuns(0)
    runs.start(KEY, 4, AT, lambda: PASS)
    taken = runs.take(KEY)
    assert taken is not None and runs.take(KEY) is None
    runs.give_back(KEY, taken)
    assert runs.take(KEY) == taken
    # A newer run finished meanwhile: it is the one the next reconcile gets
    newer = (Measurement(metric="m", verdict=Verdict.FAIL, value=0.0),)
    runs.start(KEY, 4, AT, lambda: newer)
    runs.give_back(KEY, taken)
    again = runs.take(KEY)
    assert again is not None and again.measurements == newer
