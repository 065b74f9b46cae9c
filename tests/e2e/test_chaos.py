"""End to end: one scripted rollout under faults ends where the same rollout without faults ends.

The harness is tests/chaos.py (the scenario, its end state, the oracle, the fault schedules) and
tests/apiproxy.py (the pass-through between the operator and kube-apiserver that numbers the operator's
writes and injects the faults). `make test` runs a subset: crash points spread over the run, and the two
mixed fault schedules. `make chaos` (MODELDEPLOY_CHAOS=all) runs a crash after every write and every
schedule alone, and prints the tables that docs/reliability.md keeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import chaos
from apiproxy import ApiProxy
from webhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
EVERY = os.environ.get("MODELDEPLOY_CHAOS") == "all"
# How many crash points `make test` runs: each is a run of the scenario (about 30 s).
CI_POINTS = 4
LAST_POINT = 0.7
TIMEOUT = 4 * 3600 if EVERY else 600
RESYNC = 5


@dataclass
class Harness:
    run: Callable[..., chaos.Result]
    baseline: chaos.Result


@pytest.fixture(scope="module")
def harness(cluster: Any, namespaces: Any, operator_process: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A proxy, the analysis webhook, and the fault-free run every faulted run is compared with."""
    hook = Webhook(chaos.webhook_answer)
    proxy = ApiProxy(cluster.kubeconfig, tmp_path_factory.mktemp("proxy"))

    def run(word: str, **fault: Any) -> chaos.Result:
        ns = namespaces(word)

        def start() -> Any:
            # A short resync, so a lost watch event is caught within the run (the default is 300 s).
            op = operator_process(ns, "--allow-inline-analysis-urls", "--resync-seconds", str(RESYNC),
                                  kubeconfig=proxy.kubeconfig, tag=word)
            op.start()
            return op

        return chaos.run_once(cluster, ns, proxy, start, hook.url(), **fault)

    try:
        baseline = run("fault-free")
        # (the oracle's own ground: the fault-free run keeps the books and the capacity, and got to its end)
        assert "error" not in baseline.state, baseline.state
        assert chaos.bookkeeping(baseline.state) == [], baseline.state
        assert baseline.lowest_ready >= chaos.REPLICAS - 1, baseline.dips
        yield Harness(run, baseline)
    finally:
        proxy.close()
        hook.stop()


def crash_points(writes: int) -> list[int]:
    """Every write of the fault-free run under `make chaos`; else CI_POINTS of them spread from the first to
    LAST_POINT of the way. (A run makes some writes more or fewer than another, as pods get Ready in other
    batches and status follows what they show: the last k may lie past a faulted run's end, and such a run is
    not killed at all. Measured: faulted runs of 118 to 132 writes beside a fault-free one of 145.)"""
    if EVERY or writes <= CI_POINTS:
        return list(range(1, writes + 1))
    last = int(writes * LAST_POINT)
    return sorted({1 + round(i * (last - 1) / (CI_POINTS - 1)) for i in range(CI_POINTS)})


def keep(name: str, lines: list[str], quiet: bool = False) -> None:
    """Print a table and keep it in .cluster/chaos/ for docs/reliability.md."""
    text = "\n".join(lines)
    if not quiet:
        print("\n" + text)
    out = ROOT / ".cluster" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text + "\n")


def row_problems(h: Harness, r: chaos.Result) -> tuple[list[str], list[str]]:
    # A SIGKILL may take a finished analysis run's measurements with it (see chaos.end_state); API faults may not.
    ignore = ("analysis",) if r.crash_after is not None else ()
    return chaos.differences(h.baseline.state, r.state, ignore), chaos.bookkeeping(r.state)


@pytest.mark.timeout(TIMEOUT)
def test_killed_after_any_write_the_rollout_ends_as_without_the_kill(harness):
    # When the operator is killed right after its write k is answered (and started again), for each chosen k
    lines = ["| crash after write | writes | end-state mismatches | duplicates, gaps | lowest Ready | time |",
             "|---|---:|---|---|---:|---:|",
             f"| none (fault-free) | {harness.baseline.writes} | | | {harness.baseline.lowest_ready} of "
             f"{chaos.REPLICAS} | {harness.baseline.seconds:.0f} s |"]
    results = []
    for k in crash_points(harness.baseline.writes):
        r = harness.run(f"crash-{k}", crash_after=k)
        results.append(r)
        mismatches, books = row_problems(harness, r)
        where = r.crashed_at or "not reached: the run made fewer writes"
        lines.append(f"| {r.crash_after}: {where} | {r.writes} | {'; '.join(mismatches) or 0} | "
                     f"{'; '.join(books) or 0} | {r.lowest_ready} of {chaos.REPLICAS} | {r.seconds:.0f} s |")
        keep("crash-points", lines, quiet=True)  # as it goes: `make chaos` takes half an hour
    keep("crash-points", lines)
    # Then each run was killed where asked, and ends as the fault-free one did, with the books kept and never
    # more than one Ready pod short
    for r in results:
        mismatches, books = row_problems(harness, r)
        assert r.crashed_at is not None or EVERY, f"run {r.crash_after} had {r.writes} writes: it was never killed"
        assert (mismatches, books) == ([], []), (str(r.crashed_at), mismatches, books)
        assert r.lowest_ready >= chaos.REPLICAS - 1, (str(r.crashed_at), r.dips)
        assert set(r.destructive) <= set(harness.baseline.destructive), (str(r.crashed_at), r.destructive)


@pytest.mark.timeout(TIMEOUT)
def test_under_api_faults_the_rollout_ends_as_without_them_and_users_never_see_them(harness):
    # When the API server (through the proxy) errs, conflicts, throttles, lags and cuts or drops watch events
    names = list(chaos.SCHEDULES) if EVERY else list(chaos.CI_SCHEDULES)
    results = [harness.run(f"faults-{i}", schedule=name, fault=chaos.SCHEDULES[name]) for i, name in enumerate(names)]
    lines = ["| faults | injected | end-state mismatches | duplicates, gaps | lowest Ready | failed reconciles | "
             "log lines quoting a fault | reported as retrying | status texts quoting one elsewhere | time |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        mismatches, books = row_problems(harness, r)
        injected = ", ".join(f"{kind}: {n}" for kind, n in sorted(r.injected.items()))
        lines.append(f"| {r.schedule} | {injected} | {'; '.join(mismatches) or 0} | {'; '.join(books) or 0} | "
                     f"{r.lowest_ready} of {chaos.REPLICAS} | {r.errors_counted:.0f} | {r.logged} | {r.retrying} | "
                     f"{len(r.leaked)} | "
                     f"{r.seconds:.0f} s |")
    keep("api-faults", lines)
    # Then each ends as the fault-free run did, never more than one Ready pod short, and no status text but the
    # Reconciling condition's ever quoted a fault: the operator retried, and its metrics and log counted what
    # failed
    for r in results:
        mismatches, books = row_problems(harness, r)
        assert r.injected, f"{r.schedule}: no fault was injected; the run proves nothing"
        assert (mismatches, books) == ([], []), (r.schedule, mismatches, books)
        assert r.lowest_ready >= chaos.REPLICAS - 1, (r.schedule, r.dips)
        assert r.leaked == [], (r.schedule, r.leaked)
        if any(kind.startswith("answer") for kind in r.injected):
            assert r.errors_counted > 0 and r.logged > 0, (r.schedule, r.errors_counted, r.logged)
        # (and nothing that serves or records a revision was deleted that the fault-free run kept: a stale
        # view must never be acted on destructively; a delete sent again after a failed answer is no harm)
        assert set(r.destructive) <= set(harness.baseline.destructive), (r.schedule, r.destructive)
