"""End to end: the chart's alerts and dashboard, evaluated by a real Prometheus on the real operator's metrics.

The PrometheusRule and the dashboard ConfigMap are rendered by `helm template`. The rules are loaded into a
Prometheus that scrapes the operator under the job name the rules expect; a model is rolled back, given a spec
that cannot be served, and the operator is killed: each alert must fire for that model, and no other. The
dashboard is checked against Grafana's dashboard schema (`dashboardcheck`, tests/cluster/checks, built on the
Grafana Foundation SDK's types generated from that schema), and every panel's query is run on the same
Prometheus: each must evaluate, and those about the fleet must show the operator's series.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import Prometheus

from helpers import wait_for
from modeldeployments import MD, apply, manifest, wait_phase

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modeldeploy"
JOB = "modeldeploy-test-operator"
# Short waits, so the test sees each alert fire; the expressions are the chart's.
VALUES = ["--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true",
          "--set", f"prometheusRule.operatorJob={JOB}", "--set", "prometheusRule.rollbackWindow=5m",
          *[a for key in ("degradedFor", "failedFor", "operatorDownFor", "reconcileErrorsFor")
            for a in ("--set", f"prometheusRule.{key}=1s")]]


def rendered(cluster: Any) -> list[dict[str, Any]]:
    out = subprocess.run([str(cluster.bin / "helm"), "template", "md", str(CHART), "-n", "ops", *VALUES],
                         capture_output=True, text=True, timeout=60, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.fixture
def alerting(cluster: Any, operator: Any, tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus with the chart's rules, scraping this test's operator as the job the rules name."""
    rule = only(rendered(cluster), "PrometheusRule")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    scrape = f"  - job_name: {JOB}\n    static_configs: [{{targets: ['127.0.0.1:{operator.metrics_port}']}}]\n"
    prom = Prometheus(tmp_path, scrape, rule_files=[rules])
    try:
        yield prom
    finally:
        prom.stop()


def firing(prom: Prometheus) -> set[tuple[str, str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("namespace", ""), a["labels"].get("name", ""))
            for a in prom.alerts() if a["state"] == "firing"}


def wait_firing(prom: Prometheus, alert: tuple[str, str, str]) -> set[tuple[str, str, str]]:
    return wait_for(lambda: firing(prom), timeout=60, message=f"alert {alert} fires", until=lambda f: alert in f)


def test_the_charts_alerts_fire_on_a_rollback_a_failed_spec_and_a_stopped_operator(
        cluster, namespace, operator, alerting):
    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    body = manifest(namespace, version="1", replicas=2)
    body["spec"]["rollout"] = {"steps": steps, "progressDeadlineSeconds": 4, "scaleDownDelaySeconds": 1}
    apply(cluster, body)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    # Healthy, the operator up and scraped (its rollout counters at 0): nothing fires
    wait_for(lambda: alerting.query(f'modeldeploy_rollouts_total{{job="{JOB}",namespace="{namespace}"}}'),
             timeout=30, message="Prometheus has the model's rollout counters", until=lambda r: len(r) == 3)
    wait_for(lambda: firing(alerting), timeout=20, message="no alert fires", until=lambda f: f == set())
    # When revision 2's pods never become Ready, it is rolled back
    bad = manifest(namespace, version="2", replicas=2)
    bad["spec"]["rollout"] = body["spec"]["rollout"]
    bad["spec"]["template"] = {"metadata": {"labels": {"sim.modeldeploy.dev/behavior": "never-ready"}}}
    apply(cluster, bad)
    wait_phase(cluster, namespace, "Degraded", timeout=30)
    # Then the rollback and the Degraded model are alerted on, for this model
    wait_firing(alerting, ("ModelDeploymentRolledBack", namespace, MD))
    now = wait_firing(alerting, ("ModelDeploymentDegraded", namespace, MD))
    assert now == {("ModelDeploymentRolledBack", namespace, MD), ("ModelDeploymentDegraded", namespace, MD)}
    # When the spec cannot be served
    unservable = manifest(namespace, version="3", replicas=2, runtime={"preset": "no-such-server"})
    apply(cluster, unservable)
    wait_phase(cluster, namespace, "Failed")
    now = wait_firing(alerting, ("ModelDeploymentFailed", namespace, MD))
    # (Degraded gave way to Failed: that alert resolves)
    assert ("ModelDeploymentDegraded", namespace, MD) not in now
    # When the operator stops, that is alerted on too
    operator.kill()
    wait_firing(alerting, ("ModelDeployOperatorDown", "", ""))


def test_the_dashboard_follows_grafanas_schema_and_every_query_runs_on_the_operators_metrics(
        cluster, namespace, operator, alerting):
    docs = rendered(cluster)
    cm = only(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # what Grafana's dashboard sidecar looks for
    (text,) = cm["data"].values()
    assert json.loads(text) == json.loads((CHART / "dashboards" / "modeldeploy.json").read_text())
    checker = cluster.bin / "dashboardcheck"
    if not checker.exists():
        pytest.fail(f"{checker} is missing: `make cluster` builds it", pytrace=False)
    out = subprocess.run([str(checker)], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    queries = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(queries) >= 10
    # Give the panels something to show: a model promoted through a canary
    body = manifest(namespace, version="1", replicas=2)
    body["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}], "scaleDownDelaySeconds": 1}
    apply(cluster, body)
    wait_phase(cluster, namespace, "Healthy", stableRevision=1)
    body["spec"]["model"] = {"uri": "s3://models/fraud/v2", "version": "2"}
    apply(cluster, body)
    wait_phase(cluster, namespace, "Healthy", stableRevision=2, timeout=60)

    def run(expr: str) -> list[dict[str, Any]]:
        # Grafana's own variables, as Grafana fills them in
        return alerting.query(expr.replace("$__rate_interval", "1m").replace("$job", ".*"))

    # Every query evaluates (Prometheus answers 400 to one that does not parse)...
    results = {f"{q['panel']}/{q['refId']}": q["expr"] for q in queries}
    # ...and those about the fleet and the operator show its series
    # (a canary's weight and the rate-limit wait are empty when nothing waits)
    quiet = {"Canary weight/A", "Rate-limit wait/A", "Not healthy now/A"}
    for key, expr in results.items():
        if key in quiet:
            run(expr)
            continue
        wait_for(lambda expr=expr: run(expr), timeout=30, message=f"panel query {key} ({expr}) shows data",
                 until=bool)
