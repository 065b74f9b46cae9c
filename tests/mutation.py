"""`make mutation`: mutation testing of the rollout engine with mutmut, in a scratch copy of the project.

mutmut changes the code one small edit at a time (a mutant) and runs the engine's unit tests against each; a
mutant the tests do not notice "survives". It runs in a copy (`.mutation/`) so the working tree, and whatever
runs from it (an operator, the end-to-end tests), never sees a mutant. Prints the score per module and the
survivors, to be judged (equivalent, or a missing test) in docs/testing.md. Not part of `make test`: it takes
tens of minutes on two cores.

    MUTATE="operator/modeldeploy/desired/weights.py" make mutation   # some modules only
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
MODULES = [
    "operator/modeldeploy/desired/weights.py",
    "operator/modeldeploy/desired/judge.py",
    "operator/modeldeploy/desired/analysis.py",
    "operator/modeldeploy/desired/ledger.py",
    "operator/modeldeploy/desired/state.py",
    "operator/modeldeploy/desired/transition.py",
    "operator/modeldeploy/desired/endings.py",
    "operator/modeldeploy/desired/canary.py",
    "operator/modeldeploy/desired/rollout.py",
]
# The tests that judge the rollout engine.
TESTS = ["test_weights.py", "test_judge.py", "test_canary_steps.py", "test_analysis_counts.py",
         "test_rollout_plan.py", "test_superseded.py", "test_held.py", "test_evidence.py", "test_bookkeeping.py",
         "test_canary_properties.py", "test_served_properties.py", "test_rollout_properties.py",
         "test_analysis_providers.py", "test_plain_rollout.py", "test_planner_records.py", "test_messages.py",
         "test_transitions.py"]
STATUS = {1: "killed", 3: "killed", 0: "survived", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
          255: "timeout", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious"}


def copy_project(targets: list[str]) -> Path:
    """The committed project in a fresh scratch directory, with mutmut told what to mutate and test."""
    tree = WORK / "tree"
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    # mutmut names a mutant by its file's path from the top, so the package must sit at the top (it names
    # `operator/modeldeploy/x.py` operator.modeldeploy.x, which is not what the tests import).
    (tree / "operator" / "modeldeploy").rename(tree / "modeldeploy")
    targets = [t.removeprefix("operator/") for t in targets]
    # It copies what it mutates into mutants/; the rest of the package must come along unmutated.
    others = sorted(str(p.relative_to(tree)) for p in (tree / "modeldeploy").rglob("*.py")
                    if str(p.relative_to(tree)) not in targets)
    config = {"paths_to_mutate": ["modeldeploy/"], "do_not_mutate": others,
              "tests_dir": [f"tests/unit/{t}" for t in TESTS]}
    with (tree / "pyproject.toml").open("a") as f:
        f.write("\n[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()))
    return tree


def results(tree: Path, targets: list[str]) -> dict[str, Counter[str]]:
    """Mutant outcomes per module, from mutmut's own records."""
    out: dict[str, Counter[str]] = {}
    for target in targets:
        meta = tree / "mutants" / f"{target.removeprefix('operator/')}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        out[target] = Counter(STATUS.get(code, f"exit {code}") for code in codes.values())
    return out


def main() -> int:
    targets = os.environ.get("MUTATE", "").split() or MODULES
    tree = copy_project(targets)
    # No PYTHONPATH to mutants/: it does not exist yet when Python starts, and Python would remember that;
    # mutmut puts it first on sys.path itself once it is made.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "MUTATION": "1", "CI": "1"}
    started = time.monotonic()
    with (WORK / "mutmut.log").open("w") as log:  # a file: mutmut prints a line per mutant
        # Its console script, not `python -m mutmut`: the mutants import mutmut.__main__, which must be the
        # running module, not a second copy.
        subprocess.run([str(ROOT / ".venv" / "bin" / "mutmut"), "run", "--max-children", str(os.cpu_count() or 2)],
                       cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    mutmut = str(ROOT / ".venv" / "bin" / "mutmut")
    listing = subprocess.run([mutmut, "results"], cwd=tree, env=env, capture_output=True,
                             text=True).stdout
    for line in listing.splitlines():
        name, _, status = line.strip().partition(": ")
        if status == "survived":
            diff = subprocess.run([mutmut, "show", name], cwd=tree, env=env,
                                  capture_output=True, text=True).stdout
            print(diff.strip(), end="\n\n")
    print(f"{'module':<44} {'killed':>7} {'survived':>9} {'other':>6} {'score':>6}")
    for target, counts in results(tree, targets).items():
        killed = counts["killed"] + counts["timeout"]
        judged = killed + counts["survived"]
        other = sum(counts.values()) - judged
        score = f"{100 * killed / judged:.0f}%" if judged else "-"
        print(f"{target:<44} {killed:>7} {counts['survived']:>9} {other:>6} {score:>6}")
    print(f"in {time.monotonic() - started:.0f} s; mutmut's log: {WORK / 'mutmut.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
