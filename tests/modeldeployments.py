"""What end-to-end tests do with ModelDeployments: apply, read, wait, run the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import yaml

from helpers import wait_for

MD = "fraud"


def manifest(namespace: str, version: str = "1", replicas: int | None = 3, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": MD, "namespace": namespace},
        "spec": {
            "model": {"uri": f"s3://models/fraud/v{version}", "version": version},
            "runtime": {"image": "registry.example/sklearn-server:1.4"},
            **({"replicas": replicas} if replicas is not None else {}),
            **spec,
        },
    }
    return body


def apply(cluster: Any, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))


def get(cluster: Any, namespace: str, kind: str, name: str = "") -> Any:
    out = cluster.kubectl("get", kind, *([name] if name else []), "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def status(cluster: Any, namespace: str, name: str = MD) -> dict[str, Any]:
    md = get(cluster, namespace, "modeldeployment", name)
    return (md or {}).get("status") or {}


def wait_phase(cluster: Any, namespace: str, phase: str, timeout: float = 30, name: str = MD,
               **fields: Any) -> dict[str, Any]:
    def done(st: dict[str, Any]) -> bool:
        return st.get("phase") == phase and all(st.get(k) == v for k, v in fields.items())

    return wait_for(lambda: status(cluster, namespace, name), timeout=timeout, message=f"{name} phase {phase} {fields}",
                    until=done)


def deployments(cluster: Any, namespace: str) -> dict[str, dict[str, Any]]:
    items = get(cluster, namespace, "deployments")["items"]
    return {d["metadata"]["name"]: d for d in items}


def cli(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modeldeploy.cli.main", "--kubeconfig", str(cluster.kubeconfig),
                           *args], capture_output=True, text=True, timeout=60)


def events(cluster: Any, namespace: str, reason: str) -> list[str]:
    """The messages of the namespace's Events with this reason."""
    return [e["message"] for e in get(cluster, namespace, "events")["items"] if e.get("reason") == reason]
