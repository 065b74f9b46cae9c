"""The compare metric: the comparator's comparison of two answers, the comparator as a real HTTP server between
two real (loopback) model servers, the measurement the operator takes from its counts, the objects the planner
makes for it and the routes that send it the mirror's copies."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.analysis.compare import CompareProvider
from modeldeploy.api import names
from modeldeploy.api.spec import COMPARE_NEEDS_A_MIRROR, ONE_COMPARE, ONE_METRIC_KIND, Metric, ModelDeploymentSpec
from modeldeploy.api.status import Phase, Verdict
from modeldeploy.comparator import AGREEMENT_PATH
from modeldeploy.comparator.agreement import Counts, Tally, compare, predictions
from modeldeploy.comparator.server import Comparator, _stats_handler, _traffic_handler, metrics_text
from modeldeploy.desired import rollout
from planning import MD, NOW, PROGRESSING, SETTINGS, STABLE, manifests, observed, ready, record, spec, starting, status
from routes import ROUTES, Stored, routers

# -- the comparison, pure ---------------------------------------------------------------------------------------


def v2(*data: Any, name: str = "predict") -> dict[str, Any]:
    return {"model_name": "iris", "outputs": [{"name": name, "datatype": "INT64", "shape": [len(data), 1],
                                               "data": list(data)}]}


def test_v2_predictions_are_paired_in_order_and_counted_where_they_differ() -> None:
    assert compare(v2(0, 1, 2, 2), v2(0, 1, 1, 2)) == Tally(compared=4, differ=1, distance=1.0, numeric=4)
    assert compare(v2(0, 1), v2(0, 1)) == Tally(compared=2, differ=0, distance=0.0, numeric=2)


def test_v2_outputs_pair_by_name_whatever_their_order() -> None:
    a = {"outputs": [{"name": "label", "data": [1]}, {"name": "score", "data": [0.9]}]}
    b = {"outputs": [{"name": "score", "data": [0.9]}, {"name": "label", "data": [1]}]}
    assert compare(a, b).differ == 0
    assert predictions(a) == [1, 0.9]


def test_numbers_agree_within_the_tolerance_and_the_distance_is_summed() -> None:
    t = compare(v2(0.50, 0.20), v2(0.52, 0.30), tolerance=0.05)
    assert (t.compared, t.differ, t.numeric) == (2, 1, 2)
    assert t.distance == pytest.approx(0.12)
    assert compare(v2(0.5), v2(0.5 + 1e-9)).differ == 1  # tolerance 0: only equal numbers agree


def test_v1_predictions_and_strings_and_other_json() -> None:
    assert compare({"predictions": [[1, 2], [3]]}, {"predictions": [[1, 2], [4]]}) == Tally(3, 1, 1.0, 3)
    assert compare(v2("cat", "dog"), v2("cat", "cow")).differ == 1
    # An answer in no known shape is one prediction, equal or not
    assert compare({"label": "a", "p": 1}, {"p": 1, "label": "a"}) == Tally(1, 0)
    assert compare({"label": "a"}, {"label": "b"}) == Tally(1, 1)


def test_a_prediction_one_side_lacks_differs_and_a_bool_is_no_number() -> None:
    assert compare(v2(1, 2, 3), v2(1, 2)) == Tally(compared=3, differ=1, distance=0.0, numeric=2)
    assert compare(v2(True), v2(1)).differ == 0  # equal in JSON's sense, but not a distance
    assert compare(v2(True), v2(1)).numeric == 0


def test_counts_add_up_and_read_back_from_their_json() -> None:
    c = Counts(1, 2).seen(True, True, Tally(10, 2, 2.0, 10)).seen(True, False, Tally()).seen(False, False, Tally())
    assert (c.requests, c.tally.compared, c.tally.differ) == (3, 10, 2)
    assert (c.stable_errors, c.canary_errors, c.canary_only_errors) == (1, 2, 1)
    assert Counts.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert 'modeldeploy_comparator_differing_predictions_total{stable_revision="1",canary_revision="2"} 2' \
        in metrics_text(c)


# -- the comparator between two real servers -------------------------------------------------------------------


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def model_server(predict: Callable[[list[float]], int], seen: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    """A V2 model server on loopback: one prediction per input row; it records what it was sent."""

    class Model(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body, "tenant": self.headers.get("x-tenant")})
            rows = body["inputs"][0]["data"]
            if any(r[0] < 0 for r in rows):
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            out = json.dumps(v2(*[predict(r) for r in rows])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    return Model


@pytest.fixture
def pair() -> Iterator[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]], Comparator]]:
    """Stable predicts row[0] > 5; the canary row[0] > 6 (they differ on rows in (5, 6]); a comparator between."""
    at_stable: list[dict[str, Any]] = []
    at_canary: list[dict[str, Any]] = []
    s, s_url = serve(model_server(lambda r: int(r[0] > 5), at_stable))
    c, c_url = serve(model_server(lambda r: int(r[0] > 6), at_canary))
    comparator = Comparator(s_url, c_url, 0.0, stable_revision=1, canary_revision=2, timeout=5)
    traffic, t_url = serve(_traffic_handler(comparator))
    stats, st_url = serve(_stats_handler(comparator))
    yield t_url, st_url, at_stable, at_canary, comparator
    for server in (s, c, traffic, stats):
        server.shutdown()
    comparator.close()


def infer(url: str, rows: list[list[float]]) -> httpx.Response:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(rows), 1], "data": rows}]}
    return httpx.post(f"{url}/v2/models/iris/infer", json=body, headers={"x-tenant": "risk"}, timeout=5)


def test_the_comparator_sends_each_request_to_both_and_counts_what_they_answered(pair: Any) -> None:
    traffic, stats, at_stable, at_canary, _ = pair
    rows = [[x / 2] for x in range(20)]  # 0 .. 9.5: rows 5.5 and 6 fall between the two thresholds
    answer = infer(traffic, rows)
    # The caller gets the canary's answer
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [int(r[0] > 6) for r in rows]
    # Both revisions got the same request: path, body and headers
    assert at_stable == at_canary and at_stable[0]["path"] == "/v2/models/iris/infer"
    assert at_stable[0]["tenant"] == "risk"
    counts = httpx.get(stats + AGREEMENT_PATH, timeout=5).json()
    assert counts["predictions"] == 20 and counts["differ"] == 2 and counts["requests"] == 1
    assert (counts["stableRevision"], counts["canaryRevision"]) == (1, 2)
    assert "modeldeploy_comparator_predictions_total" in httpx.get(stats + "/metrics", timeout=5).text
    assert httpx.get(stats + "/healthz", timeout=5).status_code == 200


def test_a_failed_answer_is_counted_as_an_error_not_compared(pair: Any) -> None:
    traffic, stats, *_ = pair
    assert infer(traffic, [[-1.0]]).status_code == 500  # both fail it: the canary's answer is passed on
    counts = httpx.get(stats + AGREEMENT_PATH, timeout=5).json()
    assert counts["predictions"] == 0 and counts["errors"] == {"stable": 1, "canary": 1, "canaryOnly": 0}


def test_a_canary_that_does_not_answer_gives_the_caller_502_and_counts_as_a_canary_only_error(pair: Any) -> None:
    _, _, _, _, comparator = pair
    comparator.canary_url = "http://127.0.0.1:9"  # nothing listens there
    _, traffic = serve(_traffic_handler(comparator))
    assert infer(traffic, [[1.0]]).status_code == 502
    assert comparator.counts.canary_only_errors == 1 and comparator.counts.tally.compared == 0


# -- the measurement -------------------------------------------------------------------------------------------

CONTEXT = RunContext(name=MD, namespace="risk", revision=2, stable_revision=1, canary_weight=0, model_version="8")


def measured(pair: Any, rows: list[list[float]], **rule: Any) -> Any:
    traffic, stats, *_ = pair
    for _ in range(5):
        assert infer(traffic, rows).status_code == 200
    metric = Metric.model_validate({"name": "agreement", "compare": {"maxDisagreement": 0.1, **rule}})
    return CompareProvider().measure(metric, CONTEXT, Target(url=stats + AGREEMENT_PATH), timeout=5)


def test_a_canary_that_differs_on_a_fifth_of_the_predictions_fails_a_ten_percent_limit(pair: Any) -> None:
    m = measured(pair, [[5.5], [1.0], [2.0], [9.0], [7.0]], minPredictions=20)
    assert m.verdict == Verdict.FAIL and m.value == pytest.approx(0.2)
    assert m.message.startswith("5 of 25 predictions (20.0%) differ from revision 1's; maxDisagreement 10.0%")


def test_within_the_limit_it_passes(pair: Any) -> None:
    m = measured(pair, [[5.5], *[[float(x)] for x in range(10)]], minPredictions=20)
    # 5.5 differs, and 6 (6 > 5 but not > 6): 2 of 11 rows per request
    assert m.verdict == Verdict.FAIL and m.value == pytest.approx(2 / 11)
    m = measured(pair, [[1.0], [9.0]], minPredictions=10, maxDisagreement=0.5)
    assert m.verdict == Verdict.PASS


def test_too_few_predictions_or_another_revisions_counts_say_nothing(pair: Any) -> None:
    m = measured(pair, [[1.0]], minPredictions=100)
    assert m.verdict == Verdict.INCONCLUSIVE and "5 predictions compared so far" in m.message
    _, stats, *_ = pair
    metric = Metric.model_validate({"name": "agreement", "compare": {"maxDisagreement": 0.1, "minPredictions": 1}})
    other = CompareProvider().measure(metric, RunContext(**{**CONTEXT.__dict__, "revision": 3}),
                                      Target(url=stats + AGREEMENT_PATH), timeout=5)
    assert other.verdict == Verdict.INCONCLUSIVE and "still counts for revision 2" in other.message
    gone = CompareProvider().measure(metric, CONTEXT, Target(url="http://127.0.0.1:9/agreement"), timeout=2)
    assert gone.verdict == Verdict.INCONCLUSIVE and "did not answer" in gone.message


# -- the spec ----------------------------------------------------------------------------------------------------

COMPARE = {"name": "agreement", "compare": {"maxDisagreement": 0.05}}
MESH = {"gatewayAPI": {"httpRoute": "fraud-route"}}
STEPS = [{"mirror": {"percent": 100}}, {"analysis": {}}, {"setWeight": 50}]


def rollout_with(metrics: list[dict[str, Any]], steps: list[dict[str, Any]] = STEPS) -> dict[str, Any]:
    return {"steps": steps, "trafficRouting": MESH, "analysis": {"interval": "5s", "metrics": metrics}}


def test_the_spec_takes_a_compare_metric_with_a_mirror_step() -> None:
    parsed = ModelDeploymentSpec.model_validate(spec("8", rollout=rollout_with([COMPARE])))
    assert parsed.rollout.compares() and parsed.rollout.analysis is not None
    assert parsed.rollout.analysis.compared() is not None
    assert parsed.rollout.analysis.compared().min_predictions == 100  # type: ignore[union-attr]


@pytest.mark.parametrize(("block", "message"), [
    pytest.param(rollout_with([COMPARE], [{"setWeight": 50}, {"analysis": {}}]), COMPARE_NEEDS_A_MIRROR,
                 id="no-mirror-step"),
    pytest.param(rollout_with([COMPARE, {**COMPARE, "name": "again"}]), ONE_COMPARE, id="two-compare-metrics"),
    pytest.param(rollout_with([{"name": "x", "compare": {"maxDisagreement": 0.1},
                                "webhook": {"url": "http://h/x"}}]), ONE_METRIC_KIND, id="compare-and-webhook"),
    pytest.param(rollout_with([{"name": "x", "compare": {"maxDisagreement": 1.5}}]), "less than or equal to 1",
                 id="a-share-above-one"),
])
def test_the_spec_refuses_a_compare_metric_it_cannot_honour(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")[:60]):
        ModelDeploymentSpec.model_validate(spec("8", rollout=block))


# -- the plan ----------------------------------------------------------------------------------------------------


def canary_plan(metrics: list[dict[str, Any]], **more: Any) -> rollout.Plan:
    block, on = rollout_with(metrics), {"nodeSelector": {"pool": "gpu"}}
    raw = spec("8", replicas=4, rollout=block, template=on)
    seen = observed(ready(1, 4), starting(2, replicas=1, ready=1), router_weight=0,
                    revisions=(record(1, "7", STABLE, replicas=4, rollout=block, template=on),
                               record(2, "8", PROGRESSING, replicas=4, rollout=block, template=on)), **more)
    old = status(Phase.PROGRESSING, stable=1, canary=2, started_ago=30, reason="Canary", canary_weight=0,
                 step_weight=0, current_step_index=1, step_started_at=rollout.timestamp(NOW - timedelta(seconds=5)))
    return rollout.plan(raw, old, seen, SETTINGS)


def test_a_canary_judged_by_its_answers_gets_a_comparator_and_the_mirror_goes_to_it() -> None:
    p = canary_plan([COMPARE])
    name = names.mirror_name(MD)
    dep, svc = manifests(p, "Deployment")[name], manifests(p, "Service")[name]
    pod = dep["spec"]["template"]
    # Its pods are no model's: `<md>`, `<md>-stable` and `<md>-canary` select on LABEL_MD, which they lack
    assert names.LABEL_MD not in pod["metadata"]["labels"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"] == {names.LABEL_MIRROR_OF: MD}
    args = pod["spec"]["containers"][0]["args"]
    assert args[:5] == ["compare", "--stable", f"http://{MD}-stable.risk.svc:80", "--canary",
                        f"http://{MD}-canary.risk.svc:80"]
    assert args[args.index("--canary-revision") + 1] == "2" and args[args.index("--stable-revision") + 1] == "1"
    assert pod["spec"]["containers"][0]["image"] == SETTINGS.comparator_image
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}  # where the model's pods are
    assert p.traffic is not None and p.traffic.compare and p.traffic.mirror == 100
    assert p.traffic.comparator_service == name


def test_without_a_compare_metric_there_is_no_comparator_and_the_copies_go_to_the_canary() -> None:
    p = canary_plan([])
    assert names.mirror_name(MD) not in manifests(p, "Deployment")
    assert p.traffic is not None and not p.traffic.compare


def test_the_comparator_goes_once_no_canary_runs() -> None:
    block = rollout_with([COMPARE])
    done = rollout.plan(spec("8", replicas=4, rollout=block), status(Phase.HEALTHY, stable=2),
                        observed(ready(2, 4), revisions=(record(1, "7", STABLE, replicas=4, rollout=block),
                                                        record(2, "8", STABLE, replicas=4, rollout=block)),
                                 services=frozenset({MD, f"{MD}-stable", f"{MD}-canary", names.mirror_name(MD)})),
                        SETTINGS)
    assert {(r.kind, r.name) for r in done.delete} >= {("Deployment", names.mirror_name(MD)),
                                                       ("Service", names.mirror_name(MD))}
    assert names.mirror_name(MD) not in manifests(done, "Deployment")


# -- the routes ----------------------------------------------------------------------------------------------


def mirror_targets(kube: Stored, kind: str) -> list[str]:
    if kind == "httproute":
        return [f["requestMirror"]["backendRef"]["name"] for r in kube.obj["spec"]["rules"]
                for f in r.get("filters") or [] if f.get("type") == "RequestMirror"]
    return [m["destination"]["host"] for h in kube.obj["spec"]["http"] for m in h.get("mirrors") or []]


@pytest.mark.parametrize("kind", ["httproute", "virtualservice"])
def test_with_compare_the_route_copies_to_the_comparator_and_finalize_takes_it_off(kind: str) -> None:
    kube = Stored(ROUTES[kind])
    r = routers(kube, kind, comparator=names.mirror_name(MD))
    r.set_side_routes([], 50)
    assert mirror_targets(kube, kind) == [f"{MD}-canary"]
    # A compare metric added mid-rollout: the copy moves, it is not doubled
    r.set_side_routes([], 50, compare=True)
    assert mirror_targets(kube, kind) == [names.mirror_name(MD)]
    r.set_side_routes([], 0)  # either is the operator's, and goes
    assert mirror_targets(kube, kind) == []
    r.set_side_routes([], 50, compare=True)
    r.finalize()
    assert mirror_targets(kube, kind) == [] and MD + "-" not in str(kube.obj["spec"]).replace(f"{MD}-stable", "")


def raw_request(url: str, request: bytes) -> bytes:
    """One request as bytes on a new connection, and the start of its answer."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        return s.recv(65536)


def test_a_request_target_that_names_another_host_is_refused(pair: Any) -> None:
    traffic, _, at_stable, at_canary, comparator = pair
    # `base + "@host/x"` would make the Service's name a user name, and the host the caller's choice
    for target in (b"@127.0.0.1:9/x", b"http://127.0.0.1:9/x"):
        answer = raw_request(traffic, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), (target, answer[:80])
    assert at_stable == at_canary == [] and comparator.counts.requests == 0
    # (`//host/x` the standard library's server reads as the path /host/x: it goes to the revisions, whose
    # answer (their 501 for a GET) comes back; nothing listens on port 9, so a hop there would be a 502)
    answer = raw_request(traffic, b"GET //127.0.0.1:9/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501"), answer[:80]


def test_a_chunked_body_is_forwarded_whole(pair: Any) -> None:
    traffic, _, at_stable, at_canary, comparator = pair
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 1], "data": [[1.0], [5.5]]}]})
    half = len(body) // 2
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part.encode() + b"\r\n"
                      for part in (body[:half], body[half:])) + b"0\r\n\r\n"
    answer = raw_request(traffic, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" + chunks)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert at_stable[0]["body"] == at_canary[0]["body"] == json.loads(body)
    assert (comparator.counts.tally.compared, comparator.counts.tally.differ) == (2, 1)
