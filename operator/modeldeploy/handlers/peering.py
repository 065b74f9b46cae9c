"""High availability: several `modeldeploy run --peering NAME` replicas, and only one of them acts.

kopf's peering does the pausing. Every replica keeps its own entry
`{priority, lifetime, lastseen}` alive in the status of a peering object (a
KopfPeering named NAME in each watched namespace; a ClusterKopfPeering with
--all-namespaces). A replica that sees a live peer with a higher priority stops
watching ("pauses"); when that peer's entry is removed (it exited) or expires (it
was killed: `lastseen + lifetime` passed), the next one resumes and re-lists
everything, so the new active replica catches up with whatever changed meanwhile.

Priorities must differ. Two live peers with the SAME priority make kopf pause both
(on purpose: it cannot tell which should act), and nobody serves until one of them
goes. So by default each replica draws its priority at random from 1..2**31-1: two
replicas tie with a probability of about 1 in 2 billion, and a replica that draws a
live peer's priority draws again. An explicit `--priority` equal to a live peer's is
a misconfiguration: the operator warns at start (and kopf warns again and freezes).

kopf pauses only its own watches. The operator's own step and retry timers (the
Coalescer) would go on reconciling on a paused replica, so every reconcile first
asks `Peering.hold`: it reads the peering object and lets the reconcile run only if
this replica is the live one with the highest priority and its own keep-alive is
current. A replica that loses the lead (a newer replica drew a higher priority)
therefore stops acting as soon as the newcomer's entry reaches the API server.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.handlers.queue import Hold
from modeldeploy.k8s import peering as objects
from modeldeploy.k8s.client import Kube

log = logging.getLogger("modeldeploy.peering")

# How long a replica's keep-alive counts (kopf's settings.peering.lifetime; kopf's default is 60 s).
# A standby takes over at most this long after the active replica died without a word
# (SIGKILL, node loss); a replica that exits cleanly removes its entry and hands over at once.
# kopf refreshes the entry 5-10 s before it expires (every 5-10 s with 15 s), so a live
# replica is never taken for dead by a slow API call or a few seconds of clock skew.
LIFETIME = 15
PRIORITY_RANGE = (1, 2**31 - 1)  # int32, as kopf and JSON consumers of the peering status expect
JOIN_RETRY_SECONDS = 1.0  # how soon to look again while this replica's own entry is not there yet
KOPF_DEFAULT_LIFETIME = 60  # what kopf assumes for an entry without a lifetime


def draw_priority(taken: Collection[int] = ()) -> int:
    """A random priority from a large range, never one of `taken` (the live peers')."""
    low, high = PRIORITY_RANGE
    while True:
        priority = low + secrets.randbelow(high - low + 1)
        if priority not in taken:
            return priority


def own_identity() -> str:
    """This replica's key in the peering status: kopf's POD_ID convention, else host, pid and a random tag."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Peer:
    identity: str
    priority: int
    lastseen: datetime
    lifetime: timedelta

    def alive(self, now: datetime) -> bool:
        return now < self.lastseen + self.lifetime


def peers(status: Mapping[str, Any] | None, now: datetime) -> list[Peer]:
    """The entries of a peering object's status, read the way kopf reads them."""
    out = []
    for identity, info in (status or {}).items():
        if not isinstance(info, Mapping):
            continue
        try:
            lastseen = datetime.fromisoformat(str(info["lastseen"])) if info.get("lastseen") else now
            if lastseen.tzinfo is None:
                lastseen = lastseen.replace(tzinfo=UTC)
            priority = int(info.get("priority", 0))
            lifetime = timedelta(seconds=int(info.get("lifetime", KOPF_DEFAULT_LIFETIME)))
        except (TypeError, ValueError):
            # kopf could not read it either; count it as a live peer of an unknown priority: stand by.
            lastseen, priority, lifetime = now, PRIORITY_RANGE[1] + 1, timedelta(seconds=KOPF_DEFAULT_LIFETIME)
        out.append(Peer(str(identity), priority, lastseen, lifetime))
    return out


class Role(enum.Enum):
    ACTIVE = "active"  # own entry is live, and no live peer has a higher or the same priority
    STANDBY = "standby"  # a live peer has a higher (or the same) priority
    JOINING = "joining"  # own entry is missing or expired: wait for kopf's next keep-alive


def role(status: Mapping[str, Any] | None, identity: str, priority: int, now: datetime) -> tuple[Role, list[Peer]]:
    """This replica's role given a peering object's status; also the live peers that block it."""
    entries = peers(status, now)
    blocking = [p for p in entries if p.identity != identity and p.alive(now) and p.priority >= priority]
    if blocking:
        return Role.STANDBY, blocking
    if not any(p.identity == identity and p.alive(now) for p in entries):
        return Role.JOINING, []
    return Role.ACTIVE, []


@dataclass
class Peering:
    """This replica's place among its peers; `hold` is the Coalescer's gate."""

    kube: Kube
    name: str
    identity: str
    priority: int
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide (one ClusterKopfPeering)
    _roles: dict[str | None, Role] = field(default_factory=dict)

    def scope(self, namespace: str) -> str | None:
        """Where this replica's peering object for a namespace lives (None: cluster-scoped)."""
        return namespace if self.namespaces else None

    async def hold(self, namespace: str) -> Hold | None:
        scope = self.scope(namespace)
        obj = await asyncio.to_thread(objects.get, self.kube, self.name, scope)
        now = datetime.now(UTC)
        current, blocking = role((obj or {}).get("status"), self.identity, self.priority, now)
        if self._roles.get(scope) != current:
            where = f"in namespace {scope}" if scope else "cluster-wide"
            log.info("peering %r %s: this replica (priority %s) is %s%s", self.name, where, self.priority,
                     current.value, f"; {_describe(blocking)}" if blocking else "")
            self._roles[scope] = current
        if current is Role.ACTIVE:
            return None
        if current is Role.STANDBY:
            return Hold(f"standby: {_describe(blocking)}")
        return Hold("own peering keep-alive not seen yet", retry_after=JOIN_RETRY_SECONDS)


def _describe(blocking: list[Peer]) -> str:
    return ", ".join(f"{p.identity} (priority {p.priority}) is alive" for p in blocking)


def prepare(kube: Kube, name: str, namespaces: Collection[str], priority: int | None) -> Peering:
    """Before kopf starts: check the CRD, make the peering objects, pick (or check) the priority.

    `namespaces` empty means cluster-wide. Raises PeeringError when the peering cannot
    work (no CRD, no permission), rather than letting kopf wait forever.
    """
    scopes: list[str | None] = list(namespaces) or [None]
    objects.require_crd(kube, scopes[0])
    now = datetime.now(UTC)
    live: list[Peer] = []
    for scope in scopes:
        obj = objects.ensure(kube, name, scope)
        live += [p for p in peers(obj.get("status"), now) if p.alive(now)]
    identity = own_identity()
    live = [p for p in live if p.identity != identity]
    if priority is None:
        priority = draw_priority({p.priority for p in live})
    else:
        same = [p for p in live if p.priority == priority]
        if same:
            log.warning("peering %r: %s already run(s) with priority %s; kopf pauses ALL replicas of equal "
                        "priority and nothing is served until one of them stops. Give each replica its own "
                        "--priority, or leave it out (each replica then draws a distinct one).",
                        name, ", ".join(sorted({p.identity for p in same})), priority)
    where = f"namespace(s) {', '.join(namespaces)}" if namespaces else "the whole cluster"
    log.info("peering %r for %s as %s with priority %s (keep-alive lifetime %s s): the live replica with the "
             "highest priority acts, the others stand by; %d live peer(s) now", name, where, identity, priority,
             LIFETIME, len({p.identity for p in live}))
    higher = [p for p in live if p.priority > priority]
    if higher:
        log.info("peering %r: standing by while %s", name, _describe(higher))
    return Peering(kube=kube, name=name, identity=identity, priority=priority, namespaces=tuple(namespaces))
