"""A pass-through between the operator and kube-apiserver that the tests own.

The operator is started with `ApiProxy.kubeconfig`, which names the proxy (plain HTTP on loopback, no
credentials); the proxy sends each request on to the real API server with the cluster admin's client
certificate and relays the answer byte for byte, watch streams included. Because every request passes
through it, a test can see what the operator writes and act at an exact point:

- `on_write` is called once a write (POST, PUT, PATCH, DELETE) has been answered by the API server and
  before the answer is relayed: the crash-point harness kills the operator there, so the write is done
  but the operator never learned its result.
- `fault` chooses, per request, a `Fault`: an error answer instead of the API server's (500, 503, a 409
  conflict, a 429 with Retry-After), added latency, a watch stream closed after some events, a watch that
  silently drops events or delivers them late, or a GET answered from an older snapshot (the first answer
  to the same request). `injected` counts what was done.

The proxy runs its own asyncio loop (aiohttp) in a daemon thread, so tests stay synchronous.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Headers that describe one connection, not the message: never forwarded (RFC 9110, 7.6.1). Content-Length is
# set again by whoever writes the body.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "host", "content-length"})


@dataclass(frozen=True)
class Write:
    """One write the operator sent, numbered from 1 in the order the API server answered them."""

    number: int
    method: str
    path: str
    status: int

    def __str__(self) -> str:
        # The path without the API prefix and namespace reads best in a table: `PATCH deployments/fraud-r2`.
        resource = self.path.split("?")[0].split("/namespaces/", 1)[-1].partition("/")[2] or self.path
        return f"{self.method} {resource} → {self.status}"


@dataclass(frozen=True)
class Call:
    """A request as a fault schedule sees it: numbered from 1 over every request the proxy relayed."""

    number: int
    method: str
    path: str
    watch: bool


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one request instead of, or besides, relaying it."""

    status: int = 0  # answer this, as a Kubernetes Status, and never send the request on
    retry_after: int = 0  # with status 429: the Retry-After header, in seconds
    delay: float = 0.0  # wait this long before sending the request on
    close_after: int = 0  # a watch: relay this many events, then end the stream
    drop_every: int = 0  # a watch: leave out every n-th event (the client never learns of it)
    lag: float = 0.0  # a watch: relay each event this many seconds after it came (a lagging API server)
    stale: bool = False  # a GET or LIST: answer with the first answer relayed for that same request

    @property
    def kind(self) -> str:
        return (f"answer {self.status}" if self.status else f"+{self.delay:g} s" if self.delay
                else f"watch closed after {self.close_after}" if self.close_after
                else f"watch drops 1 in {self.drop_every}" if self.drop_every
                else f"watch lags {self.lag:g} s" if self.lag else "stale read" if self.stale else "none")


# The reason kube-apiserver gives with each status the proxy can answer instead of it.
REASONS = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


def _status_answer(fault: Fault) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"injected by the test's API proxy: {fault.status}",
            "reason": REASONS.get(fault.status, "InternalError"), "code": fault.status}
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
    return web.Response(status=fault.status, text=json.dumps(body), content_type="application/json", headers=headers)


def _upstream(kubeconfig: Path) -> tuple[str, ssl.SSLContext]:
    """The API server's address and a TLS context with the admin's client certificate, from a kubeconfig."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return cfg.host.rstrip("/"), context


class ApiProxy:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.upstream, self._tls = _upstream(kubeconfig)
        self.writes: list[Write] = []
        self.on_write: Callable[[Write], None] | None = None
        self.fault: Callable[[Call], Fault | None] | None = None
        self.injected: Counter[str] = Counter()
        self.calls = 0
        # The first answer to each GET (path and query), for stale reads: status, headers, body.
        self.first_answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.kubeconfig = workdir / "proxy.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }))

    async def _start(self) -> int:
        # No total timeout: watches stay open as long as the operator asks (it sets timeoutSeconds itself).
        # auto_decompress off, so a compressed answer is relayed as sent, with its Content-Encoding.
        # A watch event is one line; read_bufsize bounds a line, and an object can be far larger than 64 KiB.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5),
                                              auto_decompress=False, read_bufsize=2**23)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._relay)
        # A client gone (a killed operator) cancels its handler, which closes the upstream request too: no watch
        # of a dead process stays open on the API server.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.calls += 1
            call = Call(self.calls, request.method, request.rel_url.raw_path_qs,
                        request.query.get("watch", "") in ("1", "true"))
            fault = self.fault(call) if self.fault is not None else None
            if fault is not None and fault.stale and call.path not in self.first_answers:
                fault = None  # nothing older to answer with yet
            if fault is not None:
                self.injected[fault.kind] += 1
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status:
            return _status_answer(fault)
        if fault is not None and fault.stale:
            status, headers, old = self.first_answers[call.path]
            return web.Response(status=status, body=old, headers=headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                         headers=headers, data=body or None, ssl=self._tls,
                                         # no Content-Type of aiohttp's own: the API server reads a DELETE's
                                         # body without one as JSON, and refuses application/octet-stream
                                         skip_auto_headers=("Content-Type",)) as answer:
            if request.method in WRITES:
                with self._lock:
                    write = Write(len(self.writes) + 1, request.method, request.rel_url.raw_path_qs, answer.status)
                    self.writes.append(write)
                    hook = self.on_write
                if hook is not None:
                    hook(write)
            relayed = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            if request.method == "GET" and not call.watch:
                body = await answer.read()
                with self._lock:
                    self.first_answers.setdefault(call.path, (answer.status, relayed, body))
                return web.Response(status=answer.status, body=body, headers=relayed)
            response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=relayed)
            try:
                await response.prepare(request)
                if call.watch and fault is not None and (fault.close_after or fault.drop_every or fault.lag):
                    await self._relay_events(answer, response, fault)
                else:
                    async for chunk in answer.content.iter_any():
                        await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the operator went away (killed) mid-answer; its next process asks again
            return response

    async def _relay_events(self, answer: aiohttp.ClientResponse, response: web.StreamResponse,
                            fault: Fault) -> None:
        """A watch stream one event (one JSON line) at a time: each late by `fault.lag`, some left out, or the
        stream cut short."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while line := await answer.content.readline():
                await arrived.put((loop.time() + fault.lag, line))
            await arrived.put((0.0, b""))

        reader = asyncio.create_task(read())
        try:
            seen = 0
            while True:
                due, line = await arrived.get()
                if not line:
                    return
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                seen += 1
                if fault.drop_every and seen % fault.drop_every == 0:
                    with self._lock:
                        self.injected["watch event dropped"] += 1
                    continue
                await response.write(line)
                if fault.close_after and seen >= fault.close_after:
                    return
        finally:
            reader.cancel()

    def close(self) -> None:
        async def stop() -> None:
            await self._runner.cleanup()
            await self._session.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
