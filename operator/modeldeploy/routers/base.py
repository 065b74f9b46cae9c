"""What every traffic router can do."""

from __future__ import annotations

from typing import Any, Protocol

from modeldeploy.k8s.client import Kube


class RouterError(RuntimeError):
    """The router's object is missing or does not route to this ModelDeployment; the message says how to fix it."""


class TrafficRouter(Protocol):
    """Carries a canary weight on some object the user owns, touching only what it manages."""

    def get_weight(self) -> int | None:
        """The canary weight the object carries now; None when it cannot tell."""
        ...

    def set_weight(self, canary_weight: int) -> None:
        """Route canary_weight percent to the canary Service and the rest to the stable one."""
        ...

    def verify(self, canary_weight: int) -> bool | None:
        """Does the object carry this weight? None when this router cannot tell."""
        ...

    def set_side_routes(self, headers: list[tuple[str, str]], mirror: int, compare: bool = False) -> None:
        """The ways the canary gets requests besides its weight, in one read and at most one write: requests with
        all these headers (name, exact value) go to it (none: that route is taken off), and a copy of `mirror`
        percent of the requests (0: none), whose answers are dropped; with `compare` the copies go to the
        comparator's Service instead, which sends each to both revisions."""
        ...

    def finalize(self) -> None:
        """Remove what it manages: all traffic to stable, the canary backend gone."""
        ...


class RouterFactory(Protocol):
    def __call__(self, kube: Kube, namespace: str, config: dict[str, Any], stable_service: str,
                 canary_service: str, comparator_service: str = "") -> TrafficRouter: ...
