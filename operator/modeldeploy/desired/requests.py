"""Imperative requests: annotations that `kubectl modeldeploy` writes and the operator consumes.

They never touch the spec, so a GitOps source of truth is never fought over.
Each one-shot request carries a token; the operator records the tokens it has
carried out in status, so a request is acted on exactly once, even across a
restart, and no annotation needs to be removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.api.names import GROUP

PROMOTE = f"{GROUP}/promote"  # "<token>": finish the current step
PROMOTE_FULL = f"{GROUP}/promote-full"  # "<token>": skip every remaining step
ABORT = f"{GROUP}/abort"  # "<token>": send traffic back to stable, stop this revision
ROLLBACK = f"{GROUP}/rollback"  # "<revision>@<token>": serve that revision
PAUSED = f"{GROUP}/paused"  # "true" while a person holds the rollout
RESUME = f"{GROUP}/resume"  # "<token>": go on after a hold the operator chose (too many inconclusive runs)


KNOWN = (PROMOTE, PROMOTE_FULL, ABORT, ROLLBACK, PAUSED, RESUME)
ROLLBACK_FORM = "<revision>@<token> (`kubectl modeldeploy rollback NAME --to-revision N` writes it)"


@dataclass(frozen=True)
class Requests:
    """The requests not yet carried out, read from annotations and status."""

    promote: str | None = None
    promote_full: str | None = None
    abort: str | None = None
    rollback: tuple[int, str] | None = None
    paused: bool = False
    resume: str | None = None


def pending(annotations: dict[str, str], handled: dict[str, str]) -> Requests:
    """Requests whose token differs from the one last carried out."""

    def new(key: str) -> str | None:
        token = annotations.get(key)
        return token if token and handled.get(key) != token else None

    rollback = None
    raw = new(ROLLBACK)
    if raw:
        number, _, _ = raw.partition("@")
        if number.isdigit():
            rollback = (int(number), raw)
    return Requests(promote=new(PROMOTE), promote_full=new(PROMOTE_FULL), abort=new(ABORT), rollback=rollback,
                    paused=annotations.get(PAUSED, "").lower() == "true", resume=new(RESUME))


def unrecognised(annotations: dict[str, str], handled: dict[str, str]) -> dict[str, str]:
    """Annotations of the operator's group that ask for nothing it can do, not yet reported: a misspelt request
    (`modeldeploy.dev/promtoe`) or a rollback that names no revision. Key -> the value reported (a new value is
    reported again); nothing else is done with them."""
    odd = {k: v for k, v in annotations.items() if k.startswith(f"{GROUP}/") and k not in KNOWN}
    raw = annotations.get(ROLLBACK)
    if raw and not raw.partition("@")[0].isdigit():
        odd[ROLLBACK] = raw
    return {k: v for k, v in odd.items() if handled.get(k) != v}


def unrecognised_message(key: str, value: str) -> str:
    if key == ROLLBACK:
        return f"annotation {key}={value!r} names no revision: it takes {ROLLBACK_FORM}; nothing was rolled back"
    return (f"annotation {key} asks for nothing the operator knows, so it does nothing; the requests are "
            f"{', '.join(KNOWN)} (`kubectl modeldeploy promote|abort|pause|resume|rollback` writes them)")
