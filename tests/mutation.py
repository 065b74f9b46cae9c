"""`make mutation`: mutation testing of the rollout engine with mutmut, in a scratch copy of the project.

mutmut (2.x) changes one line of a source file at a time and runs the planner's unit tests; a mutant the
tests do not notice "survives". It runs in a copy (`.mutation/`) so the working tree and anything running
from it (an operator, the end-to-end tests) never see a mutant. Prints the score per module and the
survivors, to be judged (equivalent, or a missing test) in docs/testing.md. Not part of `make test`: it
takes tens of minutes.

    MUTATE=operator/modeldeploy/desired/weights.py make mutation   # one module
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
MODULES = [
    "operator/modeldeploy/desired/weights.py",
    "operator/modeldeploy/desired/judge.py",
    "operator/modeldeploy/desired/analysis.py",
    "operator/modeldeploy/desired/canary.py",
    "operator/modeldeploy/desired/rollout.py",
]
# The tests that judge the rollout engine; hypothesis draws fewer, fixed examples under MUTATION=1.
TESTS = ["test_rollout_plan.py", "test_superseded.py", "test_held.py", "test_evidence.py", "test_bookkeeping.py",
         "test_canary_properties.py", "test_served_properties.py", "test_rollout_properties.py",
         "test_analysis_providers.py"]


def copy_project() -> Path:
    """The committed project, in a fresh scratch directory."""
    tree = WORK / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run(tree: Path, module: str) -> tuple[int, int, list[str]]:
    """Mutate one module; (killed, total, surviving mutant diffs)."""
    python = ROOT / ".venv" / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(tree / "operator"), "MUTATION": "1", "CI": "1"}
    runner = f"{python} -m pytest -x -q -p no:cacheprovider " + " ".join(f"tests/unit/{t}" for t in TESTS)
    with (WORK / "mutmut.log").open("a") as log:  # to a file: a pipe nobody reads would fill and stall mutmut
        subprocess.run([str(python), "-m", "mutmut", "run", "--paths-to-mutate", module, "--runner", runner,
                        "--tests-dir", "tests/unit", "--no-progress", "--simple-output"],
                       cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ids = {}
    for kind in ("killed", "survived", "timeout", "suspicious"):
        out = subprocess.run([str(python), "-m", "mutmut", "result-ids", kind], cwd=tree, env=env,
                             capture_output=True, text=True).stdout
        ids[kind] = [i for i in out.split() if i.isdigit()]
    diffs = [subprocess.run([str(python), "-m", "mutmut", "show", i], cwd=tree, env=env, capture_output=True,
                            text=True).stdout for i in ids["survived"]]
    killed = len(ids["killed"]) + len(ids["timeout"]) + len(ids["suspicious"])
    return killed, killed + len(ids["survived"]), diffs


def main() -> int:
    modules = os.environ.get("MUTATE", "").split() or MODULES
    rows = []
    for module in modules:
        tree = copy_project()
        started = time.monotonic()
        killed, total, survivors = run(tree, module)
        rows.append((module, killed, total, time.monotonic() - started))
        for diff in survivors:
            print(re.sub(r"\n{2,}", "\n", diff.strip()), end="\n\n")
    print(f"{'module':<48} {'killed':>7} {'total':>6} {'score':>6} {'time':>7}")
    for module, killed, total, seconds in rows:
        score = f"{100 * killed / total:.0f}%" if total else "-"
        print(f"{module:<48} {killed:>7} {total:>6} {score:>6} {seconds:>6.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
