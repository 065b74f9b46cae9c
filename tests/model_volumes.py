"""Models for the real node's pods: a folder on this machine behind a claim `models`, so a pvc:// model needs no
storage initializer; and where those pods are placed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import realnode

ROOT = Path(__file__).resolve().parents[1]
# A pod template that runs on the real node (it is tainted, so only pods that ask go there)
ON_REAL_NODE = {"nodeSelector": {realnode.LABEL: "true"},
                "tolerations": [{"key": realnode.LABEL, "operator": "Exists", "effect": "NoSchedule"}]}


def models_folder(namespace: str) -> Path:
    """This namespace's models folder, which the real node's kubelet mounts (through no link)."""
    return (ROOT / ".cluster" / "node" / "volumes" / namespace).resolve()


def models_claim(cluster: Any, namespace: str) -> str:
    """A claim `models` bound to the namespace's models folder; returns its PersistentVolume's name, for the test
    to delete."""
    pv = f"models-{namespace}"
    folder = models_folder(namespace)
    folder.mkdir(parents=True, exist_ok=True)
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
                 "claimRef": {"namespace": namespace, "name": "models"}}}))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models"},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                 "resources": {"requests": {"storage": "1Mi"}}}}))
    return pv


def cluster_ip(cluster: Any, namespace: str, service: str) -> str:
    """A Service's cluster IP ("" while it does not exist)."""
    return str(cluster.kubectl("get", "service", service, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}",
                               check=False).stdout)
