"""What a Service actually serves: its Ready endpoints, sampled in the background while a test acts."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client


def ready_endpoints(discovery: client.DiscoveryV1Api, namespace: str, service: str) -> int:
    """Ready endpoints behind a Service, counted once per pod over all its EndpointSlices."""
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
    pods = set()
    for eps in slices.items:
        for ep in eps.endpoints or []:
            if ep.conditions is not None and ep.conditions.ready:
                pods.add(ep.target_ref.name if ep.target_ref else tuple(ep.addresses))
    return len(pods)


class ServedMonitor:
    """Samples the Ready endpoints of one Service every `interval` seconds until stopped; keeps the lowest."""

    def __init__(self, cluster: Any, namespace: str, service: str, interval: float = 0.05) -> None:
        self.namespace, self.service, self.interval = namespace, service, interval
        self._api = cluster.api_client()
        self._discovery = client.DiscoveryV1Api(self._api)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - start, ready_endpoints(self._discovery, self.namespace,
                                                                           self.service)))
            time.sleep(self.interval)

    def __enter__(self) -> ServedMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._api.close()

    @property
    def lowest(self) -> int:
        assert self.samples, "no samples taken"
        return min(n for _, n in self.samples)

    def dips(self, floor: int) -> list[tuple[float, int]]:
        """Samples below `floor`, with their time since the monitor started."""
        return [(round(t, 2), n) for t, n in self.samples if n < floor]
