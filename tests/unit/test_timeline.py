"""`kubectl modeldeploy history NAME --plot`: the timeline read from Events and status, and its picture.

The Events here are the ones the planner itself emits over a scripted rollout, so a change of the operator's
message wording that the timeline can no longer read fails these tests."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api import names
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, Verdict
from modeldeploy.cli import main, plot, timeline
from modeldeploy.desired import requests, rollout
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.settings import Settings
from planning import NOW, take

UID = "6f1c2b7e-0000-4000-8000-000000000001"
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"analysis": {}}]
METRIC = {"name": "error-rate", "prometheus": {"address": "http://prom:9090", "query": "q"},
          "thresholdRange": {"max": 0.05}}


def spec(version: str) -> dict[str, Any]:
    return {"model": {"uri": f"s3://models/fraud/v{version}", "version": version},
            "runtime": {"image": "registry.example/sklearn-server:1.4"}, "replicas": 4,
            "rollout": {"steps": STEPS, "analysis": {"interval": "30s", "failureLimit": 0, "metrics": [METRIC]}}}


class Cluster:
    """One ModelDeployment as the planner drives it: its status, Deployments, history, and the Events posted."""

    def __init__(self) -> None:
        self.now, self.version = NOW, "7"
        self.status = ModelDeploymentStatus()
        self.deps: dict[int, DeploymentFacts] = {}
        self.records: dict[int, RevisionRecord] = {}
        self.annotations: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []

    def reconcile(self, measurements: tuple[Measurement, ...] | None = None) -> None:
        obs = Observed(name="fraud", namespace="risk", uid=UID, generation=1, now=self.now,
                       deployments=dict(self.deps), annotations=dict(self.annotations),
                       revisions=tuple(sorted(self.records.values(), key=lambda r: r.number)),
                       measurements=measurements, measured_revision=2 if measurements else None)
        plan = rollout.plan(spec(self.version), self.status, obs, Settings(allow_inline_analysis_urls=True))
        take(plan, self.deps, self.records)
        self.status = plan.status
        for e in plan.events:  # as the client posts them (k8s/client.py), numbered as etcd stores them
            stamp = rollout.timestamp(self.now)
            self.events.append({
                "apiVersion": "v1", "kind": "Event", "type": e.type, "reason": e.reason, "message": e.message,
                "metadata": {"name": f"fraud.{len(self.events):x}", "namespace": "risk",
                             "resourceVersion": str(1000 + len(self.events)), "creationTimestamp": stamp},
                "involvedObject": {"apiVersion": names.API_VERSION, "kind": names.KIND, "name": "fraud",
                                   "namespace": "risk", "uid": UID},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1})

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def ready(self) -> None:
        for number, f in self.deps.items():
            self.deps[number] = replace(f, ready_replicas=f.replicas)

    def md(self) -> dict[str, Any]:
        return {"apiVersion": names.API_VERSION, "kind": names.KIND,
                "metadata": {"name": "fraud", "namespace": "risk", "uid": UID, "generation": 1},
                "spec": spec(self.version), "status": self.status.model_dump(by_alias=True, exclude_none=True,
                                                                             mode="json")}

    def history(self) -> list[dict[str, Any]]:
        return [{"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": r.number,
                 "metadata": {"name": f"fraud-{r.number}", "creationTimestamp": rollout.timestamp(NOW),
                              "annotations": {names.ANN_MODEL_VERSION: r.model_version, names.ANN_OUTCOME: r.outcome}}}
                for r in self.records.values()]

    def deployments(self) -> list[dict[str, Any]]:
        return [{"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": names.deployment_name("fraud", n),
                              "labels": {**names.base_labels("fraud"), names.LABEL_REVISION: str(n)}},
                 "spec": {"replicas": f.replicas}, "status": {"readyReplicas": f.ready_replicas}}
                for n, f in self.deps.items()]


def first_revision(c: Cluster) -> None:
    c.reconcile()
    c.ready()
    c.later(5)
    c.reconcile()


def canary_at_pause(c: Cluster) -> None:
    """Revision 2 (model 8) goes out, takes 25% and waits at the open pause."""
    first_revision(c)
    c.version = "8"
    c.later(60)
    c.reconcile()  # 12:01:05 Canary, asking 25%
    c.ready()
    c.later(5)
    c.reconcile()  # 12:01:10 Paused at 25%


def rolled_back() -> Cluster:
    """...then is promoted past the pause, reaches 50% and fails its analysis run: rolled back."""
    c = Cluster()
    canary_at_pause(c)
    c.annotations[requests.PROMOTE] = "1"
    c.later(60)
    c.reconcile()  # 12:02:10 Canary, asking 50%
    c.ready()
    c.later(30)
    c.reconcile((Measurement(metric="error-rate", verdict=Verdict.FAIL, value=0.09,
                             message="0.09 is above the maximum 0.05"),))  # 12:02:40 RolledBack
    c.ready()
    c.later(5)
    c.reconcile()
    return c


def promoted() -> Cluster:
    c = Cluster()
    canary_at_pause(c)
    c.annotations[requests.PROMOTE_FULL] = "1"
    c.later(60)
    c.reconcile((Measurement(metric="error-rate", verdict=Verdict.PASS, value=0.01, message="in range"),))
    c.ready()
    c.later(5)
    c.reconcile()  # 12:02:15 Promoted
    c.ready()
    c.later(40)
    c.reconcile()
    return c


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def build(c: Cluster) -> timeline.Timeline:
    return timeline.timeline(c.md(), c.events, c.history(), c.deployments(), c.now)


def test_a_rolled_back_canary_weight_marks_and_failing_value() -> None:
    c = rolled_back()
    tl = build(c)
    assert [(p.at, p.weight, p.reached) for p in tl.weights[2]] == [
        (at(65), 25, False),  # asked for, its pod not Ready yet
        (at(70), 25, True),  # the open pause
        (at(130), 50, False),
        (at(160), 0, True),  # rolled back: traffic to stable at once
    ]
    assert 1 not in tl.weights  # the stable revision is not a rollout's share
    assert [(m.at, m.reason, m.revision) for m in tl.marks] == [(at(160), "RolledBack", 2)]
    (errors,) = tl.metrics
    assert (errors.name, errors.minimum, errors.maximum) == ("error-rate", None, 0.05)
    # The rollback's Event quotes the failing value, and status holds the same run: one point, not two.
    assert [(p.at, p.value, p.verdict, p.revision) for p in errors.points] == [(at(160), 0.09, "Fail", 2)]
    assert tl.models == {1: "7", 2: "8"}
    assert tl.outcomes == {1: "Stable", 2: "Failed"}
    assert (tl.start, tl.end, tl.events) == (NOW, c.now, len(c.events))


def test_a_promoted_canary_ends_at_100_with_a_mark() -> None:
    tl = build(promoted())
    assert [(p.weight, p.reached) for p in tl.weights[2]] == [(25, False), (25, True), (100, False), (100, True)]
    assert [(m.at, m.reason, m.revision) for m in tl.marks] == [(at(135), "Promoted", 2)]
    assert [(p.value, p.verdict) for p in tl.metrics[0].points] == [(0.01, "Pass")]


def test_ready_pods_per_revision_from_events_and_deployments() -> None:
    c = Cluster()
    canary_at_pause(c)
    c.later(20)
    tl = build(c)
    # Revision 1's Events said 0/4 then 4/4; the Deployments say what holds now (the replicas router lent a pod).
    assert [(p.at, p.ready, p.desired) for p in tl.pods[1]] == [(NOW, 0, 4), (at(5), 4, 4), (c.now, 3, 3)]
    assert [(p.at, p.ready, p.desired) for p in tl.pods[2]] == [(c.now, 1, 1)]
    # In flight: the share the canary serves now closes its line: status's canaryWeight (1 of the 5 Ready pods
    # it last counted), not the 25% its step asked for.
    assert c.status.canary_weight == 20
    assert tl.weights[2][-1] == timeline.WeightPoint(c.now, 20)


def test_the_current_canary_starts_at_weight_0_when_no_event_saw_its_start() -> None:
    c = Cluster()
    canary_at_pause(c)
    md = c.md()
    tl = timeline.timeline(md, [], c.history(), [], c.now)  # the Events expired
    assert [(p.at, p.weight) for p in tl.weights[2]] == [(at(65), 0), (c.now, 20)]
    assert tl.events == 0


def event(reason: str, message: str, stamp: str, version: str = "", uid: str = UID,
          **times: str) -> dict[str, Any]:
    return {"reason": reason, "message": message, "firstTimestamp": stamp, **times,
            "metadata": {"resourceVersion": version, "creationTimestamp": stamp},
            "involvedObject": {"kind": names.KIND, "name": "fraud", "namespace": "risk", "uid": uid}}


MD = {"metadata": {"name": "fraud", "namespace": "risk", "uid": UID}, "spec": {}, "status": {}}


@pytest.mark.parametrize(("events", "expected"), [
    ([event("Healthy", "revision 3 (model 9): 4/4 pods ready", "2025-06-01T12:00:09Z", "12"),
      event("Promoted", "revision 3 (model 9) is stable; revision 2 scales down in 30s",
            "2025-06-01T12:00:09Z", "11")],
     ["Promoted", "Healthy"]),
    ([event("Aborted", "revision 3 (model 9) aborted; revision 2 serves 100%", "2025-06-01T12:00:09Z"),
      event("Canary", "revision 3 (model 9) at 10% (step 1/3: pause 1m)", "2025-06-01T12:00:01Z")],
     ["Canary", "Aborted"]),
    ([event("Canary", "revision 3 (model 9) at 10% (step 1/3: pause 1m)", "2025-06-01T12:00:01Z"),
      event("RolledBack", "revision 3 (model 9) rolled back: ...; revision 2 serves 100%", "2025-06-01T12:00:09Z",
            uid="0ld-md-of-the-same-name")],
     ["Canary"]),
    ([event("Canary", "revision 3 (model 9) at 10% (step 1/3: pause 1m)", "", eventTime="2025-06-01T12:00:01.5Z")],
     ["Canary"]),
], ids=["same-second-in-stored-order", "oldest-first", "another-object-of-the-same-name", "event-time"])
def test_which_events_and_in_what_order(events: list[dict[str, Any]], expected: list[str]) -> None:
    assert [e["reason"] for _, e in timeline.rollout_events(MD, events)] == expected


@pytest.mark.parametrize(("reason", "message", "weights", "pods"), [
    ("Superseded", "revision 3 (model 9) at 50% superseded by revision 4 (model 10): the spec changed; its pods "
     "drain as revision 4's become Ready", {3: [50]}, {}),
    ("Paused", "revision 3 (model 9) held at 2 ready pods; revision 2 serves (`kubectl modeldeploy resume` "
     "continues)", {}, {3: [(2, None)]}),
    ("RolledBack", "revision 3 (model 9) rolled back: step 1 made no progress in 601s (progressDeadlineSeconds "
     "600): 1 canary pods ready; revision 2 serves 100%", {3: [0]}, {3: [(1, None)]}),
    ("RollingOut", "revision 3 (model 9): 1/4 pods ready; revision 2 serves until then", {}, {3: [(1, 4)]}),
    ("Canary", "revision 3 (model 9) at 100% (final: promoting: 3/4 pods ready)", {3: [100]}, {3: [(3, 4)]}),
], ids=["superseded", "held", "deadline", "plain-upgrade", "promoting"])
def test_what_one_event_tells(reason: str, message: str, weights: dict[int, list[int]],
                              pods: dict[int, list[tuple[int, int | None]]]) -> None:
    tl = timeline.timeline(MD, [event(reason, message, "2025-06-01T12:00:00Z")], [], [], NOW)
    assert {r: [p.weight for p in ps] for r, ps in tl.weights.items()} == weights
    assert {r: [(p.ready, p.desired) for p in ps] for r, ps in tl.pods.items()} == pods


def test_picture_is_an_svg_with_every_panel(tmp_path: Path) -> None:
    out = tmp_path / "rollout.svg"
    plot.draw(build(rolled_back()), str(out))
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    for words in ("weight %", "Ready pods", "error-rate", "max 0.05", "RolledBack r2", "revision 2 (model 8): Failed"):
        assert words in text, words


def test_without_matplotlib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra imports
    with pytest.raises(plot.PlotUnavailable, match=r"pip install 'modeldeploy\[plot\]'"):
        plot.draw(build(rolled_back()), str(tmp_path / "x.svg"))


class FakeKube:
    """The reads `history --plot` makes, answered from a Cluster."""

    def __init__(self, c: Cluster) -> None:
        self.c = c

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.c.md()

    def owned(self, api_version: str, kind: str, namespace: str, md: str) -> list[dict[str, Any]]:
        return self.c.history() if kind == "ControllerRevision" else self.c.deployments()


@pytest.mark.parametrize("with_events", [True, False], ids=["writes-the-svg", "no-events-says-why"])
def test_history_plot_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              with_events: bool) -> None:
    c = rolled_back()
    monkeypatch.setattr(main, "_kube", lambda args: FakeKube(c))
    monkeypatch.setattr(main, "_events", lambda kube, ns, name: c.events if with_events else [])
    out = tmp_path / "out.svg"
    code = main.main(["history", "fraud", "-n", "risk", "--plot", str(out)])
    captured = capsys.readouterr()
    if with_events:
        assert code == 0 and out.exists()
        assert captured.out.startswith(f"{out}: the rollouts of fraud from 2025-06-01 12:00:00")
    else:
        assert code == 1 and not out.exists()
        assert "no Events of ModelDeployment 'fraud'" in captured.err
