"""How far the canary's answer is from stable's for the same request: pure, on parsed JSON bodies.

A model server puts its predictions in a known place: the V2 (Open Inference) protocol's `outputs[].data`
(MLServer, Triton, KServe), the V1 protocol's `predictions` (TensorFlow Serving, KServe V1); any other JSON answer
is one prediction as a whole. Predictions are paired in order (V2 outputs by name, then position); two numbers
agree within `tolerance`, anything else only when equal; a prediction one side gives and the other does not
differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Tally:
    """Predictions compared, and how many of them differ."""

    compared: int = 0
    differ: int = 0
    # The sum of |stable - canary| over the numeric pairs, and how many there were: the mean distance.
    distance: float = 0.0
    numeric: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.compared + other.compared, self.differ + other.differ, self.distance + other.distance,
                     self.numeric + other.numeric)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flat(item)]
    return [value]


def predictions(body: Any) -> list[Any]:
    """The predictions in one answer, in order."""
    if isinstance(body, dict):
        outputs = body.get("outputs")
        if isinstance(outputs, list) and all(isinstance(o, dict) and "data" in o for o in outputs):
            ordered = sorted(enumerate(outputs), key=lambda io: (str(io[1].get("name", "")), io[0]))
            return [leaf for _, o in ordered for leaf in _flat(o["data"])]
        if isinstance(body.get("predictions"), list):
            return _flat(body["predictions"])
    return [body]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def compare(stable: Any, canary: Any, tolerance: float = 0.0) -> Tally:
    """The two answers' predictions, paired."""
    a, b = predictions(stable), predictions(canary)
    out = Tally(compared=max(len(a), len(b)), differ=abs(len(a) - len(b)))
    for x, y in zip(a, b, strict=False):
        if _number(x) and _number(y):
            gap = abs(float(x) - float(y))
            out = replace(out, distance=out.distance + gap, numeric=out.numeric + 1,
                          differ=out.differ + (gap > tolerance))
        else:
            out = replace(out, differ=out.differ + (x != y))
    return out


@dataclass(frozen=True)
class Counts:
    """What a comparator has seen since it started (it starts anew for each canary revision), as its
    /agreement endpoint reports it."""

    stable_revision: int
    canary_revision: int
    requests: int = 0
    tally: Tally = field(default_factory=Tally)
    # Requests a side did not answer with a 2xx: they have no predictions to compare. `canary_only` counts those
    # the canary failed and stable answered, a difference clients of the canary would see.
    stable_errors: int = 0
    canary_errors: int = 0
    canary_only_errors: int = 0

    def seen(self, stable_ok: bool, canary_ok: bool, tally: Tally) -> Counts:
        """One more request: whether each side answered 2xx, and the predictions compared (when both did)."""
        return replace(self, requests=self.requests + 1, tally=self.tally + tally,
                       stable_errors=self.stable_errors + (not stable_ok),
                       canary_errors=self.canary_errors + (not canary_ok),
                       canary_only_errors=self.canary_only_errors + (stable_ok and not canary_ok))

    def to_json(self) -> dict[str, Any]:
        return {"stableRevision": self.stable_revision, "canaryRevision": self.canary_revision,
                "requests": self.requests, "predictions": self.tally.compared, "differ": self.tally.differ,
                "distance": self.tally.distance, "numeric": self.tally.numeric,
                "errors": {"stable": self.stable_errors, "canary": self.canary_errors,
                           "canaryOnly": self.canary_only_errors}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        """The counts a comparator reported; KeyError, TypeError or ValueError when it is not that shape."""
        errors = data["errors"]
        return cls(stable_revision=int(data["stableRevision"]), canary_revision=int(data["canaryRevision"]),
                   requests=int(data["requests"]),
                   tally=Tally(int(data["predictions"]), int(data["differ"]), float(data["distance"]),
                               int(data["numeric"])),
                   stable_errors=int(errors["stable"]), canary_errors=int(errors["canary"]),
                   canary_only_errors=int(errors["canaryOnly"]))
