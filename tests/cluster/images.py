"""Container images for the local control plane's real node, built here and never pulled.

An image is an OCI layout made with umoci (Debian's package): its root
filesystem is either empty or a Debian one made by mmdebstrap from Debian's
packages, plus PyPI packages installed into /opt/venv, plus files of this
machine. It is packed as an archive that containerd imports. Archives are
cached by a hash of everything that goes into them, so a second `make cluster`
builds nothing. Standard library only, like localcluster.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY = "modeldeploy.local"
TAG = "local"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says which and why."""


@dataclass(frozen=True)
class Recipe:
    """One image: files copied into an empty root filesystem, and how it runs."""

    name: str
    files: dict[str, Path]          # path in the image -> file on this machine
    entrypoint: tuple[str, ...]
    user: str = "65532:65532"       # numeric, so the kubelet can check runAsNonRoot
    env: tuple[str, ...] = field(default_factory=tuple)
    debian: tuple[str, ...] = ()    # Debian packages of its root filesystem; none: an empty one
    pip: tuple[str, ...] = ()       # PyPI requirements, pinned, installed into /opt/venv
    venv: bool = False              # make /opt/venv even with no requirements (a base for pip to install into)
    suite: str = "bookworm"         # the Debian release of its root filesystem
    name_as: str = ""               # the name containerd knows it by, when not modeldeploy.local/<name>:local
    workdir: str = "/"              # made, and owned by the user, when not /

    @property
    def reference(self) -> str:
        return self.name_as or f"{REGISTRY}/{self.name}:{TAG}"

    def key(self) -> str:
        h = hashlib.sha256(json.dumps([self.name, self.entrypoint, self.user, self.env, self.debian, self.pip,
                                       self.venv, self.suite, self.name_as, self.workdir, sorted(self.files)]).encode())
        # The files' contents, not where they lie: two checkouts share one archive.
        for dest in sorted(self.files):
            h.update(self.files[dest].read_bytes())
        h.update(Path(__file__).read_bytes())
        return h.hexdigest()[:16]


def tool_env() -> dict[str, str]:
    """This environment, with the system folders on PATH: mmdebstrap runs chroot, and a user's PATH may lack
    /usr/sbin."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    extra = [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path.split(":")]
    return {**os.environ, "PATH": ":".join([path, *extra])}


def _umoci(*args: str) -> None:
    proc = subprocess.run(["umoci", *args], capture_output=True, text=True, env=tool_env())
    if proc.returncode != 0:
        raise ImageError(f"umoci {' '.join(args[:1])} failed: {proc.stderr.strip()}")


def _archive(recipe: Recipe, cache: Path) -> Path:
    return cache / f"{recipe.name}-{recipe.key()}.tar"


def built(recipe: Recipe, cache: Path) -> bool:
    return _archive(recipe, cache).exists()


def build(recipe: Recipe, cache: Path) -> Path:
    """The image as an OCI archive; built once per key."""
    out = _archive(recipe, cache)
    if out.exists():
        return out
    if not shutil.which("umoci"):
        raise ImageError("umoci is needed to build the real node's images: apt-get install umoci")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        layout, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        _umoci("init", "--layout", str(layout))
        image = f"{layout}:{TAG}"
        _umoci("new", "--image", image)
        _umoci("unpack", "--image", image, str(bundle))
        rootfs = bundle / "rootfs"
        if recipe.debian:
            _debian_rootfs(recipe, rootfs)
        for dest, src in recipe.files.items():
            target = rootfs / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
            target.chmod(0o755)
        (rootfs / "tmp").mkdir(mode=0o1777, exist_ok=True)
        if recipe.workdir != "/":
            work = rootfs / recipe.workdir.lstrip("/")
            work.mkdir(parents=True, exist_ok=True)
            uid, gid = (int(x) for x in recipe.user.split(":"))
            os.chown(work, uid, gid)
        _umoci("repack", "--image", image, str(bundle))
        config = ["config", "--image", image, "--clear=config.entrypoint", "--clear=config.cmd",
                  "--config.user", recipe.user, "--config.workingdir", recipe.workdir]
        for part in recipe.entrypoint:
            config += ["--config.entrypoint", part]
        for env in recipe.env:
            config += ["--config.env", env]
        _umoci(*config)
        _umoci("gc", "--layout", str(layout))
        # containerd names an imported image by this annotation; umoci writes only the OCI one.
        index_path = layout / "index.json"
        index = json.loads(index_path.read_text())
        for manifest in index["manifests"]:
            manifest.setdefault("annotations", {})["io.containerd.image.name"] = recipe.reference
        index_path.write_text(json.dumps(index))
        partial = out.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(layout), "-cf", str(partial), "."], check=True)
        partial.rename(out)
    for old in cache.glob(f"{recipe.name}-*.tar"):
        if old != out:
            old.unlink()  # made from other inputs: never used again
    return out


# What of this machine's pip settings an image's pip uses too: where packages come from, and how to get there.
PASSED_TO_PIP = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def _debian_rootfs(recipe: Recipe, rootfs: Path) -> None:
    """A minimal Debian root filesystem with the recipe's packages, and its PyPI ones in /opt/venv.

    mmdebstrap takes the packages from this machine's apt sources; pip runs inside the new root filesystem, so
    the wheels match its Python. Documentation and apt's lists are left out: they only make the image bigger."""
    if not shutil.which("mmdebstrap"):
        raise ImageError("mmdebstrap is needed to build the real node's images: apt-get install mmdebstrap")
    hooks = []
    if recipe.venv and not recipe.pip:
        hooks.append('chroot "$1" python3 -m venv /opt/venv')
    if recipe.pip:
        pip = " ".join(f"'{r}'" for r in recipe.pip)
        # pip trusts what this machine trusts (a TLS-intercepting proxy's CA, say), for the install only.
        ca = next((c for c in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                               "/etc/ssl/certs/ca-certificates.crt") if c and Path(c).is_file()), None)
        # A clean environment: this machine's CA variables name paths that, inside, hold Debian's bundle only.
        env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "PIP_NO_CACHE_DIR=1",
               "PIP_DISABLE_PIP_VERSION_CHECK=1",
               *(f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k in PASSED_TO_PIP)]
        if ca:
            hooks.append(f'cp "{ca}" "$1/tmp/build-ca.crt"')
            env.append("PIP_CERT=/tmp/build-ca.crt")
        hooks.append(f'chroot "$1" python3 -m venv /opt/venv && env -i {" ".join(env)} '
                     f'chroot "$1" /opt/venv/bin/pip install --quiet {pip}')
        hooks.append('rm -f "$1/tmp/build-ca.crt"')
    hooks.append('rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/doc/* "$1"/usr/share/man/*')
    rootfs.rmdir()  # mmdebstrap makes it
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet",
           f"--include={','.join(recipe.debian)}", *(f"--customize-hook={h}" for h in hooks),
           recipe.suite, str(rootfs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tool_env())
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ImageError(f"mmdebstrap could not make {recipe.name}'s root filesystem:\n{tail}")


def load(archive: Path, ctr: Path, address: str) -> None:
    """Import an archive into containerd's Kubernetes namespace."""
    proc = subprocess.run([str(ctr), f"--address={address}", "--namespace=k8s.io", "images", "import",
                           # pinned: the kubelet's image garbage collector never removes it
                           "--local", "--label=io.cri-containerd.pinned=pinned", str(archive)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"ctr could not import {archive.name}: {proc.stderr.strip()}")
