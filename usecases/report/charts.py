"""The report's charts, drawn by plotly.js inlined in the page: the optional `charts` extra.

plotly was chosen by measurement (docs/PERFORMANCE.md): figures are built as plain dicts and
serialised without plotly's validation, which keeps 10,000 backups at ~0.1 s; matplotlib,
bokeh and pygal took 0.9 to 3 s. Without plotly, `charts` returns None and the page is the
tables alone, saying how to install it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from usecases.report.html import Times
from usecases.report.model import OUTCOMES, Mark, Report

INSTALL_HINT = "pip install 'dumpledger[charts]'"
COLOURS = {
    "verified": "#2e7d32",
    "not verified": "#f9a825",
    "verify failed": "#e65100",
    "pinned": "#1565c0",
    "failed": "#c62828",
    "deleted": "#9e9e9e",
    "running": "#6a1b9a",
}
SLOT_ORDER = ("morning", "noon", "evening", "nightly")
CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True, slots=True)
class Charts:
    library: str  # "plotly 7.1.0"
    divs: dict[str, str]  # section -> the chart's <div> and <script>, plotly.js in the first


def charts(report: Report, times: Times) -> Charts | None:
    """The figures of the page, or None when plotly is not installed."""
    try:
        import plotly
        import plotly.io as pio
    except ImportError:
        return None
    clock = _Clock(times)
    figures = {
        "schedule": timeline_figure(report, clock),
        "size": size_figure(report, clock),
        "store": store_figure(report, clock),
        "recoverability": drill_figure(report, clock),
    }
    divs, first = {}, True
    for key, fig in figures.items():
        divs[key] = pio.to_html(
            fig,
            config=CONFIG,
            include_plotlyjs=first,  # plotly.js inline, once: the page needs no network
            full_html=False,
            div_id=f"chart-{key}",
            validate=False,
        )
        first = False
    return Charts(library=f"plotly {plotly.__version__}", divs=divs)


class _Clock:
    """Times as plotly reads them: the page's wall clock, to the second."""

    def __init__(self, times: Times) -> None:
        self.times = times

    def __call__(self, moment: datetime) -> str:
        return self.times(moment, seconds=True)


def _layout(report: Report, clock: _Clock, title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "title": {"text": title},
        "height": 340,
        "margin": {"l": 70, "r": 30, "t": 50, "b": 40},
        "xaxis": {"type": "date", "range": [clock(report.since), clock(report.now)]},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "closest",
        "plot_bgcolor": "#fafafa",
    }
    layout.update(extra)
    return layout


def _types(seen: set[str]) -> list[str]:
    return [t for t in SLOT_ORDER if t in seen] + sorted(seen - set(SLOT_ORDER))


def timeline_figure(report: Report, clock: _Clock) -> dict[str, Any]:
    traces: list[dict[str, Any]] = []
    for outcome in OUTCOMES:
        marks = [m for m in report.marks if m.outcome == outcome]
        if marks:
            traces.append(
                _markers(
                    outcome,
                    [clock(m.started_at) for m in marks],
                    [m.backup_type for m in marks],
                    [f"{m.name}<br>{m.status}{_why(m)}" for m in marks],
                    COLOURS[outcome],
                    symbol="line-ns-open",
                    size=14,
                )
            )
    missed = [s for s in report.slots if s.outcome == "missed"]
    if missed:
        traces.append(
            _markers(
                "missed slot",
                [clock(s.due) for s in missed],
                [s.backup_type for s in missed],
                [f"{s.backup_type} due {clock(s.due)}: no backup" for s in missed],
                "#b71c1c",
                symbol="x-thin-open",
                size=11,
            )
        )
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": clock(b.start),
            "x1": clock(b.end),
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(198,40,40,0.15)",
            "line": {"width": 0},
            "layer": "below",
            "name": "RPO breach",
            "showlegend": i == 0,
        }
        for i, b in enumerate(report.breaches)
    ]
    order = _types({m.backup_type for m in report.marks} | {s.backup_type for s in missed})
    yaxis = {"type": "category", "categoryorder": "array", "categoryarray": order[::-1]}
    return {
        "data": traces,
        "layout": _layout(report, clock, "Backups by type and outcome", yaxis=yaxis, shapes=shapes),
    }


def _why(m: Mark) -> str:
    extra = f", planned removal ({m.planned})" if m.planned else ""
    return f": {m.reason}{extra}" if m.reason else extra


def _markers(
    name: str, x: list[str], y: list[Any], text: list[str], colour: str, **marker: Any
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": x,
        "y": y,
        "hovertext": text,
        "hoverinfo": "text",
        "marker": {"color": colour, **marker},
    }


def size_figure(report: Report, clock: _Clock) -> dict[str, Any]:
    done = [m for m in report.marks if m.completed_at is not None]
    going = [m for m in done if m.planned]
    x = [clock(m.started_at) for m in done]
    names = [m.name for m in done]  # one list, the same in both traces
    traces = [
        _markers("logical size", x, [m.raw_size for m in done], names, "#546e7a", size=6),
        _markers("newly stored", x, [m.new_bytes for m in done], names, "#ef6c00", size=6),
    ]
    if going:
        traces.append(
            _markers(
                "the next cleanup removes",
                [clock(m.started_at) for m in going],
                [m.raw_size for m in going],
                [f"{m.name}: {m.planned}" for m in going],
                "#c62828",
                symbol="circle-open",
                size=11,
            )
        )
    yaxis = {
        "title": {"text": "bytes"},
        "tickformat": "~s",
        "ticksuffix": "B",
        "rangemode": "tozero",
    }
    return {
        "data": traces,
        "layout": _layout(
            report, clock, "Each backup: logical size and bytes newly stored", yaxis=yaxis
        ),
    }


def store_figure(report: Report, clock: _Clock) -> dict[str, Any]:
    points = report.store
    total = points[-1].total if points else 0
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "line": {"shape": "hv", "color": "#37474f"},
            "name": "store total",
            "x": [clock(p.at) for p in points] + [clock(report.now)],
            "y": [p.total for p in points] + [total],
            "hovertext": [f"{p.why}: {p.change:+,d} B" for p in points] + ["now"],
        }
    ]
    if report.planned_bytes:
        traces.append(
            _markers(
                "after the next cleanup",
                [clock(report.now)],
                [total - report.planned_bytes],
                [f"{len(report.planned)} backups removed, {report.planned_bytes:,d} B freed"],
                "#c62828",
                symbol="triangle-down",
                size=12,
            )
        )
    yaxis = {
        "title": {"text": "stored bytes"},
        "tickformat": "~s",
        "ticksuffix": "B",
        "rangemode": "tozero",
    }
    return {"data": traces, "layout": _layout(report, clock, "The store over time", yaxis=yaxis)}


def drill_figure(report: Report, clock: _Clock) -> dict[str, Any]:
    traces = []
    for ok in (True, False):
        drills = [d for d in report.drills if d.ok is ok]
        if drills:
            traces.append(
                _markers(
                    "drill passed" if ok else "drill failed",
                    [clock(d.at) for d in drills],
                    [round(d.restore_seconds / 60, 2) for d in drills],
                    [f"{d.backup}: restore {d.restore_seconds:.0f} s" for d in drills],
                    COLOURS["verified" if ok else "failed"],
                    size=9,
                )
            )
    objective = report.rto_seconds / 60
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"RTO objective ({objective:g} min)",
            "x": [clock(report.since), clock(report.now)],
            "y": [objective, objective],
            "line": {"color": "#c62828", "dash": "dash"},
            "hoverinfo": "name",
        }
    )
    yaxis = {"title": {"text": "restore minutes"}, "rangemode": "tozero"}
    return {
        "data": traces,
        "layout": _layout(report, clock, "Restore drills: measured RTO", yaxis=yaxis),
    }
