"""`kubectl modeldeploy status NAME --watch`: the live view on a terminal, plain text everywhere else."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from modeldeploy.api import names
from modeldeploy.api.status import AnalysisStatus, Condition, Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.cli import live, main, render

NOW = datetime(2025, 6, 1, 12, 10, 0, tzinfo=UTC)
STEPS = [{"setWeight": 25}, {"pause": {"duration": "2m"}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {}}]
ANALYSIS = {"interval": "1m", "failureLimit": 1, "metrics": [
    {"name": "error-rate", "prometheus": {"provider": "main", "query": "q"}, "thresholdRange": {"max": 0.05}},
    {"name": "latency-p99", "prometheus": {"provider": "main", "query": "q"}, "thresholdRange": {"min": 0, "max": 0.3}},
    {"name": "smoke", "webhook": {"provider": "smoke-checks", "path": "/smoke"}}]}


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def md(steps: list[dict[str, Any]] | None = STEPS, reason: str | None = None, **status: Any) -> dict[str, Any]:
    """A ModelDeployment whose status the API models write (so the field names are the real ones)."""
    st = ModelDeploymentStatus(observed_generation=4, url="http://fraud.risk.svc.cluster.local", **status)
    if reason is not None:
        st.conditions = [Condition(type="Ready", status="False", reason=reason, last_transition_time=ago(300))]
    spec: dict[str, Any] = {"model": {"uri": "s3://models/fraud/v8", "version": "8"},
                            "runtime": {"image": "registry.example/sklearn-server:1.4"}, "replicas": 4,
                            "rollout": {"analysis": ANALYSIS, **({"steps": steps} if steps else {})}}
    return {"apiVersion": names.API_VERSION, "kind": names.KIND,
            "metadata": {"name": "fraud", "namespace": "risk", "generation": 4}, "spec": spec,
            "status": st.model_dump(by_alias=True, exclude_none=True, mode="json")}


def cr(revision: int, model: str, outcome: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": revision,
            "metadata": {"name": f"fraud-{revision}", "creationTimestamp": ago(3600 - revision),
                         "annotations": {names.ANN_MODEL_VERSION: model, names.ANN_OUTCOME: outcome}}}


def deployment(revision: int, replicas: int, ready: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": names.deployment_name("fraud", revision),
                         "labels": {**names.base_labels("fraud"), names.LABEL_REVISION: str(revision)}},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas, "readyReplicas": ready}}


HISTORY = [cr(1, "6", "Superseded"), cr(2, "7", "Stable"), cr(3, "8", "Progressing")]
# Revision 1 is kept at zero (the fast way back), 2 serves, 3 is the canary with one of its two pods Ready.
DEPLOYMENTS = [deployment(1, 0, 0), deployment(2, 3, 3), deployment(3, 2, 1)]
RUN = AnalysisStatus(revision=3, runs=2, passed=1, failed=1, last_run_at=ago(20), last_verdict=Verdict.FAIL,
                     measurements=[
                         Measurement(metric="error-rate", verdict=Verdict.FAIL, value=0.09,
                                     message="0.09 is above the maximum 0.05"),
                         Measurement(metric="latency-p99", verdict=Verdict.PASS, value=0.12, message="in range"),
                         Measurement(metric="smoke", verdict=Verdict.PASS, value=200, message="HTTP 200")])


def canary(index: int, served: int, target: int, phase: str = "Progressing", step_began: float = 30,
           **more: Any) -> dict[str, Any]:
    return md(phase=phase, stable_revision=2, canary_revision=3, canary_weight=served, step_weight=target,
              current_step_index=index, step_started_at=ago(step_began), rollout_started_at=ago(400),
              replicas=5, ready_replicas=4, message="revision 3 (model 8) at 25% (step 1/5: ...)", **more)


def text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def cells(lines: list[str]) -> list[list[str]]:
    """The table rows among the lines, as their stripped cells."""
    return [[c.strip() for c in line.split("│")[1:-1]][:4] for line in lines if line.startswith("│")]


def test_snapshot_of_a_canary() -> None:
    snap = live.snapshot(canary(2, 25, 25, analysis=RUN), HISTORY, DEPLOYMENTS, NOW)
    assert (snap.stable, snap.canary, snap.served, snap.target) == (2, 3, 25, 25)
    assert snap.step == "step 3/5: analysis"
    assert snap.models == {1: "6", 2: "7", 3: "8"}
    # Revision 1 at zero pods is history, not serving.
    assert snap.pods == (live.RevisionPods(2, "7", "stable", 3, 3), live.RevisionPods(3, "8", "canary", 1, 2))
    assert [(m.name, m.value, m.threshold, m.verdict) for m in snap.metrics] == [
        ("error-rate", 0.09, "max 0.05", "Fail"), ("latency-p99", 0.12, "0..0.3", "Pass"),
        ("smoke", 200, "2xx answer", "Pass")]
    assert snap.analysis.startswith("revision 3: 2 runs, 1 passed, 1 failed, 0 inconclusive")


def test_a_run_of_an_earlier_canary_is_not_shown_as_this_ones() -> None:
    snap = live.snapshot(canary(2, 25, 25, analysis=RUN.model_copy(update={"revision": 2})), HISTORY, [], NOW)
    assert [(m.value, m.verdict) for m in snap.metrics] == [(None, "-"), (None, "-"), (None, "-")]
    assert snap.analysis == ""


@pytest.mark.parametrize(("resource", "deployments", "expected"), [
    (canary(0, 0, 25), DEPLOYMENTS,
     "pods becoming Ready for 25%: revision 3 1/2 Ready, and the traffic split to reach 25%"),
    (canary(1, 25, 25, step_began=30), DEPLOYMENTS, "the pause to end at 12:11:30 (in 1m30s)"),
    (canary(1, 25, 25, step_began=125), DEPLOYMENTS, "the pause to end at 12:09:55 (now)"),
    (canary(2, 25, 25, step_began=10, analysis=RUN), DEPLOYMENTS,
     "an analysis run taken after 12:09:50 to pass; next run due in 40s"),
    (canary(4, 50, 50, phase="Paused", reason="Paused"), DEPLOYMENTS,
     "a manual promote (`kubectl modeldeploy promote fraud`)"),
    (canary(1, 25, 25, phase="Paused", reason="Paused"), DEPLOYMENTS,
     "a resume: held by a pause request (`kubectl modeldeploy resume fraud`)"),
    (canary(2, 25, 25, phase="Paused", reason="AnalysisInconclusive",
            analysis=RUN.model_copy(update={"inconclusive_streak": 3})), DEPLOYMENTS,
     "a person: 3 inconclusive analysis runs in a row (`kubectl modeldeploy resume|promote|abort fraud`)"),
    (canary(5, 50, 50), DEPLOYMENTS, "a passing analysis run before promotion (none has passed yet)"),
    (canary(5, 100, 100, analysis=RUN), DEPLOYMENTS, "promotion: revision 3 at 100%, 1/2 Ready"),
    (md(steps=None, phase="Progressing", stable_revision=2, canary_revision=3), DEPLOYMENTS,
     "pods becoming Ready: revision 3 1/2 Ready"),
    (md(phase="Healthy", stable_revision=3), [deployment(3, 4, 4)], "nothing: the rollout is done"),
    (md(phase="Progressing", stable_revision=3), [deployment(2, 0, 1), deployment(3, 4, 4)],
     "pods scaling down: revision 2 1 Ready, 0 wanted"),
    (md(phase="Pending"), [deployment(1, 4, 2)], "pods becoming Ready: revision 1 2/4"),
    (md(phase="Degraded", stable_revision=2, reason="RolledBack"), DEPLOYMENTS[:2],
     "a spec change (the failed revision is not retried)"),
    (canary(2, 25, 25, phase="Degraded", reason="RolloutStuck"), DEPLOYMENTS,
     "a person: `kubectl modeldeploy abort fraud` rolls back, `kubectl modeldeploy promote fraud` goes on"),
    (md(), [], "the operator to see the spec"),
], ids=["set-weight-pods", "pause-countdown", "pause-over", "analysis", "open-pause", "held", "inconclusive",
        "evidence-before-promotion", "promoting", "plain-upgrade", "healthy", "scaling-down", "first-deploy",
        "rolled-back", "held-failure", "not-seen-yet"])
def test_what_the_rollout_waits_for(resource: dict[str, Any], deployments: list[dict[str, Any]],
                                    expected: str) -> None:
    assert live.snapshot(resource, HISTORY, deployments, NOW).waiting == expected


def test_the_view_shows_step_bar_pods_and_metrics() -> None:
    out = text(live.live(canary(1, 25, 25, analysis=RUN), HISTORY, DEPLOYMENTS, NOW))
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0] == "fraud in namespace risk"
    assert "step         step 2/5: pause 2m  (target 25%)" in lines
    weight = next(line for line in lines if line.startswith("weight"))
    assert weight.endswith("25% served by revision 3, 75% by stable")
    assert weight.count("━") == 10  # a quarter of the 40-character bar (without colour the rest is blank)
    assert "waiting for  the pause to end at 12:11:30 (in 1m30s)" in lines
    assert ["3", "8", "canary", "1/2"] in cells(lines), out
    row = next(line for line in lines if "error-rate" in line)
    assert [c.strip() for c in row.split("│")[1:6]] == ["error-rate", "0.09", "max 0.05", "Fail",
                                                        "0.09 is above the maximum 0.05"]


def test_the_view_without_a_canary_has_no_bar() -> None:
    out = text(live.live(md(phase="Healthy", stable_revision=2, replicas=3, ready_replicas=3), HISTORY, [], NOW))
    assert not any(line.startswith("weight") for line in out.splitlines()) and "served by" not in out
    # Without the Deployments the status's totals stand in for the revisions.
    assert ["-", "", "all", "3/3"] in cells(out.splitlines())


class FakeKube:
    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = frames

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if not self.frames:
            raise KeyboardInterrupt  # the person stops watching
        return self.frames.pop(0)

    def owned(self, api_version: str, kind: str, namespace: str, md: str) -> list[dict[str, Any]]:
        return HISTORY if kind == "ControllerRevision" else DEPLOYMENTS


def test_watch_into_a_pipe_prints_plain_text_on_each_change(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    first, second = canary(0, 0, 25), canary(0, 25, 25)
    monkeypatch.setattr(main, "_kube", lambda args: FakeKube([first, first, second]))
    monkeypatch.setattr(main.time, "sleep", lambda seconds: None)
    assert main.main(["status", "fraud", "-n", "risk", "--watch"]) == 130
    out = capsys.readouterr().out
    assert out == render.status(first, HISTORY) + "\n\n" + render.status(second, HISTORY) + "\n"
    assert "\x1b[" not in out and "----" not in out


def test_watch_on_a_terminal_redraws_one_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    frames: list[Any] = []

    class Screen:
        def __init__(self, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> Screen:
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

        def update(self, renderable: Any, refresh: bool = False) -> None:
            frames.append(renderable)

    monkeypatch.setattr("rich.live.Live", Screen)
    monkeypatch.setattr(main.sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(main, "_kube", lambda args: FakeKube([canary(0, 0, 25), canary(0, 25, 25)]))
    monkeypatch.setattr(main.time, "sleep", lambda seconds: None)
    assert main.main(["status", "fraud", "-n", "risk", "--watch"]) == 130
    assert len(frames) == 2
    assert "0% served by revision 3" in text(frames[0]) and "25% served by revision 3" in text(frames[1])
