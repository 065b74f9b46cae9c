"""Human-readable views of a ModelDeployment (pure: objects in, text out)."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import names


def history_rows(md: dict[str, Any], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per revision, oldest first."""
    status = md.get("status") or {}
    rows = []
    for cr in sorted(history, key=lambda c: int(c.get("revision", 0))):
        ann = cr["metadata"].get("annotations") or {}
        number = int(cr.get("revision", 0))
        marks = []
        if number == status.get("stableRevision"):
            marks.append("stable")
        if number == status.get("canaryRevision"):
            marks.append("canary")
        rows.append({
            "revision": number,
            "model": ann.get(names.ANN_MODEL_VERSION, ""),
            "created": cr["metadata"].get("creationTimestamp", ""),
            "outcome": ann.get(names.ANN_OUTCOME, ""),
            "serving": ",".join(marks),
            "reason": ann.get(names.ANN_OUTCOME_REASON, ""),
        })
    return rows


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def history(md: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """`kubectl modeldeploy history NAME`."""
    rows = history_rows(md, history)
    if not rows:
        return f"{md['metadata']['name']}: no revisions yet"
    return _table(["REVISION", "MODEL", "CREATED", "OUTCOME", "SERVING", "REASON"],
                  [[str(r["revision"]), r["model"], r["created"], r["outcome"], r["serving"], r["reason"]]
                   for r in rows])


def status(md: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """`kubectl modeldeploy status NAME`."""
    meta, st = md["metadata"], md.get("status") or {}
    models = {r["revision"]: r["model"] for r in history_rows(md, history)}

    def rev(n: Any) -> str:
        return f"revision {n} (model {models.get(n, '?')})" if n is not None else "-"

    generation, observed = meta.get("generation"), st.get("observedGeneration")
    if generation is None:
        lag = ""
    elif observed is None:
        lag = f"  (spec generation {generation}, not yet seen by the operator)"
    elif observed != generation:
        lag = f"  (spec generation {generation}, operator has seen {observed})"
    else:
        lag = ""
    lines = [
        f"{meta['name']} in namespace {meta['namespace']}",
        f"  phase:     {st.get('phase', 'Unknown')}{lag}",
        f"  message:   {st.get('message', '')}",
        f"  url:       {st.get('url', '-')}",
        f"  stable:    {rev(st.get('stableRevision'))}",
    ]
    if st.get("canaryRevision") is not None:
        weight = st.get("canaryWeight")
        lines.append(f"  canary:    {rev(st.get('canaryRevision'))}"
                     + (f" at {weight}%" if weight is not None else ""))
    if st.get("currentStepIndex") is not None:
        lines.append(f"  step:      {st['currentStepIndex'] + 1} (since {st.get('stepStartedAt', '?')})")
    lines.append(f"  replicas:  {st.get('readyReplicas', 0)}/{st.get('replicas', 0)} ready")
    analysis = st.get("analysis")
    if analysis:
        lines.append(f"  analysis:  revision {analysis.get('revision')}: {analysis.get('runs', 0)} runs, "
                     f"{analysis.get('passed', 0)} passed, {analysis.get('failed', 0)} failed, "
                     f"{analysis.get('inconclusive', 0)} inconclusive; last {analysis.get('lastVerdict', '-')} "
                     f"at {analysis.get('lastRunAt', '-')}")
        for m in analysis.get("measurements") or []:
            value = m.get("value")
            lines.append(f"    {m.get('metric')}: {m.get('verdict')} "
                         f"{'' if value is None else f'value {value:g} '}({m.get('message', '')})")
    conds = st.get("conditions") or []
    if conds:
        lines.append("  conditions:")
        lines.append("\n".join("    " + line for line in _table(
            ["TYPE", "STATUS", "REASON", "SINCE"],
            [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("lastTransitionTime", "")]
             for c in conds]).splitlines()))
    return "\n".join(lines)
