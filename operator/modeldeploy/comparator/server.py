"""The comparator's HTTP: each mirrored request goes to both revisions at once; their answers are compared.

The caller (a mesh's mirror) gets the canary's answer, which it drops. Both calls have timeouts and follow no
redirect. The stats port answers /healthz, /agreement (the counts, as JSON, which the operator reads) and
/metrics (the same counts for Prometheus, for dashboards).
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from modeldeploy.comparator import AGREEMENT_PATH
from modeldeploy.comparator.agreement import Counts, Tally, compare

log = logging.getLogger("modeldeploy.comparator")
# Not passed on: they describe one connection, not the request (RFC 9110 section 7.6.1), or are set anew.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-authorization", "proxy-authenticate", "host", "content-length"})
MAX_BODY = 64 << 20  # a larger request is refused: the comparator holds each body in memory twice


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


class Comparator:
    """Forwards requests to both revisions and keeps the counts; thread-safe."""

    def __init__(self, stable_url: str, canary_url: str, tolerance: float, stable_revision: int,
                 canary_revision: int, timeout: float = 30.0) -> None:
        self.stable_url, self.canary_url = stable_url.rstrip("/"), canary_url.rstrip("/")
        self.tolerance = tolerance
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False,
                                    limits=httpx.Limits(max_connections=64))
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="stable")
        self._lock = threading.Lock()
        self._counts = Counts(stable_revision, canary_revision)

    @property
    def counts(self) -> Counts:
        with self._lock:
            return self._counts

    def _call(self, base: str, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        try:
            r = self._client.request(method, base + path, headers=headers, content=body)
            return Answer(r.status_code, r.content, r.headers.get("content-type", ""))
        except httpx.HTTPError as exc:
            log.debug("%s%s: %s", base, path, exc)
            return None

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        """The request sent to both revisions; the canary's answer (None: it gave none)."""
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        stable_call = self._pool.submit(self._call, self.stable_url, method, path, sent, body)
        canary = self._call(self.canary_url, method, path, sent, body)
        stable = stable_call.result()
        self.record(stable, canary)
        return canary

    def record(self, stable: Answer | None, canary: Answer | None) -> None:
        ok_s, ok_c = _ok(stable), _ok(canary)
        tally = Tally()
        if ok_s and ok_c:
            assert stable is not None and canary is not None
            tally = compare(_json(stable.body), _json(canary.body), self.tolerance)
        with self._lock:
            self._counts = self._counts.seen(ok_s, ok_c, tally)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def _ok(answer: Answer | None) -> bool:
    return answer is not None and 200 <= answer.status < 300


def _json(body: bytes) -> Any:
    """The parsed answer; a body that is not JSON is compared as its bytes."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def metrics_text(counts: Counts) -> str:
    """The counts in Prometheus' text format."""
    labels = f'stable_revision="{counts.stable_revision}",canary_revision="{counts.canary_revision}"'
    rows = [
        ("modeldeploy_comparator_requests_total", "Mirrored requests sent to both revisions", counts.requests, ""),
        ("modeldeploy_comparator_predictions_total", "Predictions compared", counts.tally.compared, ""),
        ("modeldeploy_comparator_differing_predictions_total", "Predictions that differ from stable's",
         counts.tally.differ, ""),
        ("modeldeploy_comparator_errors_total", "Requests a revision did not answer with a 2xx",
         counts.stable_errors, ',side="stable"'),
        ("modeldeploy_comparator_errors_total", "", counts.canary_errors, ',side="canary"'),
    ]
    out = []
    for name, text, value, extra in rows:
        if text:
            out += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
        out.append(f"{name}{{{labels}{extra}}} {value}")
    return "\n".join(out) + "\n"


def _traffic_handler(comparator: Comparator) -> type[BaseHTTPRequestHandler]:
    class Traffic(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # a client that stops sending mid-request does not hold a thread for ever

        def _any(self) -> None:
            # Only a path is forwarded: a request target such as `@host/x` or `//host/x` would make the URL
            # name another host than the revisions' Services.
            if not self.path.startswith("/") or self.path.startswith("//"):
                self.send_error(400, "the comparator forwards paths only (a request target starting with one /)")
                return
            try:
                body = self._body()
            except ValueError as exc:
                self.send_error(400, str(exc))
                return
            if body is None:
                self.send_error(413, f"the comparator takes bodies of at most {MAX_BODY} bytes")
                return
            answer = comparator.forward(self.command, self.path, dict(self.headers.items()), body)
            if answer is None:
                self.send_error(502, "the canary did not answer")
                return
            self.send_response(answer.status)
            if answer.content_type:
                self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def _body(self) -> bytes | None:
            """The request's body, sized or chunked (as a mesh forwards an HTTP/2 client's); None when too large."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"x", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
                    if len(out) > MAX_BODY:
                        return None
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("a negative Content-Length")
            if length > MAX_BODY:
                return None
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Traffic


def _stats_handler(comparator: Comparator) -> type[BaseHTTPRequestHandler]:
    class Stats(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                body, kind = b"ok\n", "text/plain"
            elif self.path == AGREEMENT_PATH:
                body, kind = json.dumps(comparator.counts.to_json()).encode(), "application/json"
            elif self.path == "/metrics":
                body, kind = metrics_text(comparator.counts).encode(), "text/plain; version=0.0.4"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Stats


def serve(comparator: Comparator, traffic_port: int, stats_port: int, host: str = "0.0.0.0") -> None:
    """Serve both ports until interrupted."""
    traffic = ThreadingHTTPServer((host, traffic_port), _traffic_handler(comparator))
    stats = ThreadingHTTPServer((host, stats_port), _stats_handler(comparator))
    traffic.daemon_threads = stats.daemon_threads = True
    threading.Thread(target=stats.serve_forever, name="stats", daemon=True).start()
    log.info("comparing %s (revision %d) with %s (revision %d); mirrored requests on :%d, counts on :%d",
             comparator.canary_url, comparator.counts.canary_revision, comparator.stable_url,
             comparator.counts.stable_revision, traffic_port, stats_port)
    try:
        traffic.serve_forever()
    finally:
        traffic.server_close()
        stats.shutdown()
        comparator.close()
