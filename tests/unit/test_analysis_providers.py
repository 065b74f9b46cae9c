"""Analysis providers against a real HTTP server on loopback: what each answer becomes, and no redirect taken."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modeldeploy.analysis import registry
from modeldeploy.analysis.base import RunContext, Target
from modeldeploy.analysis.prometheus import query_value
from modeldeploy.api.spec import Metric
from modeldeploy.api.status import Verdict

CONTEXT = RunContext(name="fraud", namespace="risk", revision=4, stable_revision=3, canary_weight=10,
                     model_version="8")


class Server:
    """Answers each path with a scripted (status, headers, body, delay); records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
        self.seen: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []  # of each request, in order
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.seen.append((self.command, self.path, self.rfile.read(length)))
                server.headers.append(dict(self.headers))
                status, headers, body, delay = server.routes.get(self.path.split("?")[0], (404, {}, b"", 0.0))
                time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()


def webhook(url: str, timeout: int = 2) -> Metric:
    return Metric.model_validate({"name": "smoke", "webhook": {"url": url, "timeoutSeconds": timeout}})


def call(metric: Metric, **target: Any) -> Any:
    """Measure at the metric's own URL (as the reconciler resolves an inline one), with its own timeout."""
    url = metric.webhook.url if metric.webhook else metric.prometheus.address if metric.prometheus else ""
    return registry.provider_for(metric).measure(metric, CONTEXT, Target(url=url, **target),
                                                 registry.timeout_of(metric))


@pytest.mark.parametrize(("status", "verdict"), [(200, Verdict.PASS), (204, Verdict.PASS), (500, Verdict.FAIL),
                                                 (404, Verdict.FAIL)], ids=["200", "204", "500", "404"])
def test_webhook_status_is_the_verdict(server: Server, status: int, verdict: Verdict) -> None:
    server.routes["/smoke"] = (status, {}, b"", 0.0)
    m = call(webhook(f"{server.url}/smoke"))
    assert (m.verdict, m.value) == (verdict, float(status))
    # And the POST carried the rollout's context
    method, _, body = server.seen[0]
    assert method == "POST" and json.loads(body) == {"metric": "smoke", "name": "fraud", "namespace": "risk",
                                                     "revision": "4", "stable_revision": "3",
                                                     "canary_weight": "10", "model_version": "8",
                                                     "warmup_end": "0"}


def test_webhook_redirect_is_not_followed(server: Server) -> None:
    server.routes["/smoke"] = (302, {"Location": f"{server.url}/elsewhere"}, b"", 0.0)
    server.routes["/elsewhere"] = (200, {}, b"", 0.0)
    m = call(webhook(f"{server.url}/smoke"))
    assert m.verdict == Verdict.INCONCLUSIVE and "redirects are not followed" in m.message, m
    assert [path for _, path, _ in server.seen] == ["/smoke"]


def test_webhook_that_does_not_answer_in_time_is_inconclusive(server: Server) -> None:
    server.routes["/slow"] = (200, {}, b"", 2.5)
    started = time.monotonic()
    m = call(webhook(f"{server.url}/slow", timeout=1))
    assert m.verdict == Verdict.INCONCLUSIVE and "did not answer" in m.message
    assert time.monotonic() - started < 2.4


def test_webhook_nobody_listening_is_inconclusive(server: Server) -> None:
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()
    m = call(webhook(f"{url}/smoke"))
    assert m.verdict == Verdict.INCONCLUSIVE and "did not answer" in m.message


def vector(*values: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": f"p{i}"}, "value": [1, v]} for i, v in enumerate(values)]}}


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param(vector("0.01"), 0.01, id="one-series"),
    pytest.param({"status": "success", "data": {"resultType": "scalar", "result": [1, "2.5"]}}, 2.5, id="scalar"),
    pytest.param(vector(), "no data", id="no-data"),
    pytest.param(vector("0.1", "0.2", "0.3"), "3 series", id="several-series"),
    pytest.param(vector("NaN"), "NaN", id="nan"),
    pytest.param({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
                 "refused the query: parse error", id="query-typo"),
    pytest.param({"status": "success", "data": {"resultType": "matrix", "result": []}}, "matrix", id="range-vector"),
])
def test_query_answers(payload: dict[str, Any], expected: float | str) -> None:
    got = query_value(payload)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got, got
    else:
        assert got == pytest.approx(expected)


def prometheus(address: str) -> Metric:
    return Metric.model_validate({"name": "error-rate", "prometheus": {
        "address": address, "query": 'errors{namespace="$namespace", revision="$revision"}'},
        "thresholdRange": {"max": 0.05}})


@pytest.mark.parametrize(("payload", "status", "verdict", "says"), [
    pytest.param(vector("0.01"), 200, Verdict.PASS, "within range", id="pass"),
    pytest.param(vector("0.2"), 200, Verdict.FAIL, "above the maximum", id="fail"),
    pytest.param(vector("0.1", "0.2"), 200, Verdict.INCONCLUSIVE, "2 series", id="several-series"),
    pytest.param(vector("NaN"), 200, Verdict.INCONCLUSIVE, "NaN", id="nan"),
    pytest.param({"status": "error", "error": "unknown function"}, 400, Verdict.INCONCLUSIVE, "unknown function",
                 id="query-refused"),
])
def test_prometheus_measurement(server: Server, payload: dict[str, Any], status: int, verdict: Verdict,
                                says: str) -> None:
    server.routes["/api/v1/query"] = (status, {}, json.dumps(payload).encode(), 0.0)
    m = call(prometheus(server.url))
    assert m.verdict == verdict and says in m.message, m
    # The variables are substituted in the query it sent, and an inconclusive message names the query
    assert 'revision%3D%224%22' in server.seen[0][1] or 'revision=%224%22' in server.seen[0][1]
    if verdict == Verdict.INCONCLUSIVE:
        assert 'errors{namespace="risk", revision="4"}' in m.message


def test_prometheus_redirect_is_not_followed(server: Server) -> None:
    server.routes["/api/v1/query"] = (301, {"Location": f"{server.url}/other"}, b"", 0.0)
    m = call(prometheus(server.url))
    assert m.verdict == Verdict.INCONCLUSIVE
    assert [path.split("?")[0] for _, path, _ in server.seen] == ["/api/v1/query"]


def test_a_provider_target_sends_its_headers_and_token_and_no_redirect(server: Server) -> None:
    server.routes["/checks/smoke"] = (204, {}, b"", 0.0)
    metric = Metric.model_validate({"name": "smoke", "webhook": {"provider": "checks", "path": "/smoke"}})
    m = registry.provider_for(metric).measure(metric, CONTEXT, Target(
        url=f"{server.url}/checks/smoke", headers={"X-Scope-OrgID": "risk"}, token="s3cret"), 2)
    assert (m.verdict, m.value) == (Verdict.PASS, 204.0)
    sent = server.headers[0]
    assert sent["X-Scope-OrgID"] == "risk" and sent["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in m.message


def test_a_run_keeps_to_its_budget(server: Server) -> None:
    server.routes["/slow"] = (200, {}, b"", 1.5)
    metrics = [webhook(f"{server.url}/slow", timeout=5), webhook(f"{server.url}/slow", timeout=5)]
    metrics[1] = metrics[1].model_copy(update={"name": "second"})
    targets = {m.name: Target(url=m.webhook.url) for m in metrics if m.webhook}
    started = time.monotonic()
    out = registry.run(metrics, CONTEXT, targets, budget=1.0)
    # The first metric's 5 s timeout is cut to what is left of the run's 1 s; the second is not measured at all
    assert time.monotonic() - started < 1.4
    assert [m.verdict for m in out] == [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE]
    assert "did not answer" in out[0].message and "the run's 1 s were spent" in out[1].message
    assert len(server.seen) == 1


def test_a_metric_with_no_target_says_why() -> None:
    metric = webhook("http://127.0.0.1:9/x")
    out = registry.run([metric], CONTEXT, {"smoke": "AnalysisProvider 'checks' does not exist"})
    assert (out[0].verdict, out[0].message) == (Verdict.INCONCLUSIVE, "AnalysisProvider 'checks' does not exist")


def test_an_answer_is_read_only_so_far(server: Server) -> None:
    server.routes["/api/v1/query"] = (200, {}, b"x" * (3 << 20), 0.0)
    m = call(prometheus(server.url))
    assert m.verdict == Verdict.INCONCLUSIVE and "without JSON" in m.message
