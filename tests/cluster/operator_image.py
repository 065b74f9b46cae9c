"""The operator's own image, built from the project's Dockerfile, for the real node.

The Dockerfile's base (python:3.11-slim upstream) is made here like the node's other images
(images.py): Debian's Python 3.11 with a virtualenv first on PATH, so `pip install` and the
`modeldeploy` entry point behave as in the upstream image. buildah (Debian's) runs the Dockerfile
as written, with chroot isolation, since this machine has no container runtime for builds. Its pip
steps reach PyPI with this machine's CA bundle and pip settings, mounted for the build only, so
nothing of them stays in the image. The result is imported into the real node's containerd under
the name and tag the Helm chart uses by default, so `helm install` as the README says runs it as it
would run the published image. Standard library only, like localcluster.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import images

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modeldeploy" / "Chart.yaml"
# What the Dockerfile copies (.dockerignore lets nothing else in).
CONTEXT = ("pyproject.toml", "README.md", "operator")
# Debian bookworm's Python is 3.11, the Dockerfile's; passwd for its `groupadd` and `useradd`.
PYTHON_BASE = images.Recipe(
    "python", {}, ("python3",), user="0:0",
    env=("PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"),
    debian=("python3", "python3-venv", "ca-certificates", "passwd"), venv=True)
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# pip settings of this machine that the build's pip takes too (where packages come from, how long to wait).
PIP_SETTINGS = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url",
                "PIP_DEFAULT_TIMEOUT": "timeout"}


def reference() -> str:
    """The chart's default image: its repository at the chart's appVersion."""
    version = re.search(r'^appVersion:\s*"?([^"\s]+)"?', CHART.read_text(), re.M)
    if not version:
        raise images.ImageError(f"{CHART} has no appVersion")
    return f"ghcr.io/modeldeploy/modeldeploy:{version.group(1)}"


def _context_files() -> list[Path]:
    out = []
    for name in CONTEXT:
        path = ROOT / name
        if path.is_file():
            out.append(path)
            continue
        out += [p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
                and p.suffix != ".pyc" and not any(part.endswith(".egg-info") for part in p.parts)]
    return out


def key() -> str:
    """A hash of everything the image is made from: the Dockerfile, what it copies, the base, this file."""
    h = hashlib.sha256(PYTHON_BASE.key().encode())
    for path in [ROOT / "Dockerfile", ROOT / ".dockerignore", *_context_files(), Path(__file__)]:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _host_ca() -> Path | None:
    """The CA bundle this machine's pip trusts (a TLS-intercepting proxy's CA, say), if any."""
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or CA_BUNDLE)
    return ca if ca.is_file() else None


def _pip_conf(ca: Path | None) -> str:
    lines = ["[global]"]
    if ca:
        lines.append(f"cert = {CA_BUNDLE}")  # where the build mounts it
    lines += [f"{name} = {os.environ[var]}" for var, name in PIP_SETTINGS.items() if os.environ.get(var)]
    return "\n".join(lines) + "\n"


def build(cache: Path, say) -> Path:
    """The operator image as a docker-archive, built with buildah from the Dockerfile once per key."""
    out = cache / f"operator-{key()}.tar"
    if out.exists():
        return out
    if not shutil.which("buildah"):
        raise images.ImageError("buildah is needed to build the operator image: apt-get install buildah")
    say("  building the base image (Debian's Python 3.11; the first time only)")
    base = images.build(PYTHON_BASE, cache)
    ref = reference()
    say(f"  building {ref} from the Dockerfile with buildah")
    ca = _host_ca()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        # A store of its own, removed with the build: nothing accumulates between builds.
        store = ["buildah", f"--root={tmp}/storage", f"--runroot={tmp}/run", "--storage-driver=vfs"]
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text(_pip_conf(ca))
        mounts = [f"--volume={pip_conf}:/etc/pip.conf:ro"]
        if ca:
            mounts.append(f"--volume={ca}:{CA_BUNDLE}:ro")
        steps = [
            [*store, "build", "--isolation=chroot", "--network=host", "--pull=never", "--quiet",
             f"--build-arg=PYTHON_IMAGE=oci-archive:{base}", *mounts,
             f"--file={ROOT / 'Dockerfile'}", f"--tag={ref}", str(ROOT)],
            [*store, "push", "--quiet", ref, f"docker-archive:{out.with_suffix('.partial')}:{ref}"],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=images.tool_env())
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
                raise images.ImageError(f"buildah {cmd[4]} failed for {ref}:\n{tail}")
    out.with_suffix(".partial").rename(out)
    for old in cache.glob("operator-*.tar"):
        if old != out:
            old.unlink()  # made from other inputs: never used again
    return out
