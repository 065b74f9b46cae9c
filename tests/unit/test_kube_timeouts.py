"""Every API request has a timeout: an API server that takes the connection and never answers fails the
request within the read timeout, instead of holding the reconcile's thread forever."""

from __future__ import annotations

import socket
import time

import kubernetes.client
import pytest
import urllib3

from modeldeploy.k8s import client as k8s


def test_an_api_server_that_never_answers_fails_the_request_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # takes connections, never reads or answers
    monkeypatch.setattr(k8s, "TIMEOUT", (1.0, 1.0))
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{hole.getsockname()[1]}"
    config.retries = False
    kube = k8s.Kube(kubernetes.client.ApiClient(config))
    started = time.monotonic()
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            kube.get("v1", "Service", "risk", "fraud")
    finally:
        hole.close()
    assert time.monotonic() - started < 3
