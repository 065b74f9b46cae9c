"""Does a live object already say everything a desired manifest says?

A reconcile sends a server-side apply only when it does not, so a reconcile
with nothing to change makes no write. Fields the server adds (defaults,
status, other managers' fields) are ignored; fields we set and someone else
changed are drift, and are put back.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _same_scalar(want: Any, have: Any, quantity: bool) -> bool:
    if want == have:
        return True
    if not quantity or isinstance(want, bool) or isinstance(have, bool):
        return False
    # "1" vs 1, "500m" vs "0.5", "1Gi" vs "1073741824": quantities the server normalised.
    try:
        return Decimal(parse_quantity(want)) == Decimal(parse_quantity(have))
    except (ValueError, TypeError, InvalidOperation):
        return False


# Maps whose values are resource quantities, which the server rewrites.
QUANTITY_MAPS = ("limits", "requests")
# Maps that mean something only as a whole: a live selector with a key more selects fewer pods (the client
# Service narrows to one revision between rollouts and widens again when a canary starts).
EXACT_MAPS = ("selector", "nodeSelector")


def covers(have: Any, want: Any, quantity: bool = False) -> bool:
    """True when `have` (live) holds every field of `want` (desired) with the same value."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return _empty(want) and _empty(have)
        return all(covers(have.get(k), v, quantity or k in QUANTITY_MAPS) if not _empty(v)
                   else _empty(have.get(k)) or have.get(k) == v
                   for k, v in want.items()) \
            and all(set(have.get(k) or {}) == set(v) for k, v in want.items()
                    if k in EXACT_MAPS and isinstance(v, dict))
    if isinstance(want, list):
        if not isinstance(have, list):
            return _empty(want) and _empty(have)
        return len(want) == len(have) and all(covers(h, w) for h, w in zip(have, want, strict=True))
    return _same_scalar(want, have, quantity)


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """True when the live object is missing or differs from the desired manifest."""
    if live is None:
        return True
    want = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return not covers(live, want)
