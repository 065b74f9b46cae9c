"""The Argo CD health check (argocd/health.lua), run the way Argo CD runs it.

Argo CD evaluates a health script in a Lua 5.1 VM (gopher-lua) with the live
object converted to a Lua table in the global `obj` (JSON arrays become
1-based tables, null becomes nil), and reads `status` and `message` from the
table the script returns. Here the same script runs in lupa's Lua 5.1 against
the objects in argocd/testdata/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
SCRIPT = (ARGOCD / "health.lua").read_text()
KEY = "resource.customizations.health.modeldeploy.dev_ModelDeployment"
# What Argo CD accepts from a health script.
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def to_lua(runtime: lua51.LuaRuntime, value: Any) -> Any:
    """A YAML/JSON value as Lua sees it: dicts and lists become tables (lists 1-based), None nil."""
    if isinstance(value, dict):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(runtime, item)
        return table
    if isinstance(value, list):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = to_lua(runtime, item)
        return table
    return value


def health(obj: dict[str, Any], script: str = SCRIPT) -> tuple[str, str]:
    """(hs.status, hs.message) for an object."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    g = runtime.globals()
    for unsafe in ("os", "io", "debug", "require", "dofile", "loadfile", "python"):
        g[unsafe] = None  # Argo CD's VM opens no such libraries; the script must not need them
    g.obj = to_lua(runtime, obj)
    hs = runtime.execute(script)
    return hs["status"], hs["message"]


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ARGOCD / "testdata" / f"{name}.yaml").read_text())
    return data


ROLLED_BACK = ("revision 2 (model 8) failed: 1/3 pods ready after 700s (progressDeadlineSeconds 600); "
               "revision 1 serves. Change the spec to try again")
UNKNOWN_PRESET = ("spec.runtime.preset: 'tritonn' is not a known runtime preset; use one of mlserver, torchserve, "
                  "triton, vllm, or set spec.runtime.image to your own server image. "
                  "Revision 1 (model 7) keeps serving")
NO_STATUS = "Waiting for the modeldeploy operator to report status"

CASES = [
    pytest.param("healthy", "Healthy", "revision 1 (model 7): 3/3 pods ready", id="healthy"),
    pytest.param("pending", "Progressing", "revision 1 (model 7): 0/3 pods ready", id="first-apply-pending"),
    pytest.param("progressing", "Progressing",
                 "revision 2 (model 8) at 10% (step 1/3: waiting for 1 canary pods and the traffic split)",
                 id="canary-progressing"),
    pytest.param("stale-generation", "Progressing",
                 "Waiting for the modeldeploy operator to observe generation 5 (last observed 4)",
                 id="stale-generation"),
    pytest.param("paused", "Suspended",
                 "revision 2 (model 8) at 10% (step 2/3: paused until `kubectl modeldeploy promote fraud`)",
                 id="paused-at-step"),
    pytest.param("degraded-rolled-back", "Degraded", ROLLED_BACK, id="degraded-rolled-back"),
    pytest.param("failed", "Degraded", UNKNOWN_PRESET, id="failed-unknown-preset"),
    pytest.param("no-status", "Progressing", NO_STATUS, id="no-status"),
    pytest.param("kopf-state-only", "Progressing", NO_STATUS, id="kopf-state-only"),
]


@pytest.mark.parametrize(("name", "status", "message"), CASES)
def test_health(name: str, status: str, message: str) -> None:
    assert health(fixture(name)) == (status, message)


def test_every_fixture_has_a_case() -> None:
    names = {p.stem for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert names == {c.values[0] for c in CASES}


def _with_status(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "generation": 3}, "status": {"observedGeneration": 3, **status}}


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(_with_status(phase="Healthy", message="ok"), ("Healthy", "ok"), id="healthy"),
    pytest.param(_with_status(phase="Pending", message="m"), ("Progressing", "m"), id="pending"),
    pytest.param(_with_status(phase="Progressing", message="m"), ("Progressing", "m"), id="progressing"),
    pytest.param(_with_status(phase="Paused", message="m"), ("Suspended", "m"), id="paused"),
    pytest.param(_with_status(phase="Degraded", message="m"), ("Degraded", "m"), id="degraded"),
    pytest.param(_with_status(phase="Failed", message="m"), ("Degraded", "m"), id="failed"),
    pytest.param(_with_status(phase="Healthy"), ("Healthy", ""), id="no-message"),
    pytest.param(_with_status(), ("Progressing", "Waiting for the modeldeploy operator to report a phase"),
                 id="no-phase"),
    pytest.param(_with_status(phase="Hibernating", message="m"), ("Progressing", "m"), id="unknown-phase"),
    pytest.param({**_with_status(phase="Failed", message="m"), "metadata": {"generation": 4}},
                 ("Progressing", "Waiting for the modeldeploy operator to observe generation 4 (last observed 3)"),
                 id="failed-but-stale"),
    pytest.param({**_with_status(phase="Healthy", message="m"), "metadata": {}}, ("Healthy", "m"),
                 id="no-generation"),
    pytest.param(_with_status(phase="Healthy", message="the API server did not take Service fraud-canary: 403 "
                                                  "exceeded quota; retrying",
                              conditions=[{"type": "Ready", "status": "True", "reason": "Healthy"},
                                          {"type": "Reconciling", "status": "True", "reason": "ApplyFailed"}]),
                 ("Progressing", "the API server did not take Service fraud-canary: 403 exceeded quota; retrying"),
                 id="healthy-retrying-a-refused-write"),
    pytest.param(_with_status(phase="Healthy", message="ok",
                              conditions=[{"type": "Reconciling", "status": "False", "reason": "Healthy"}]),
                 ("Healthy", "ok"), id="healthy-with-conditions"),
    # A new ModelDeployment whose first write was refused: no observedGeneration yet, but a reason to show
    pytest.param({"metadata": {"generation": 1}, "status": {
        "phase": "Pending", "message": "the API server did not take Service fraud: 500 range is full; retrying",
        "conditions": [{"type": "Reconciling", "status": "True", "reason": "ApplyFailed"}]}},
        ("Progressing", "the API server did not take Service fraud: 500 range is full; retrying"),
        id="new-and-retrying-a-refused-write"),
])
def test_phase_mapping(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert health(obj) == expected


# Every phase the API defines, and what Argo CD should show for it (hand-written: a new phase must be added here).
PHASES = {"Pending": "Progressing", "Progressing": "Progressing", "Paused": "Suspended", "Healthy": "Healthy",
          "Degraded": "Degraded", "Failed": "Degraded"}


def test_every_phase_of_the_api_has_a_health() -> None:
    from modeldeploy.api.status import Phase

    assert set(PHASES) == {p.value for p in Phase}
    for phase, expected in PHASES.items():
        assert health(_with_status(phase=phase, message="m")) == (expected, "m"), phase


def test_the_script_answers_only_what_argo_cd_knows() -> None:
    """What the script returns (not what this file expects) for every fixture, every phase, no phase and an
    unknown one, current or stale, retrying or not."""
    objects = [fixture(p.stem) for p in (ARGOCD / "testdata").glob("*.yaml")]
    retrying = [{"type": "Reconciling", "status": "True", "reason": "ApplyFailed"}]
    for phase in [*PHASES, None, "Hibernating"]:
        for conditions in ([], retrying):
            objects.append(_with_status(phase=phase, message="m", conditions=conditions))
            objects.append({**_with_status(phase=phase, conditions=conditions), "metadata": {"generation": 9}})
    for obj in objects:
        status, message = health(obj)
        assert status in STATUSES and isinstance(message, str), obj


def test_configmap_patch_carries_the_script_unchanged() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) == (
        "ConfigMap", "argocd-cm", "argocd")
    assert patch["data"] == {KEY: SCRIPT}


def test_converter_makes_lists_one_based() -> None:
    runtime = lua51.LuaRuntime()
    runtime.globals().obj = to_lua(runtime, {"a": ["x", "y"], "n": None})
    assert runtime.eval("obj.a[1] .. obj.a[2] .. tostring(#obj.a) .. tostring(obj.n)") == "xy2nil"
