"""The picture of a rollout's timeline (cli/timeline.py) as SVG, drawn with matplotlib.

matplotlib is an optional extra (`pip install 'modeldeploy[plot]'`): the operator image does not carry it,
so it is imported only when a picture is asked for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modeldeploy.cli.timeline import Timeline

EXTRA_MISSING = ("--plot draws with matplotlib, which is not installed here; install the plot extra: "
                 "pip install 'modeldeploy[plot]'")
MARK_COLORS = {"Promoted": "tab:green", "RolledBack": "tab:red", "Aborted": "tab:orange",
               "Superseded": "tab:gray", "RollbackRequested": "tab:purple"}
VERDICT_COLORS = {"Pass": "tab:green", "Fail": "tab:red", "Inconclusive": "tab:olive"}


class PlotUnavailable(Exception):
    """matplotlib is not installed: the message says which extra brings it."""


def _color(revision: int) -> str:
    return f"C{revision % 10}"


def _label(tl: Timeline, revision: int) -> str:
    outcome = tl.outcomes.get(revision)
    return f"revision {revision} (model {tl.models.get(revision, '?')})" + (f": {outcome}" if outcome else "")


def draw(tl: Timeline, path: str) -> None:
    """Write the timeline to `path` as SVG: weight, Ready pods per revision, each metric against its threshold,
    and a line at every promotion, rollback, abort and superseded canary."""
    try:
        import matplotlib
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailable(EXTRA_MISSING) from exc

    panels = 2 + len(tl.metrics)
    # A Figure of its own, not pyplot: no global state and no GUI backend, whatever the user's matplotlibrc says.
    fig = Figure(figsize=(10, 1.2 + 2.2 * panels), layout="constrained")
    axes: list[Any] = list(fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0])

    weight = axes[0]
    for revision, points in tl.weights.items():
        # Dashed: between two points the weight moved at steps no Event recorded.
        weight.plot([p.at for p in points], [p.weight for p in points], linestyle="--", color=_color(revision),
                    label=_label(tl, revision))
        # Filled: the weight served; hollow: the weight a step asked for while its pods were not Ready yet.
        for reached in (True, False):
            chosen = [p for p in points if p.reached == reached]
            weight.scatter([p.at for p in chosen], [p.weight for p in chosen], zorder=3, color=_color(revision),
                           facecolors=_color(revision) if reached else "white")
    weight.set_ylim(-5, 105)
    weight.set_ylabel("weight %")
    weight.set_title("share of requests of the revision rolling out (hollow: asked, its pods not Ready yet)",
                     loc="left", fontsize="medium")

    pods = axes[1]
    for revision, pts in tl.pods.items():
        pods.plot([p.at for p in pts], [p.ready for p in pts], marker="s", linestyle="--", color=_color(revision),
                  label=_label(tl, revision))
        wanted = [p for p in pts if p.desired is not None]
        pods.scatter([p.at for p in wanted], [p.desired for p in wanted], marker="_", s=200, color=_color(revision))
    pods.set_ylabel("Ready pods")
    pods.set_ylim(bottom=0)
    pods.set_title("Ready pods per revision (a bar: the pods wanted)", loc="left", fontsize="medium")

    for ax, series in zip(axes[2:], tl.metrics, strict=True):
        for bound, word in ((series.maximum, "max"), (series.minimum, "min")):
            if bound is not None:
                ax.axhline(bound, color="tab:red", linestyle="--", linewidth=1, label=f"{word} {bound:g}")
        if series.points:
            ax.plot([p.at for p in series.points], [p.value for p in series.points], color="0.6", linewidth=1)
            ax.scatter([p.at for p in series.points], [p.value for p in series.points], zorder=3,
                       c=[VERDICT_COLORS.get(p.verdict, "0.3") for p in series.points])
        else:
            ax.text(0.5, 0.5, "no value recorded in this window", transform=ax.transAxes, ha="center",
                    va="center", color="0.4")
        values = [p.value for p in series.points] + [b for b in (series.minimum, series.maximum) if b is not None]
        if values and min(values) >= 0:
            ax.set_ylim(bottom=0)  # rates and latencies: the distance to zero is part of the reading
        ax.set_ylabel(series.name)
        ax.set_title(f"analysis: {series.name} (green pass, red fail)", loc="left", fontsize="medium")
        if series.minimum is not None or series.maximum is not None:
            ax.legend(loc="upper left", fontsize="small")

    for mark in tl.marks:
        for ax in axes:
            ax.axvline(mark.at, color=MARK_COLORS.get(mark.reason, "0.3"), linestyle=":", linewidth=1.5)
        weight.annotate(f"{mark.reason} r{mark.revision}", xy=(mark.at, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -3), textcoords="offset points", rotation=90, va="top", fontsize="small",
                        color=MARK_COLORS.get(mark.reason, "0.3"))
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left", fontsize="small")
    for ax in axes:
        ax.grid(True, alpha=0.3)

    end = tl.end if tl.end > tl.start else tl.start + timedelta(minutes=1)
    axes[-1].set_xlim(tl.start, end)
    locator = AutoDateLocator()
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle(f"{tl.name} in namespace {tl.namespace}: {tl.start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC "
                 f"({tl.events} Events)")
    # Text stays text (small, searchable files); no date or random ids, so the same timeline gives the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "modeldeploy"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
