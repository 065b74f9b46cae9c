"""A webhook endpoint the tests own: a stdlib HTTP server on 127.0.0.1 (an ephemeral port) that answers what a
test chooses and records every request it was sent.

The operator's webhook contract (operator/modeldeploy/analysis/webhook.py): for each metric of a run it POSTs a
JSON body `{"metric": <name>, "name", "namespace", "revision", "stable_revision", "canary_weight",
"model_version", "warmup_end"}` (the context's values as strings) to the metric's URL. The answer's HTTP status is the
measurement's value and decides it: 2xx passes, 3xx is Inconclusive (a redirect is never followed), any other
status fails; no answer within timeoutSeconds is Inconclusive.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content_type: str
    body: bytes
    at: float  # time.monotonic() when it arrived
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


# A fixed status code, or one chosen per request from its JSON body (e.g. by the revision it asks about).
Answer = int | Callable[[dict[str, Any]], int]


class Webhook:
    """An HTTP endpoint on loopback that answers each request with `answer` (a 3xx also carries `location`)
    and records each request it was sent."""

    def __init__(self, answer: Answer = 200, location: str = "") -> None:
        self.answer, self.location = answer, location
        self.requests: list[Request] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                asked = Request(self.command, self.path, self.headers.get("Content-Type", ""), body,
                                time.monotonic(), dict(self.headers))
                hook.requests.append(asked)
                status = hook.answer if isinstance(hook.answer, int) else hook.answer(asked.json())
                self.send_response(status)
                if 300 <= status < 400 and hook.location:
                    self.send_header("Location", hook.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_HEAD = _serve

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/analysis/canary-check") -> str:
        return f"{self.base}{path}"

    def for_revision(self, revision: int) -> list[Request]:
        """The requests that asked about one revision (POSTs whose JSON body names it)."""
        return [r for r in list(self.requests) if r.method == "POST" and r.json().get("revision") == str(revision)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhooks() -> Iterator[Any]:
    """Make any number of `Webhook`s for one test; each is shut down afterwards."""
    made: list[Webhook] = []

    def make(answer: Answer = 200, location: str = "") -> Webhook:
        hook = Webhook(answer, location)
        made.append(hook)
        return hook

    try:
        yield make
    finally:
        for hook in made:
            hook.stop()
