"""What a Service actually serves: its Ready endpoints, sampled in the background while a test acts."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client


def ready_endpoints(discovery: client.DiscoveryV1Api, namespace: str, service: str, pods_named: str = "") -> int:
    """Ready endpoints behind a Service, counted once per pod over all its EndpointSlices; with `pods_named`,
    only pods whose names start so (e.g. `fraud-r2-`: one revision's pods)."""
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
    pods = set()
    for eps in slices.items:
        for ep in eps.endpoints or []:
            name = ep.target_ref.name if ep.target_ref else ""
            if ep.conditions is not None and ep.conditions.ready and name.startswith(pods_named):
                pods.add(name or tuple(ep.addresses))
    return len(pods)


def endpoints_now(cluster: Any, namespace: str, service: str) -> int:
    """Ready endpoints behind a Service, read once (for a wait or a hold)."""
    api = cluster.api_client()
    try:
        return ready_endpoints(client.DiscoveryV1Api(api), namespace, service)
    finally:
        api.close()


class Sampler:
    """Calls `sample()` every `interval` seconds in the background, from entering the context until leaving it
    (or until `sample()` returns False), with its own API client."""

    def __init__(self, cluster: Any, interval: float = 0.05) -> None:
        self.interval = interval
        self._api = cluster.api_client()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, api: Any, elapsed: float) -> bool:
        raise NotImplementedError

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set() and self.sample(self._api, time.monotonic() - start):
            time.sleep(self.interval)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._api.close()

    def wait(self, timeout: float) -> None:
        """Until sampling has stopped by itself, or `timeout` seconds."""
        self._thread.join(timeout=timeout)


class ServedMonitor(Sampler):
    """Samples the Ready endpoints of one Service every `interval` seconds until stopped; keeps the lowest."""

    def __init__(self, cluster: Any, namespace: str, service: str, interval: float = 0.05) -> None:
        super().__init__(cluster, interval)
        self.namespace, self.service = namespace, service
        self._discovery = client.DiscoveryV1Api(self._api)
        self.samples: list[tuple[float, int]] = []

    def sample(self, api: Any, elapsed: float) -> bool:
        self.samples.append((elapsed, ready_endpoints(self._discovery, self.namespace, self.service)))
        return True

    @property
    def lowest(self) -> int:
        assert self.samples, "no samples taken"
        return min(n for _, n in self.samples)

    def dips(self, floor: int) -> list[tuple[float, int]]:
        """Samples below `floor`, with their time since the monitor started."""
        return [(round(t, 2), n) for t, n in self.samples if n < floor]
