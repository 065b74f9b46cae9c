"""Repository layout rules from DESIGN.md that code review alone would miss."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOT = ROOT / "operator"


def test_operator_source_root_is_not_a_package() -> None:
    # Given the source root operator/ (it holds the modeldeploy package)
    assert (SOURCE_ROOT / "modeldeploy" / "__init__.py").is_file()
    # Then it is never a package itself: a regular package named `operator`
    # would shadow the standard library's module for anyone with the repo on sys.path.
    assert not (SOURCE_ROOT / "__init__.py").exists(), \
        "operator/__init__.py must not exist: operator/ is a source root, not a package"
    spec = importlib.machinery.PathFinder.find_spec("operator", [str(ROOT)])
    assert spec is None or spec.origin is None, f"operator/ imports as a regular module: {spec}"


def test_import_operator_is_the_standard_library() -> None:
    # Given this process (pytest, with tests/ and maybe the repo on sys.path)
    import operator

    # Then `operator` is the standard library's
    assert operator.add(2, 3) == 5
    assert operator.add is sys.modules["_operator"].add
    assert Path(operator.__file__).parent == Path(sysconfig.get_paths()["stdlib"])


def test_import_operator_from_repo_root_is_the_standard_library() -> None:
    # Given a fresh interpreter whose sys.path starts with the repo root and the source root
    code = "import operator, sys; print(operator.__file__); assert operator.add is sys.modules['_operator'].add"
    # When it imports `operator`
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{ROOT}:{SOURCE_ROOT}", "PATH": "/usr/bin:/bin"})
    # Then it gets the standard library's module, not the repo's operator/
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).parent == Path(sysconfig.get_paths()["stdlib"])
