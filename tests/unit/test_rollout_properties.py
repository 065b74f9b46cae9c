"""Invariants of the serving planner over random histories.

Hypothesis draws a sequence of things that happen to one ModelDeployment (spec
edits among a few templates, pause/resume, readiness flickers, container
restarts, time passing) and how each template's pods behave (healthy, slow,
never Ready, crash-looping). A tiny in-memory world takes each plan as written:
Deployments get the planned replicas (Ready pods never exceed them), the
ControllerRevisions and other objects are stored and deleted as planned, and
the plan's status is the next pass's old status. After every happening the
planner runs once, like a reconcile triggered by a watch, and the invariants
are checked on every plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from modeldeploy.api import names
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, Phase
from modeldeploy.desired import rollout
from modeldeploy.desired.drift import needs_apply
from modeldeploy.desired.facts import DeploymentFacts, Observed, RevisionRecord
from modeldeploy.desired.history import revision_name
from modeldeploy.desired.revision import template_hash
from modeldeploy.desired.settings import Settings

START = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
MD, NS, UID = "fraud", "risk", "6f1c2b7e-0000-4000-8000-000000000002"
SETTINGS = Settings(allow_inline_analysis_urls=True)
IMAGE = "registry.example/sklearn-server:1.4"

# Serving templates a spec can switch between: (model version, server image).
TEMPLATES = [("7", IMAGE), ("8", IMAGE), ("8", f"{IMAGE}-patched")]


def raw_spec(template: int, replicas: int, paused: bool, auto_rollback: bool, history_limit: int,
             surge: int | None = None) -> dict[str, Any]:
    version, image = TEMPLATES[template]
    block: dict[str, Any] = {"autoRollback": auto_rollback, "progressDeadlineSeconds": 600,
                             "scaleDownDelaySeconds": 30}
    if surge is not None:
        block["maxSurge"] = surge
    return {"model": {"uri": f"s3://models/fraud/v{version}", "version": version}, "runtime": {"image": image},
            "replicas": replicas, "paused": paused, "revisionHistoryLimit": history_limit, "rollout": block}


def hash_of(template: int) -> str:
    return template_hash(ModelDeploymentSpec.model_validate(raw_spec(template, 1, False, True, 10))
                         .serving_template())


TEMPLATE_OF_HASH = {hash_of(t): t for t in range(len(TEMPLATES))}


def revision_of(manifest: dict[str, Any]) -> int:
    return int(manifest["metadata"]["labels"][names.LABEL_REVISION])


def planned_replicas(plan: rollout.Plan) -> dict[int, int]:
    return {revision_of(m): m["spec"]["replicas"] for m in plan.apply if m["kind"] == "Deployment"}


# -- the world --------------------------------------------------------------------------------------

@dataclass
class Step:
    """One reconcile: what the spec asked for, what the planner saw, and its plan."""

    template: int
    desired: int
    generation: int
    seen: Observed
    plan: rollout.Plan


# How a template's pods behave as time passes, like the local cluster's simulated pods.
BEHAVIOURS = ["healthy", "slow", "never-ready", "crash-loop"]


@dataclass
class World:
    behaviours: tuple[str, ...] = ("healthy",) * len(TEMPLATES)  # per template
    auto_rollback: bool = True
    history_limit: int = 10
    surge: int | None = None  # rollout.maxSurge
    now: datetime = START
    generation: int = 1
    template: int = 0
    replicas: int = 3
    paused: bool = False
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    deployments: dict[int, DeploymentFacts] = field(default_factory=dict)
    revisions: dict[str, RevisionRecord] = field(default_factory=dict)  # by ControllerRevision name
    services: set[str] = field(default_factory=set)
    has_hpa: bool = False
    has_pdb: bool = False
    live: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # what the API server holds
    steps: list[Step] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return raw_spec(self.template, self.replicas, self.paused, self.auto_rollback, self.history_limit,
                        self.surge)

    def edit(self, **fields: Any) -> None:
        """A `kubectl apply`: a changed spec bumps metadata.generation."""
        before = self.spec()
        for k, v in fields.items():
            setattr(self, k, v)
        if self.spec() != before:
            self.generation += 1

    def observe(self) -> Observed:
        return Observed(name=MD, namespace=NS, uid=UID, generation=self.generation, now=self.now,
                        deployments=dict(self.deployments),
                        revisions=tuple(sorted(self.revisions.values(), key=lambda r: r.number)),
                        services=frozenset(self.services), has_hpa=self.has_hpa, has_pdb=self.has_pdb)

    def reconcile(self) -> Step:
        seen = self.observe()
        plan = rollout.plan(self.spec(), self.status, seen, SETTINGS)
        step = Step(self.template, self.replicas, self.generation, seen, plan)
        self.steps.append(step)
        self.take(plan)
        return step

    def writes(self, plan: rollout.Plan) -> list[str]:
        """What the reconciler would send for this plan: applies that differ, deletes, a changed status."""
        out = [f"apply {m['kind']}/{m['metadata']['name']}" for m in plan.apply
               if needs_apply(m, self.live.get((m["kind"], m["metadata"]["name"])))]
        out += [f"delete {r.kind}/{r.name}" for r in plan.delete if (r.kind, r.name) in self.live]
        if plan.status != self.status:
            out.append("status")
        return out

    def take(self, plan: rollout.Plan) -> None:
        """Write the plan into the world as the API server and controllers would."""
        for m in plan.apply:
            kind, name, meta = m["kind"], m["metadata"]["name"], m["metadata"]
            self.live[(kind, name)] = m
            ann = meta.get("annotations") or {}
            if kind == "Deployment":
                n, size = revision_of(m), m["spec"]["replicas"]
                old = self.deployments.get(n) or DeploymentFacts(revision=n, replicas=0, ready_replicas=0)
                self.deployments[n] = replace(old, replicas=size, ready_replicas=min(old.ready_replicas, size),
                                              scale_down_at=rollout.parse_timestamp(ann.get(names.ANN_SCALE_DOWN_AT)))
            elif kind == "ControllerRevision":
                self.revisions[name] = RevisionRecord(
                    number=m["revision"], hash=meta["labels"][names.LABEL_REVISION_HASH],
                    model_version=ann[names.ANN_MODEL_VERSION], outcome=ann[names.ANN_OUTCOME],
                    reason=ann.get(names.ANN_OUTCOME_REASON, ""), released=ann.get(names.ANN_RELEASED) == "true",
                    template=m["data"])
            elif kind == "Service":
                self.services.add(name)
            elif kind == "HorizontalPodAutoscaler":
                self.has_hpa = True
            elif kind == "PodDisruptionBudget":
                self.has_pdb = True
        for ref in plan.delete:
            self.live.pop((ref.kind, ref.name), None)
            if ref.kind == "Deployment":
                self.deployments = {n: f for n, f in self.deployments.items()
                                    if names.deployment_name(MD, n) != ref.name}
            elif ref.kind == "ControllerRevision":
                self.revisions.pop(ref.name, None)
            elif ref.kind == "Service":
                self.services.discard(ref.name)
            elif ref.kind == "HorizontalPodAutoscaler":
                self.has_hpa = False
            elif ref.kind == "PodDisruptionBudget":
                self.has_pdb = False
        self.status = plan.status

    def tick(self, seconds: int) -> None:
        """Time passes: pods start, or keep failing, as their template's behaviour says."""
        self.now += timedelta(seconds=seconds)
        template_of = {r.number: TEMPLATE_OF_HASH[r.hash] for r in self.revisions.values()}
        for n, f in self.deployments.items():
            behaviour = self.behaviours[template_of[n]] if n in template_of else "healthy"
            if behaviour == "healthy":
                f = replace(f, ready_replicas=f.replicas)
            elif behaviour == "slow":
                f = replace(f, ready_replicas=min(f.replicas, f.ready_replicas + 1))
            elif behaviour == "crash-loop" and f.replicas > 0:
                restarts = f.max_restarts + max(1, seconds // 20)
                f = replace(f, ready_replicas=0, max_restarts=restarts,
                            crashing_pod=f"{names.deployment_name(MD, n)}-5c9d-x0")
            self.deployments[n] = f

    def pick(self, index: int) -> int | None:
        """The index-th live Deployment's revision, newest first (wrapping); None when there is none."""
        live = sorted(self.deployments, reverse=True)
        return live[index % len(live)] if live else None


# -- what happens ------------------------------------------------------------------------------------

Happening = tuple[Any, ...]  # (kind, args...)

# ("spec", k, n): move k templates on (so the simplest edit, k=1, starts a rollout) and ask for n replicas.
spec_edits = st.tuples(st.just("spec"), st.sampled_from([1, 2, 0]), st.sampled_from([3, 1, 2, 4]))
time_steps = st.tuples(st.just("time"), st.one_of(st.integers(1, 700), st.sampled_from([29, 31, 599, 601])))
actions = st.one_of(
    spec_edits, spec_edits, spec_edits,
    st.tuples(st.just("ready"), st.integers(0, 3), st.integers(0, 5)),  # readiness flickers
    st.tuples(st.just("restarts"), st.integers(0, 3), st.integers(0, 5)),
    st.tuples(st.just("pause"), st.booleans()),
)
# Each thing someone does is followed by some passing of time, as in life.
episodes = st.tuples(actions, st.lists(time_steps, max_size=3)).map(lambda e: [e[0], *e[1]])
# Every history starts with the ModelDeployment created and given a few seconds to start.
histories = st.lists(episodes, min_size=3, max_size=8).map(lambda es: [("time", 5), *(h for e in es for h in e)])


@dataclass(frozen=True)
class Scenario:
    history: list[Happening]
    behaviours: tuple[str, ...] = ("healthy",) * len(TEMPLATES)  # per template, see World.tick
    auto_rollback: bool = True
    history_limit: int = 10
    surge: int | None = None


def scenarios(auto_rollback: st.SearchStrategy[bool] | None = None,
              history_limit: st.SearchStrategy[int] | None = None,
              surge: st.SearchStrategy[int | None] | None = None) -> st.SearchStrategy[Scenario]:
    # Most templates start fine, so that most histories get as far as promotions and rollbacks.
    behaviour = st.sampled_from(["healthy", *BEHAVIOURS])
    return st.builds(Scenario, history=histories,
                     behaviours=st.tuples(*(behaviour for _ in TEMPLATES)),
                     auto_rollback=st.booleans() if auto_rollback is None else auto_rollback,
                     history_limit=st.just(10) if history_limit is None else history_limit,
                     surge=st.just(None) if surge is None else surge)


def simulate(sc: Scenario, on_event: Callable[[World], None] | None = None) -> list[Step]:
    """Reconcile once at creation and once after every happening; return every pass.

    on_event(world) runs after each of those reconciles, e.g. to check what more passes would do.
    """
    world = World(behaviours=sc.behaviours, auto_rollback=sc.auto_rollback, history_limit=sc.history_limit,
                  surge=sc.surge)
    world.reconcile()
    for what in sc.history:
        kind = what[0]
        if kind == "spec":
            world.edit(template=(world.template + what[1]) % len(TEMPLATES), replicas=what[2])
        elif kind == "pause":
            world.edit(paused=what[1])
        elif kind == "ready" and (n := world.pick(what[1])) is not None:
            f = world.deployments[n]
            world.deployments[n] = replace(f, ready_replicas=min(what[2], f.replicas))
        elif kind == "restarts" and (n := world.pick(what[1])) is not None:
            world.deployments[n] = replace(world.deployments[n], max_restarts=what[2],
                                           crashing_pod=f"{names.deployment_name(MD, n)}-5c9d-x{what[2]}")
        elif kind == "time":
            world.tick(what[1])
        world.reconcile()
        if on_event is not None:
            on_event(world)
    return world.steps


# -- invariants ----------------------------------------------------------------------------------------

# Revision 1 serves; model 8 is applied while paused, and time passes beyond scaleDownDelaySeconds.
PAUSED_PAST_SCALE_DOWN = Scenario([("time", 5), ("pause", True), ("spec", 1, 3), ("time", 31)])
# Revision 2 never gets Ready, is rolled back, and time passes beyond scaleDownDelaySeconds.
ROLLED_BACK_PAST_SCALE_DOWN = Scenario([("time", 5), ("spec", 1, 3), ("time", 601), ("time", 31)],
                                       behaviours=("healthy", "never-ready", "healthy"))


@example(sc=PAUSED_PAST_SCALE_DOWN)
@example(sc=ROLLED_BACK_PAST_SCALE_DOWN)
@settings(deadline=None)
@given(sc=scenarios())
def test_the_stable_revision_is_never_scaled_to_zero(sc: Scenario) -> None:
    for step in simulate(sc):
        stable = step.plan.status.stable_revision
        if stable is not None:
            assert planned_replicas(step.plan).get(stable, 0) >= 1, step.plan.status.message


@settings(deadline=None)
@given(sc=scenarios())
def test_capacity_never_drops_during_a_rollout(sc: Scenario) -> None:
    for step in simulate(sc):
        st_ = step.plan.status
        if st_.canary_revision is not None:
            assert st_.stable_revision is not None
            assert planned_replicas(step.plan)[st_.stable_revision] >= step.desired, st_.message


@settings(deadline=None)
@given(sc=scenarios())
def test_a_rollout_in_flight_asks_to_be_woken_before_its_deadline(sc: Scenario) -> None:
    for step in simulate(sc):
        st_ = step.plan.status
        if st_.phase == Phase.PROGRESSING and st_.canary_revision is not None:
            started = rollout.parse_timestamp(st_.rollout_started_at)
            assert started is not None
            deadline = (started + timedelta(seconds=600) - step.seen.now).total_seconds()
            assert step.plan.requeue_after is not None
            assert 0 < step.plan.requeue_after <= deadline + 1


def newly_failed(step: Step) -> set[int]:
    """Revisions this pass records as Failed (a rollback), not ones merely rewritten."""
    before = {r.number: r.outcome for r in step.seen.revisions}
    return {m["revision"] for m in step.plan.apply if m["kind"] == "ControllerRevision"
            and m["metadata"]["annotations"][names.ANN_OUTCOME] == "Failed" and before.get(m["revision"]) != "Failed"}


@example(sc=ROLLED_BACK_PAST_SCALE_DOWN)
@example(sc=Scenario([("time", 5), ("spec", 1, 3), ("time", 60), ("time", 60), ("spec", 0, 2), ("time", 60)],
                     behaviours=("healthy", "crash-loop", "healthy")))
@settings(deadline=None)
@given(sc=scenarios(auto_rollback=st.just(True)))
def test_a_failed_revision_is_not_retried_while_the_template_stays(sc: Scenario) -> None:
    failed: dict[int, int] = {}  # revision -> the template the spec asked for when it failed
    for step in simulate(sc):
        failed = {n: t for n, t in failed.items() if t == step.template}
        st_ = step.plan.status
        # A failed revision keeps pods only to cover stable pods that are not Ready (draining).
        stable = step.seen.deployments.get(st_.stable_revision or 0)
        missing = max(0, step.desired - (stable.ready_replicas if stable else 0))
        for n in failed:
            assert st_.stable_revision != n and st_.canary_revision != n
            assert planned_replicas(step.plan).get(n, 0) <= missing
        for n in newly_failed(step):
            failed[n] = step.template
            assert st_.phase == Phase.DEGRADED
            assert st_.stable_revision != n
            assert planned_replicas(step.plan)[n] <= missing


@settings(deadline=None)
@given(sc=scenarios())
def test_revision_numbers_identify_templates(sc: Scenario) -> None:
    numbers: dict[str, int] = {}  # template hash -> revision number
    for step in simulate(sc):
        for m in step.plan.apply:
            if m["kind"] == "ControllerRevision":
                digest = m["metadata"]["labels"][names.LABEL_REVISION_HASH]
                assert numbers.setdefault(digest, m["revision"]) == m["revision"]
        assert len(set(numbers.values())) == len(numbers), numbers
        # A revision's Deployment always runs that revision's template.
        by_number = {n: TEMPLATES[TEMPLATE_OF_HASH[h]] for h, n in numbers.items()}
        for m in step.plan.apply:
            if m["kind"] == "Deployment":
                (server,) = m["spec"]["template"]["spec"]["containers"]
                env = {e["name"]: e.get("value") for e in server["env"]}
                assert (env["MODEL_VERSION"], server["image"]) == by_number[revision_of(m)]
        # Unless paused or degraded, the spec's own template is the stable or the rolling-out revision.
        target = numbers.get(hash_of(step.template))
        st_ = step.plan.status
        if st_.phase in (Phase.HEALTHY, Phase.PROGRESSING):
            assert target in (st_.stable_revision, st_.canary_revision)


@settings(deadline=None)
@given(sc=scenarios(history_limit=st.sampled_from([1, 2, 10])))
def test_serving_revisions_keep_their_history(sc: Scenario) -> None:
    numbers: dict[int, str] = {}  # revision number -> template hash, as long as the history knows it
    for step in simulate(sc):
        st_ = step.plan.status
        pruned = {r.name for r in step.plan.delete if r.kind == "ControllerRevision"}
        live = {rec.number for rec in step.seen.revisions if revision_name(MD, rec.hash) not in pruned}
        written = {m["revision"]: m["metadata"]["labels"][names.LABEL_REVISION_HASH]
                   for m in step.plan.apply if m["kind"] == "ControllerRevision"}
        for n in (st_.stable_revision, st_.canary_revision):
            if n is not None:
                assert n in live | set(written), (n, pruned)
        deployed = {revision_of(m) for m in step.plan.apply if m["kind"] == "Deployment"}
        assert deployed <= live | set(written)
        # Even with a short history, a number once given to a template is never given to another.
        for n, digest in written.items():
            assert numbers.setdefault(n, digest) == digest, f"revision {n} reused"


@settings(deadline=None)
@given(sc=scenarios())
def test_every_status_observes_the_generation(sc: Scenario) -> None:
    for step in simulate(sc):
        st_ = step.plan.status
        assert st_.observed_generation == step.generation
        assert {c.type for c in st_.conditions} == {"Ready", "Progressing", "Degraded", "Reconciling", "Stalled"}
        assert {c.observed_generation for c in st_.conditions} == {step.generation}
        assert [c.status for c in st_.conditions if c.type == "Ready"] == ["True" if st_.phase == Phase.HEALTHY
                                                                          else "False"]


@settings(deadline=None)
@given(sc=scenarios())
def test_reconciles_settle_to_zero_writes(sc: Scenario) -> None:
    # DESIGN, Reconciliation: "A reconcile with nothing to change makes zero writes."
    def settles(world: World) -> None:
        world.reconcile()  # sees what the last pass wrote (new Deployments, status counts)
        again = rollout.plan(world.spec(), world.status, world.observe(), SETTINGS)
        assert world.writes(again) == [], world.status.message
        assert again.events == []

    simulate(sc, on_event=settles)


# -- within a pod budget (rollout.maxSurge; tests/unit/test_budget.py runs it against pods that lag) ----------

BUDGETS = st.sampled_from([0, 1, 2])


@settings(deadline=None)
@given(sc=scenarios(surge=BUDGETS))
def test_no_plan_asks_for_more_pods_than_the_budget(sc: Any) -> None:
    for step in simulate(sc):
        assert sum(planned_replicas(step.plan).values()) <= step.desired + sc.surge, step.plan.status.message


@settings(deadline=None)
@given(sc=scenarios(surge=BUDGETS))
def test_within_a_budget_reconciles_still_settle_to_zero_writes(sc: Any) -> None:
    # Within some passes, not one: a budget frees one pod at a time and a revision grows only into pods seen
    # gone, so replacing N pods in place takes about N passes (each woken, in a cluster, by a pod's deletion);
    # and status counts the replicas Deployments have, one pass behind a resize. What this catches is a plan
    # that flaps and never settles.
    def settles(world: World) -> None:
        for _ in range(2 * world.replicas + 3):
            world.reconcile()
            again = rollout.plan(world.spec(), world.status, world.observe(), SETTINGS)
            if not world.writes(again) and not again.events:
                return
        raise AssertionError(f"still writing after {2 * world.replicas + 3} passes: {world.writes(again)}, "
                             f"{world.status.message}")

    simulate(sc, on_event=settles)


@settings(deadline=None)
@given(sc=scenarios(surge=BUDGETS))
def test_within_a_budget_the_spec_s_template_is_served_or_rolling_out_unless_paused_or_degraded(sc: Any) -> None:
    for step in simulate(sc):
        st_ = step.plan.status
        if st_.phase in (Phase.HEALTHY, Phase.PROGRESSING):
            assert st_.stable_revision is not None or st_.canary_revision is not None, st_.message
