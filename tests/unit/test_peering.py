"""Peering (`run --peering`): distinct default priorities, and who may act given a peering object's status."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.cli.main import main, parser
from modeldeploy.handlers import peering
from modeldeploy.handlers.peering import Role, draw_priority, role

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
ME = "host/1/abc"


def entry(priority: int, seconds_ago: float = 1, lifetime: int = 15) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_default_priorities_are_drawn_from_a_large_range_and_differ() -> None:
    drawn = [draw_priority() for _ in range(200)]
    low, high = peering.PRIORITY_RANGE
    assert all(low <= p <= high for p in drawn)
    assert high - low >= 2**30, "a large range, so that two replicas practically never tie"
    assert len(set(drawn)) == len(drawn)


def test_two_processes_draw_different_default_priorities() -> None:
    # Replicas are separate processes (pods): the draw must not depend on a shared seed.
    code = "from modeldeploy.handlers.peering import draw_priority; print(draw_priority())"
    out = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
           for _ in range(2)]
    assert out[0] != out[1]


def test_a_draw_never_takes_a_live_peers_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a random source whose first draws hit priorities live peers already have
    values = iter([41, 42, 43])
    monkeypatch.setattr(peering.secrets, "randbelow", lambda _n: next(values))
    low = peering.PRIORITY_RANGE[0]
    # Then it draws again until the priority is free
    assert draw_priority({low + 41, low + 42}) == low + 43


@pytest.mark.parametrize(("status", "expected", "blockers"), [
    ({ME: entry(100)}, Role.ACTIVE, []),
    ({ME: entry(100), "other": entry(50)}, Role.ACTIVE, []),
    ({ME: entry(100), "other": entry(200)}, Role.STANDBY, ["other"]),
    ({ME: entry(100), "other": entry(100)}, Role.STANDBY, ["other"]),
    ({ME: entry(100), "other": entry(200, seconds_ago=16)}, Role.ACTIVE, []),
    ({ME: entry(100), "other": entry(200, seconds_ago=30, lifetime=60)}, Role.STANDBY, ["other"]),
    ({ME: entry(100), "other": {"priority": 200}}, Role.STANDBY, ["other"]),
    ({"other": entry(50)}, Role.JOINING, []),
    ({ME: entry(100, seconds_ago=20)}, Role.JOINING, []),
    (None, Role.JOINING, []),
    ({ME: entry(100), "other": {"priority": "not-a-number"}}, Role.STANDBY, ["other"]),
], ids=["alone", "lower-peer", "higher-peer", "same-priority-peer", "higher-peer-expired",
        "higher-peer-with-longer-lifetime", "peer-without-lifetime-counts-as-kopf-does", "own-entry-missing",
        "own-entry-expired", "no-status-yet", "unreadable-peer-counts-as-blocking"])
def test_role_given_the_peering_status(status, expected, blockers) -> None:
    got, blocking = role(status, ME, 100, NOW)
    assert got is expected
    assert [p.identity for p in blocking] == blockers


def test_priority_without_peering_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--namespace", "x", "--priority", "5"]) == 1
    assert "--priority only means something with --peering" in capsys.readouterr().err


def test_run_is_standalone_unless_peering_is_asked_for() -> None:
    args = parser().parse_args(["run", "--namespace", "x"])
    assert args.peering is None and args.priority is None
    args = parser().parse_args(["run", "--namespace", "x", "--peering", "ha", "--priority", "7"])
    assert (args.peering, args.priority) == ("ha", 7)


def test_peering_without_its_crds_fails_at_start_with_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # Given a cluster that does not serve kopf's peering CRDs
    import modeldeploy.cli.main as cli
    from modeldeploy.k8s import peering as objects

    monkeypatch.setattr(cli, "_kube", lambda _args: object())
    monkeypatch.setattr(objects, "served", lambda _kube: set())
    # Then `run --peering` stops at once (kopf would wait forever) and says what to apply
    assert main(["run", "--namespace", "x", "--peering", "ha"]) == 1
    err = capsys.readouterr().err
    assert "kopfpeerings.kopf.dev" in err and "kubectl apply -f crds/kopf-peering.yaml" in err
