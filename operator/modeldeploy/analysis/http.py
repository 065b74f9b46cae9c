"""HTTP for analysis providers (httpx): one request, explicit timeouts, a bounded answer, never a redirect.

A redirect would let an analysis endpoint send the operator anywhere (another host inside the cluster's
network), so a 3xx is an answer like any other status, never followed. Proxy and CA settings from the
environment are not used either: what the operator reaches, and how it trusts it, is what the
AnalysisProvider says.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx

from modeldeploy.analysis.base import Target

# Error texts end up in status: keep them short.
MAX_TEXT = 300
# A Prometheus answer with one series, or a webhook's, is small; more is read no further.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    location: str = ""  # where a 3xx pointed, for the message


class Unreachable(Exception):
    """No HTTP answer at all: refused, timed out, a TLS or DNS failure."""


def request(target: Target, timeout: float, body: bytes | None = None, url: str | None = None) -> Answer:
    """One GET of `url` (default: the target's), or a POST of a JSON body; any HTTP status is an Answer, no answer
    raises Unreachable."""
    headers = dict(target.headers)
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=target.ca_bundle) if target.ca_bundle \
            else True
        with httpx.Client(verify=verify, follow_redirects=False, trust_env=False,
                          timeout=httpx.Timeout(timeout)) as client, \
                client.stream("POST" if body is not None else "GET", url or target.url, content=body,
                              headers=headers) as response:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= MAX_BODY:
                    break
            return Answer(response.status_code, data[:MAX_BODY], response.headers.get("location", ""))
    except (httpx.HTTPError, ssl.SSLError, ValueError) as exc:
        raise Unreachable(short(str(exc) or type(exc).__name__)) from exc


def short(text: str) -> str:
    """One line of at most MAX_TEXT characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"
