"""HTTP for analysis providers: one request, a timeout, and never a redirect.

A redirect would let an analysis endpoint send the operator anywhere (another host inside the cluster's
network), so a 3xx is an answer like any other status, never followed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

# Error texts end up in status: keep them short.
MAX_TEXT = 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: object, **__: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    location: str = ""  # where a 3xx pointed, for the message


class Unreachable(Exception):
    """No HTTP answer at all: refused, timed out, a TLS or DNS failure."""


def request(url: str, timeout: float, body: bytes | None = None) -> Answer:
    """One GET (or POST with a JSON body); any HTTP status is an Answer, no answer raises Unreachable."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read() or b"", exc.headers.get("Location", "") if exc.headers else "")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(short(str(reason))) from exc


def short(text: str) -> str:
    """One line of at most MAX_TEXT characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"
