"""End to end: a change the operator first learns of from the answer to its own write is acted on.

A status write answers with the whole ModelDeployment. When a new spec was applied after the reconcile read
its view, that answer carries it, and the apply's own watch event then arrives older than the view the
operator holds, so it is no news. With nothing else to wake it, the new spec sat unobserved (CI found it: a
version applied just as a promotion's status was written). Here the API proxy holds back the
ModelDeployment watch, so the answer comes first every time.
"""

from __future__ import annotations

import time

from apiproxy import ApiProxy, Fault
from modeldeployments import MD, apply, manifest, wait_phase

LAG = 3.0  # seconds each ModelDeployment watch event is held back


def test_a_spec_applied_while_the_operator_writes_status_is_rolled_out(cluster, namespace, start_operator,
                                                                       tmp_path):
    proxy = ApiProxy(cluster.kubeconfig, tmp_path)
    proxy.fault = lambda call: Fault(lag=LAG) if call.watch and "/modeldeployments" in call.path else None
    op = None
    try:
        op = start_operator("--allow-inline-analysis-urls", kubeconfig=proxy.kubeconfig)
        apply(cluster, manifest(namespace, version="1", replicas=1))
        wait_phase(cluster, namespace, "Healthy", stableRevision=1, timeout=60)
        # Given a request the operator answers in status alone (a misspelt one: it is reported), and a new
        # version applied before the request's watch event reaches the operator
        cluster.kubectl("annotate", "modeldeployment", MD, "-n", namespace, "modeldeploy.dev/promtoe=1")
        time.sleep(LAG / 3)
        apply(cluster, manifest(namespace, version="2", replicas=1))
        # When the operator writes the report, its answer carries generation 2, whose own event comes after it,
        # then the new version is rolled out all the same
        st = wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=30)
        assert "modeldeploy.dev/promtoe" in st["handledRequests"], st
        assert (st["modelVersion"], st["observedGeneration"]) == ("2", 2), st
        assert proxy.injected, "the proxy held back no watch event"
    finally:
        if op is not None:
            op.stop()  # first: the proxy waits for the watches it relays to end
        proxy.close()
