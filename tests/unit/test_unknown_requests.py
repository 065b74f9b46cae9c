"""Request annotations the operator cannot carry out are reported once, and change nothing."""

from __future__ import annotations

from dataclasses import replace

from modeldeploy.desired import requests
from planning import HEALTHY_1, R1, observed, plan, ready, spec

TYPO = "modeldeploy.dev/promtoe"


def test_a_misspelt_request_and_a_rollback_without_a_revision_are_unrecognised():
    annotations = {TYPO: "t1", requests.ROLLBACK: "latest@t2", requests.PROMOTE: "t3", "example.com/x": "y"}
    assert requests.unrecognised(annotations, {}) == {TYPO: "t1", requests.ROLLBACK: "latest@t2"}
    assert requests.unrecognised({requests.ROLLBACK: "3@t"}, {}) == {}
    # once reported, not again, until the value changes
    assert requests.unrecognised({TYPO: "t1"}, {TYPO: "t1"}) == {}
    assert requests.unrecognised({TYPO: "t2"}, {TYPO: "t1"}) == {TYPO: "t2"}


def test_the_planner_warns_once_and_serves_as_before():
    obs = replace(observed(ready(1), revisions=(R1,)), annotations={TYPO: "t1"})
    quiet = plan(spec(), HEALTHY_1, observed(ready(1), revisions=(R1,)))
    first = plan(spec(), HEALTHY_1, obs)
    (warning,) = [e for e in first.events if e.reason == "UnknownRequest"]
    assert warning.type == "Warning" and TYPO in warning.message and requests.PROMOTE in warning.message
    assert first.apply == quiet.apply and first.delete == quiet.delete
    again = plan(spec(), first.status, obs)
    assert not [e for e in again.events if e.reason == "UnknownRequest"]


def test_a_rollback_without_a_revision_says_what_it_takes():
    obs = replace(observed(ready(1), revisions=(R1,)), annotations={requests.ROLLBACK: "previous"})
    (warning,) = [e for e in plan(spec(), HEALTHY_1, obs).events if e.reason == "UnknownRequest"]
    assert "names no revision" in warning.message and "--to-revision" in warning.message
