"""The watch-fed cache: views only move forward, deletions stick, and what it cannot know it says it does not."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import names
from modeldeploy.k8s.cache import LISTING_GAP_SECONDS, RESYNC_SECONDS, TOMBSTONE_SECONDS, Cache, slim

NS = "team-a"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def obj(name: str, rv: int, owner: str = "fraud", kind: str = "Deployment", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv),
                                       "labels": {names.LABEL_MD: owner}, "managedFields": [{"manager": "x"}]},
            **extra}


def versions(found: list[dict[str, Any]] | None) -> dict[str, str] | None:
    return None if found is None else {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in found}


def listed_cache(*items: dict[str, Any], at: int = 100) -> tuple[Cache, Clock]:
    clock = Clock()
    cache = Cache(clock)
    cache.listed("Deployment", NS, list(items), str(at))
    return cache, clock


def test_children_are_unknown_until_their_kind_is_listed_in_the_namespace():
    cache = Cache(Clock())
    cache.seen("Deployment", "ADDED", obj("fraud-1", 5))
    assert cache.owned("Deployment", NS, "fraud") is None  # an event is not the whole namespace
    cache.listed("Deployment", NS, [obj("fraud-1", 5)], "10")
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "5"}
    assert cache.owned("Deployment", "team-b", "fraud") is None
    assert cache.owned("Service", NS, "fraud") is None


def test_children_are_found_by_their_model_deployment():
    cache, _ = listed_cache(obj("fraud-1", 5), obj("fraud-2", 6), obj("churn-1", 7, owner="churn"))
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "5", "fraud-2": "6"}
    assert versions(cache.owned("Deployment", NS, "churn")) == {"churn-1": "7"}
    assert cache.owned("Deployment", NS, "other") == []
    # An object whose owner label changes moves with it
    cache.seen("Deployment", "MODIFIED", obj("fraud-2", 8, owner="churn"))
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "5"}
    assert versions(cache.owned("Deployment", NS, "churn")) == {"churn-1": "7", "fraud-2": "8"}


def test_a_view_is_replaced_only_by_a_newer_one():
    cache, _ = listed_cache(obj("fraud-1", 5))
    cache.answered(obj("fraud-1", 9))  # the operator's own write
    cache.seen("Deployment", "MODIFIED", obj("fraud-1", 7))  # an event from before that write, late
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "9"}
    cache.seen("Deployment", "MODIFIED", obj("fraud-1", 12))
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "12"}
    # Numbers, not strings: "10" is newer than "9"
    cache.answered(obj("fraud-1", 100))
    cache.answered(obj("fraud-1", 99))
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "100"}


def test_a_deletion_sticks_against_late_views_until_the_name_is_created_again():
    cache, clock = listed_cache(obj("fraud-1", 5))
    cache.seen("Deployment", "DELETED", obj("fraud-1", 8))
    assert cache.owned("Deployment", NS, "fraud") == []
    cache.answered(obj("fraud-1", 7))  # a write's answer that was in flight
    cache.seen("Deployment", "MODIFIED", obj("fraud-1", 8))
    assert cache.owned("Deployment", NS, "fraud") == []
    assert cache.get("Deployment", NS, "fraud-1") == (True, None)  # known to be gone
    cache.seen("Deployment", "ADDED", obj("fraud-1", 20))  # created again
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "20"}
    # The operator's own delete, too
    cache.deleted("Deployment", NS, "fraud-1")
    cache.seen("Deployment", "MODIFIED", obj("fraud-1", 20))
    assert cache.owned("Deployment", NS, "fraud") == []
    # Tombstones do not live for ever
    clock.now += TOMBSTONE_SECONDS + 1
    cache.deleted("Deployment", NS, "other")  # tombstones are swept when another is laid
    assert cache.get("Deployment", NS, "fraud-1") == (False, None)


def test_a_list_drops_what_was_deleted_unseen_and_keeps_what_came_after_it():
    cache, _ = listed_cache(obj("fraud-1", 5), obj("fraud-2", 6), at=10)
    cache.seen("Deployment", "ADDED", obj("fraud-3", 30))  # created after the next list was cut
    cache.listed("Deployment", NS, [obj("fraud-1", 5)], "20")  # fraud-2 was deleted in a gap
    assert versions(cache.owned("Deployment", NS, "fraud")) == {"fraud-1": "5", "fraud-3": "30"}
    # Other namespaces are left alone
    other = {**obj("fraud-9", 4), "metadata": {**obj("fraud-9", 4)["metadata"], "namespace": "team-b"}}
    cache.seen("Deployment", "ADDED", other)
    cache.listed("Deployment", NS, [], "40")
    assert cache.owned("Deployment", NS, "fraud") == []
    cache.listed("Deployment", "team-b", [], "3")  # older than the event: kept
    assert versions(cache.owned("Deployment", "team-b", "fraud")) == {"fraud-9": "4"}


def test_a_new_watch_listing_makes_the_kind_unknown_until_it_is_listed_again():
    cache, clock = listed_cache(obj("fraud-1", 5))
    cache.listed("Service", NS, [], "5")
    cache.seen("Deployment", None, obj("fraud-1", 5))  # the watch's first listing
    assert cache.owned("Deployment", NS, "fraud") is None
    cache.listed("Deployment", NS, [obj("fraud-1", 5)], "11")
    clock.now += 1
    cache.seen("Deployment", None, obj("fraud-2", 6))  # the same listing, still going
    assert cache.owned("Deployment", NS, "fraud") is not None
    assert cache.relists == 0
    clock.now += LISTING_GAP_SECONDS + 1
    cache.seen("Deployment", None, obj("fraud-1", 5))  # the watch broke and listed anew
    assert cache.owned("Deployment", NS, "fraud") is None
    assert cache.relists == 1
    assert cache.owned("Service", NS, "fraud") == []  # other kinds keep what they know


def test_every_kind_is_listed_again_after_the_resync_period():
    cache, clock = listed_cache(obj("fraud-1", 5))
    clock.now += RESYNC_SECONDS - 1
    assert cache.owned("Deployment", NS, "fraud") is not None
    clock.now += 2
    assert cache.owned("Deployment", NS, "fraud") is None


def test_objects_found_by_name_are_known_once_seen():
    cache = Cache(Clock())
    md = obj("fraud", 3, kind=names.KIND, spec={"replicas": 2})
    assert cache.get(names.KIND, NS, "fraud") == (False, None)  # never seen: ask the API server
    cache.seen(names.KIND, None, md)
    known, got = cache.get(names.KIND, NS, "fraud")
    assert known and got is not None and got["spec"] == {"replicas": 2}
    provider = {"kind": names.PROVIDER_KIND, "metadata": {"name": "prom", "resourceVersion": "4"}}
    cache.seen(names.PROVIDER_KIND, "ADDED", provider)
    assert cache.get(names.PROVIDER_KIND, "", "prom")[0]
    cache.seen(names.KIND, "DELETED", md)
    assert cache.get(names.KIND, NS, "fraud") == (True, None)


def test_only_the_kinds_it_keeps_and_only_what_the_reconcile_needs():
    cache = Cache(Clock())
    cache.answered({"kind": "Event", "metadata": {"name": "e", "namespace": NS, "resourceVersion": "1"}})
    cache.seen("Secret", "ADDED", obj("token", 1, kind="Secret"))
    assert len(cache) == 0
    pod = obj("fraud-1-abc", 5, kind="Pod", spec={"containers": [{"name": "x"}]}, status={"phase": "Running"})
    assert slim("Pod", pod) == {"metadata": {k: v for k, v in pod["metadata"].items() if k != "managedFields"},
                                "status": {"phase": "Running"}}
    dep = obj("fraud-1", 5, spec={"replicas": 2})
    assert slim("Deployment", dep)["spec"] == {"replicas": 2}
    assert "managedFields" not in slim("Deployment", dep)["metadata"]
    assert "managedFields" in dep["metadata"]  # the event's own object is left as it was


def test_ready_endpoints_are_counted_per_service_and_revision_across_slices():
    from modeldeploy.reconcile.observe import ready_endpoints

    def endpoint_slice(service: str, *pods: tuple[str, bool | None]) -> dict[str, Any]:
        return {"metadata": {"labels": {"kubernetes.io/service-name": service}},
                "endpoints": [{"conditions": {} if r is None else {"ready": r}, "targetRef": {"kind": "Pod", "name": p}}
                              for p, r in pods]}

    counted = ready_endpoints("fraud", [
        endpoint_slice("fraud", ("fraud-r1-abc-1", True), ("fraud-r2-def-1", True), ("fraud-r2-def-2", False)),
        endpoint_slice("fraud", ("fraud-r20-x-1", True), ("fraud-r2-def-3", None), ("other-r2-y-1", True)),
        endpoint_slice("fraud-canary", ("fraud-r1-abc-1", True)), {"metadata": {}}])
    # The canary Service still on stable's pods has no Ready canary endpoint yet
    assert counted == {"fraud": {1: 1, 2: 1, 20: 1}, "fraud-canary": {1: 1}}
    slimmed = slim("EndpointSlice", {**endpoint_slice("fraud", ("fraud-r3-a-1", True)), "ports": [{"port": 80}]})
    assert ready_endpoints("fraud", [slimmed]) == {"fraud": {3: 1}} and "ports" not in slimmed


def test_an_event_is_news_and_a_listed_object_only_when_it_changed_unwatched():
    cache = Cache(Clock())
    assert cache.seen("Deployment", "MODIFIED", obj("fraud-1", 5))
    assert cache.seen("Deployment", "DELETED", obj("fraud-2", 5))
    assert not cache.seen("Deployment", None, obj("fraud-3", 5))  # first learnt of in a listing (as at start)
    assert not cache.seen("Deployment", None, obj("fraud-1", 5))  # listed as it was
    assert cache.seen("Deployment", None, obj("fraud-1", 9))  # changed while the watch was down
    assert not cache.seen("Deployment", None, obj("fraud-1", 7))  # an older view: nothing new
    assert not cache.seen("Secret", "ADDED", obj("token", 1, kind="Secret"))


def test_the_echo_of_the_operators_own_write_is_not_news():
    cache = Cache(Clock())
    cache.answered(obj("fraud-1", 5, spec={"replicas": 2}))  # the answer to the operator's apply
    assert not cache.seen("Deployment", "MODIFIED", obj("fraud-1", 5, spec={"replicas": 2}))  # its watch echo
    assert cache.seen("Deployment", "MODIFIED", obj("fraud-1", 6, status={"readyReplicas": 2}))  # the cluster's


def md(rv: int, generation: int = 1, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"kind": names.KIND, "metadata": {"name": "fraud", "namespace": NS, "resourceVersion": str(rv),
                                             "generation": generation, **meta},
            "spec": {"replicas": 1}, "status": status or {}}


def test_a_modeldeployment_is_news_when_what_people_change_changed_not_its_status():
    cache = Cache(Clock())
    assert cache.seen(names.KIND, None, md(5))  # first seen, in the watch's first listing: reconciled once
    assert not cache.seen(names.KIND, None, md(5))  # listed again as it was
    assert not cache.seen(names.KIND, "MODIFIED", md(6, status={"phase": "Healthy"}))  # a status write
    assert cache.seen(names.KIND, "MODIFIED", md(7, generation=2))  # a spec change
    assert cache.seen(names.KIND, "MODIFIED", md(8, generation=2, annotations={"modeldeploy.dev/promote": "1"}))
    assert cache.seen(names.KIND, "MODIFIED", md(9, generation=2, annotations={"modeldeploy.dev/promote": "1"},
                                                 deletionTimestamp="2026-12-02T08:00:00Z"))
    assert not cache.seen(names.KIND, "MODIFIED", md(7, generation=3))  # late: an older view than the one held


def test_a_reader_gets_its_own_copy():
    cache, _ = listed_cache(obj("fraud-1", 5, spec={"replicas": 2}))
    mine = cache.owned("Deployment", NS, "fraud")
    assert mine is not None
    mine[0]["spec"]["replicas"] = 9
    again = cache.owned("Deployment", NS, "fraud")
    assert again is not None and again[0]["spec"]["replicas"] == 2


def test_the_client_service_selects_one_revision_or_every_one():
    from modeldeploy.reconcile.observe import client_selects

    def svc(name: str, **selector: str) -> dict:
        return {"metadata": {"name": name}, "spec": {"selector": {"modeldeploy.dev/name": "fraud", **selector}}}

    assert client_selects("fraud", [svc("fraud-stable", **{"modeldeploy.dev/revision": "3"}), svc("fraud")]) is None
    assert client_selects("fraud", [svc("fraud", **{"modeldeploy.dev/revision": "3"})]) == 3
    assert client_selects("fraud", []) is None


def test_a_list_wakes_the_models_whose_children_it_shows_newer_or_gone_and_no_other():
    # (what the periodic resync reconciles: the models a lost watch event left on an older view)
    cache, _ = listed_cache(obj("fraud-r1", 5), obj("risk-r1", 6, owner="risk"), obj("churn-r1", 7, owner="churn"))
    # The same views again: nothing was lost, nothing wakes
    assert cache.listed("Deployment", NS, [obj("fraud-r1", 5), obj("risk-r1", 6, owner="risk"),
                                           obj("churn-r1", 7, owner="churn")], "100") == set()
    # fraud's Deployment changed and churn's was deleted, and neither event arrived; risk's is as it was
    woken = cache.listed("Deployment", NS, [obj("fraud-r1", 50), obj("risk-r1", 6, owner="risk")], "200")
    assert woken == {(NS, "fraud"), (NS, "churn")}


def test_a_list_wakes_a_model_whose_spec_changed_unseen_and_not_one_whose_status_alone_did():
    def md(name: str, rv: int, generation: int) -> dict[str, Any]:
        return {"kind": names.KIND, "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv),
                                                 "generation": generation}}

    cache = Cache(Clock())
    cache.listed(names.KIND, NS, [md("fraud", 5, 1), md("risk", 6, 1)], "10")
    # fraud: a new generation (its spec changed); risk: a newer view of its status only
    assert cache.listed(names.KIND, NS, [md("fraud", 20, 2), md("risk", 21, 1)], "30") == {(NS, "fraud")}


def test_a_late_deletion_of_an_earlier_object_of_the_same_name_leaves_the_newer_one():
    # Given the canary Service deleted at a promotion (resourceVersion 40) and made again for the next canary (50),
    # whose write's answer the cache holds
    cache = Cache(Clock())
    cache.answered(obj("fraud-canary", 50, kind="Service"))
    # When the watch's DELETED event of the earlier one arrives late
    assert cache.seen("Service", "DELETED", obj("fraud-canary", 40, kind="Service")) is False
    # Then the newer Service is still known, so a rollback deletes it
    assert cache.get("Service", NS, "fraud-canary")[1] is not None
    # (its own deletion does remove it)
    assert cache.seen("Service", "DELETED", obj("fraud-canary", 60, kind="Service")) is True
    assert cache.get("Service", NS, "fraud-canary") == (True, None)


def test_a_spec_applied_during_a_status_write_wakes_its_model_though_its_watch_event_is_then_old():
    # Given a model the cache holds at generation 1
    cache = Cache(Clock())
    cache.seen(names.KIND, "ADDED", md(5))
    # When the answer to the operator's status write shows generation 2, applied after the reconcile read it
    cache.answered(md(8, generation=2, status={"phase": "Healthy"}))
    # Then the apply's own watch event (7) and the write's echo (8) are not news ...
    assert not cache.seen(names.KIND, "MODIFIED", md(7, generation=2))
    assert not cache.seen(names.KIND, "MODIFIED", md(8, generation=2, status={"phase": "Healthy"}))
    # ... so the answer marked the model for another reconcile, once
    assert cache.take_woken(NS, "fraud")
    assert not cache.take_woken(NS, "fraud")


def test_the_answer_to_a_status_write_alone_wakes_nothing():
    cache = Cache(Clock())
    cache.seen(names.KIND, "ADDED", md(5))
    cache.answered(md(6, status={"phase": "Healthy"}))
    cache.answered(obj("fraud-r1", 9, spec={"replicas": 2}))  # first learnt of from its own creation
    cache.answered(obj("fraud-r1", 10, spec={"replicas": 3}))  # a scale: the operator's own change
    assert not cache.take_woken(NS, "fraud")


def test_a_childs_status_changed_by_its_controller_before_the_operators_write_wakes_its_model():
    cache = Cache(Clock())
    cache.seen("Deployment", "ADDED", obj("fraud-r2", 5, status={"readyReplicas": 1}))
    # The Deployment controller counted a second Ready pod (rv 6); the operator's patch (rv 7) answers with it
    cache.answered(obj("fraud-r2", 7, status={"readyReplicas": 2}))
    assert not cache.seen("Deployment", "MODIFIED", obj("fraud-r2", 6, status={"readyReplicas": 2}))
    assert cache.take_woken(NS, "fraud")


def test_a_standby_replica_skips_the_resync_and_the_active_one_lists() -> None:
    """The resync's lists are for the replica that acts on them: a standby's (held by the peering gate) would
    cost every kind's LIST per period and tell it nothing it may act on."""
    import asyncio

    from modeldeploy.handlers.queue import Hold
    from modeldeploy.handlers.resync import KINDS, keep_resyncing

    class Lists:
        calls = 0

        def relist(self, api_version: str, kind: str, namespace: str | None) -> set[tuple[str, str]]:
            self.calls += 1
            return set()

    async def passes(held: bool) -> int:
        kube = Lists()

        async def gate(namespace: str) -> Hold | None:
            return Hold("standby") if held else None

        async def trigger(namespace: str, name: str) -> None:
            pass

        task = asyncio.create_task(keep_resyncing(kube, ["risk"], 0.01, trigger, gate))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        task.cancel()
        return kube.calls

    assert asyncio.run(passes(held=True)) == 0
    assert asyncio.run(passes(held=False)) >= len(KINDS)
