"""`modeldeploy` / `kubectl modeldeploy`: run the operator, or look at and steer rollouts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubernetes.client.rest import ApiException

from modeldeploy import __version__
from modeldeploy.api import names
from modeldeploy.cli import render
from modeldeploy.comparator import STATS_PORT, TRAFFIC_PORT
from modeldeploy.desired.settings import COMPARATOR_IMAGE
from modeldeploy.k8s.cache import RELIST_SECONDS
from modeldeploy.k8s.client import TIMEOUT, Kube
from modeldeploy.k8s.throttle import Throttle
from modeldeploy.reconcile.runs import ANALYSIS_WORKERS

# The client's rate limit by default: Argo Rollouts' controller defaults (controller-runtime's are 20 and 30).
# With the cache a settled fleet sends nothing, so the limit shapes only bursts of real work.
KUBE_QPS, KUBE_BURST = 40.0, 80

if TYPE_CHECKING:
    from modeldeploy.handlers.peering import Peering


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    import kubernetes.config

    try:
        _, active = kubernetes.config.list_kube_config_contexts(config_file=args.kubeconfig)
        return str(active.get("context", {}).get("namespace") or "default")
    except (kubernetes.config.ConfigException, OSError, TypeError):
        return "default"


def _kube(args: argparse.Namespace) -> Kube:
    import kubernetes.config

    try:
        kube = Kube.connect(args.kubeconfig)
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise CliError(f"cannot load a kubeconfig ({exc}); set KUBECONFIG or pass --kubeconfig") from exc
    if getattr(args, "kube_qps", None) is not None:  # `run`: the operator's rate limit
        kube.throttle = Throttle(args.kube_qps, args.kube_burst)
    return kube


def _get_md(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client.rest import ApiException

    try:
        md = kube.get(names.API_VERSION, names.KIND, namespace, name)
    except ApiException as exc:
        if exc.status == 404:  # the CRD itself is missing
            raise CliError("the ModelDeployment API is not installed in this cluster; "
                           "install the CRDs first (kubectl apply -f crds/)") from exc
        raise CliError(f"the API server answered {exc.status} {exc.reason}") from exc
    if md is None:
        raise CliError(f"ModelDeployment {name!r} not found in namespace {namespace!r}; "
                       f"`kubectl get modeldeployments -n {namespace}` lists the ones there")
    return md


def cmd_status(args: argparse.Namespace) -> int:
    kube, ns = _kube(args), _namespace(args)
    if args.watch and sys.stdout.isatty():
        return _watch_live(kube, ns, args.name)
    # Plain text (no --watch, or a pipe or file): each change printed in full, so logs and scripts read it.
    last = ""
    while True:
        md = _get_md(kube, ns, args.name)
        history = kube.owned("apps/v1", "ControllerRevision", ns, args.name)
        text = render.status(md, history)
        if text != last:
            print(("\n" if last else "") + text, flush=True)
            last = text
        if not args.watch:
            return 0
        time.sleep(1)


def _watch_live(kube: Kube, ns: str, name: str) -> int:
    """`status --watch` on a terminal: one view redrawn in place."""
    from rich.console import Console
    from rich.live import Live

    from modeldeploy.cli import live

    with Live(console=Console(), auto_refresh=False) as screen:
        while True:
            md = _get_md(kube, ns, name)
            history = kube.owned("apps/v1", "ControllerRevision", ns, name)
            deployments = kube.owned("apps/v1", "Deployment", ns, name)
            # Redrawn every second even without a change, so a pause's countdown moves.
            screen.update(live.live(md, history, deployments, datetime.now(UTC)), refresh=True)
            time.sleep(1)


def _events(kube: Kube, ns: str, name: str) -> list[dict[str, Any]]:
    """The core/v1 Events whose involvedObject is the ModelDeployment."""
    import kubernetes.client

    answer: Any = kubernetes.client.CoreV1Api(kube.api).list_namespaced_event(
        ns, field_selector=f"involvedObject.kind={names.KIND},involvedObject.name={name}",
        _preload_content=False, _request_timeout=TIMEOUT)
    items: list[dict[str, Any]] = json.loads(answer.data).get("items") or []
    return items


def cmd_history(args: argparse.Namespace) -> int:
    kube, ns = _kube(args), _namespace(args)
    md = _get_md(kube, ns, args.name)
    history = kube.owned("apps/v1", "ControllerRevision", ns, args.name)
    if args.plot:
        return _plot(kube, ns, md, history, args.plot)
    if args.output == "json":
        print(json.dumps(render.history_rows(md, history), indent=2))
    else:
        print(render.history(md, history))
    return 0


def _plot(kube: Kube, ns: str, md: dict[str, Any], history: list[dict[str, Any]], path: str) -> int:
    from modeldeploy.cli import plot, timeline

    name = md["metadata"]["name"]
    events = _events(kube, ns, name)
    deployments = kube.owned("apps/v1", "Deployment", ns, name)
    tl = timeline.timeline(md, events, history, deployments, datetime.now(UTC))
    if not tl.events:
        raise CliError(f"no Events of ModelDeployment {name!r} in namespace {ns!r} to draw: the API server keeps "
                       f"Events for an hour by default (kube-apiserver --event-ttl); plot soon after a rollout")
    try:
        plot.draw(tl, path)
    except plot.PlotUnavailable as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
    print(f"{path}: the rollouts of {name} from {tl.start:%Y-%m-%d %H:%M:%S} to {tl.end:%H:%M:%S} UTC "
          f"({tl.events} Events)")
    return 0


def _request(args: argparse.Namespace, annotations: dict[str, str | None], done: str) -> int:
    """Write an imperative request as annotations; the operator carries it out. The spec is never touched."""
    kube, ns = _kube(args), _namespace(args)
    _get_md(kube, ns, args.name)
    kube.patch(names.API_VERSION, names.KIND, ns, args.name, {"metadata": {"annotations": annotations}})
    print(f"{args.name}: {done}; `kubectl modeldeploy status {args.name}` shows progress")
    return 0


def _token() -> str:
    return str(time.time_ns())


def cmd_promote(args: argparse.Namespace) -> int:
    from modeldeploy.desired import requests

    key = requests.PROMOTE_FULL if args.full else requests.PROMOTE
    return _request(args, {key: _token()}, "promotion requested" + (" (all remaining steps)" if args.full else ""))


def cmd_abort(args: argparse.Namespace) -> int:
    from modeldeploy.desired import requests

    return _request(args, {requests.ABORT: _token()}, "abort requested: traffic goes back to stable")


def cmd_pause(args: argparse.Namespace) -> int:
    from modeldeploy.desired import requests

    return _request(args, {requests.PAUSED: "true"}, "rollout paused")


def cmd_resume(args: argparse.Namespace) -> int:
    from modeldeploy.desired import requests

    return _request(args, {requests.PAUSED: None, requests.RESUME: _token()}, "rollout resumed")


def cmd_rollback(args: argparse.Namespace) -> int:
    from modeldeploy.desired import requests

    kube, ns = _kube(args), _namespace(args)
    known = {int(cr.get("revision", 0)) for cr in kube.owned("apps/v1", "ControllerRevision", ns, args.name)}
    _get_md(kube, ns, args.name)
    if args.to_revision not in known:
        raise CliError(f"revision {args.to_revision} is not in the history of {args.name} "
                       f"(known: {', '.join(map(str, sorted(known))) or 'none'}); "
                       f"`kubectl modeldeploy history {args.name}` lists them")
    return _request(args, {requests.ROLLBACK: f"{args.to_revision}@{_token()}"},
                    f"rollback to revision {args.to_revision} requested; it serves until the spec's "
                    f"serving template changes")


def cmd_run(args: argparse.Namespace) -> int:
    import kopf
    import prometheus_client

    from modeldeploy.desired.settings import Settings
    from modeldeploy.handlers import metrics
    from modeldeploy.handlers import operator as handlers

    _setup_logging(args.verbose, args.log_format)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it
    if not args.namespace and not args.all_namespaces:
        raise CliError("say which namespaces to watch: --namespace NS (repeatable) or --all-namespaces")
    if args.priority is not None and not args.peering:
        raise CliError("--priority only means something with --peering NAME (several replicas)")
    kube = _kube(args)
    settings = Settings(storage_initializer_image=args.storage_initializer_image,
                        comparator_image=args.comparator_image,
                        allow_inline_analysis_urls=args.allow_inline_analysis_urls,
                        own_namespace=args.own_namespace)
    peering = _peering(args, kube)
    if args.metrics_port:
        metrics.count_requests(kube)
        prometheus_client.start_http_server(args.metrics_port)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    memo = handlers.make_memo(kube, settings, peering, analysis_workers=args.analysis_workers,
                              namespaces=None if args.all_namespaces else args.namespace,
                              resync_seconds=args.resync_seconds)
    if peering is None:  # one replica: no peering at all
        kopf.run(standalone=True, clusterwide=args.all_namespaces, namespaces=args.namespace or [],
                 memo=memo, liveness_endpoint=liveness)
    else:
        kopf.run(standalone=False, peering_name=peering.name, priority=peering.priority,
                 identity=peering.identity,  # type: ignore[arg-type]  # kopf's Identity: an unexported NewType(str)
                 clusterwide=args.all_namespaces,
                 namespaces=args.namespace or [], memo=memo, liveness_endpoint=liveness)
    return 0


def _peering(args: argparse.Namespace, kube: Kube) -> Peering | None:
    """With --peering: the peering objects made, and this replica's priority chosen (see handlers.peering)."""
    if not args.peering:
        return None
    from kubernetes.client.rest import ApiException

    from modeldeploy.handlers import peering
    from modeldeploy.k8s.peering import PeeringError

    try:
        return peering.prepare(kube, args.peering, [] if args.all_namespaces else args.namespace, args.priority)
    except PeeringError as exc:
        raise CliError(str(exc)) from exc
    except ApiException as exc:
        raise CliError(f"cannot set up peering {args.peering!r}: the API server answered "
                       f"{exc.status} {exc.reason}") from exc


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log pipelines (Loki, Elasticsearch, Cloud Logging) parse."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def cmd_compare(args: argparse.Namespace) -> int:
    from modeldeploy.comparator.server import Comparator, serve

    _setup_logging(args.verbose, "text")
    serve(Comparator(args.stable, args.canary, args.tolerance, args.stable_revision, args.canary_revision,
                     timeout=args.timeout), args.port, args.stats_port)
    return 0


def _setup_logging(verbose: bool, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:
        # kopf logs every handled watch event at INFO; the reconciler logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="modeldeploy", description=__doc__)
    p.add_argument("--version", action="version", version=f"modeldeploy {__version__}")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--namespace", "-n", action="append", help="watch this namespace (repeatable)")
    run.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off)")
    run.add_argument("--health-port", type=int, default=8081, help="liveness endpoint port (0: off)")
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--peering", metavar="NAME", default=None,
                     help="run as one of several replicas (high availability): replicas with the same NAME "
                          "see each other through kopf's peering objects and only the live one with the "
                          "highest priority acts (needs crds/kopf-peering.yaml); default: standalone")
    run.add_argument("--priority", type=int, default=None,
                     help="this replica's peering priority (the highest live one acts); default: drawn at "
                          "random from 1..2**31-1, so replicas practically never tie (replicas of equal "
                          "priority all pause: never give two replicas the same value)")
    run.add_argument("--allow-inline-analysis-urls", action="store_true",
                     help="also reach analysis URLs written in ModelDeployments (prometheus.address, webhook.url); "
                          "off: metrics must name an AnalysisProvider, so tenants cannot point the operator at "
                          "other hosts")
    run.add_argument("--analysis-workers", type=int, default=ANALYSIS_WORKERS,
                     help="analysis runs taken at once, off the reconcile workers (each ModelDeployment has at most "
                          "one going)")
    run.add_argument("--kube-qps", type=float, default=KUBE_QPS,
                     help="API requests a second the operator sends at most, after a burst (0: no limit)")
    run.add_argument("--kube-burst", type=int, default=KUBE_BURST,
                     help="API requests the operator may send at once before --kube-qps applies")
    run.add_argument("--resync-seconds", type=float, default=RELIST_SECONDS,
                     help="list everything watched this often, to catch a change whose watch event was lost "
                          "(0: never)")
    run.add_argument("--own-namespace", default=os.environ.get("POD_NAMESPACE", ""),
                     help="the operator's namespace, where AnalysisProviders' bearerTokenSecrets are read "
                          "(default: $POD_NAMESPACE)")
    run.add_argument("--storage-initializer-image", default=os.environ.get(
        "MODELDEPLOY_STORAGE_INITIALIZER_IMAGE", "docker.io/kserve/storage-initializer:v0.21.0"),
        help="image of the init container that fetches model.uri")
    run.add_argument("--comparator-image", default=os.environ.get("MODELDEPLOY_COMPARATOR_IMAGE", COMPARATOR_IMAGE),
                     help="image the comparator of a compare metric runs (`modeldeploy compare`): the operator's own")
    run.set_defaults(func=cmd_run)

    compare = sub.add_parser("compare", help="the comparator a compare metric deploys beside a canary: sends each "
                                             "request to both revisions and counts the predictions that differ")
    compare.add_argument("--stable", required=True, metavar="URL", help="the stable revision's Service")
    compare.add_argument("--canary", required=True, metavar="URL", help="the canary revision's Service")
    compare.add_argument("--stable-revision", type=int, required=True)
    compare.add_argument("--canary-revision", type=int, required=True)
    compare.add_argument("--tolerance", type=float, default=0.0,
                         help="numeric predictions this close agree (default 0: only equal ones)")
    compare.add_argument("--timeout", type=float, default=30.0, help="seconds each revision has to answer")
    compare.add_argument("--port", type=int, default=TRAFFIC_PORT, help="where mirrored requests come in")
    compare.add_argument("--stats-port", type=int, default=STATS_PORT, help="/healthz, /agreement and /metrics")
    compare.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    compare.set_defaults(func=cmd_compare)

    for name, func, text in (
            ("status", cmd_status, "show a ModelDeployment's rollout state"),
            ("history", cmd_history, "list a ModelDeployment's revisions"),
            ("promote", cmd_promote, "finish the current rollout step (--full: every remaining step)"),
            ("abort", cmd_abort, "stop the rollout: all traffic back to the stable revision"),
            ("pause", cmd_pause, "hold the rollout at its current step"),
            ("resume", cmd_resume, "continue a held rollout"),
            ("rollback", cmd_rollback, "serve an earlier revision (until the spec's serving template changes)")):
        c = sub.add_parser(name, help=text)
        c.add_argument("name", help="ModelDeployment name")
        c.add_argument("--namespace", "-n", default=None)
        c.set_defaults(func=func)
    sub.choices["status"].add_argument("--watch", "-w", action="store_true",
                                       help="keep watching: a view redrawn in place on a terminal, each change "
                                            "printed in full otherwise")
    sub.choices["history"].add_argument("--output", "-o", choices=["table", "json"], default="table")
    sub.choices["history"].add_argument("--plot", metavar="FILE.svg", default=None,
                                        help="draw the rollouts the Events still cover (weight, Ready pods, "
                                             "analysis, promotions and rollbacks) to an SVG file; needs the plot "
                                             "extra: pip install 'modeldeploy[plot]'")
    sub.choices["promote"].add_argument("--full", action="store_true", help="skip every remaining step")
    sub.choices["rollback"].add_argument("--to-revision", type=int, required=True,
                                         help="revision number (see `history`)")
    return p


def _server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))
    except ValueError:
        return str(exc.body or "")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiException as exc:
        print(f"error: the API server answered {exc.status} {exc.reason}: {_server_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
