"""Benchmark: which plotting library can draw the report's charts for 10,000 backups in time.

Not run by the tests; the candidates are not dumpledger's dependencies, so use a scratch venv:

    python3 -m venv /tmp/chartlibs
    /tmp/chartlibs/bin/pip install matplotlib plotly pygal bokeh
    /tmp/chartlibs/bin/python bench/bench_chart_libraries.py --json bench/results/chartlibs.json

Each candidate draws the report's three kinds of chart (a timeline of N marks by type and
outcome; N logical sizes, N new-byte counts and a step line of the store's total; 300 drills
against an objective) as a static, offline page fragment, in a new process: the import is
part of what a `dumpledger report` pays. CPU seconds of the process (steadier than wall time on
a shared machine), median of --rounds runs; megabytes of the fragment.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CANDIDATES = ("plotly-dict", "plotly-objects", "matplotlib-svg", "pygal", "bokeh")

DATA = """
import io, random, sys, time
from datetime import UTC, datetime, timedelta
T0 = time.process_time()
n = int(sys.argv[2])
random.seed(1)
start = datetime(2020, 1, 1, tzinfo=UTC)
TYPES = ["morning", "noon", "evening", "nightly", "manual"]
OUTCOMES = ["verified", "failed", "deleted", "pinned"]
pts = [(start + timedelta(hours=6 * i), TYPES[i % 5], random.choice(OUTCOMES), 1e6 + i * 100,
        random.random() * 1e5) for i in range(n)]
drills = [(start + timedelta(days=i), 30 + random.random() * 60) for i in range(300)]
total, acc = [], 0
for t, *_, new in pts:
    acc += new
    total.append((t, acc))
def by(o, f):
    return [f(p) for p in pts if p[2] == o]
"""

DRAW = {
    "plotly-dict": """
import plotly.io as pio
def fig(traces):
    return {"data": traces, "layout": {"height": 300}}
def sc(name, x, y):
    return {"type": "scatter", "mode": "markers", "name": name, "x": x, "y": y}
iso = lambda d: d.isoformat()
figs = [
    fig([sc(o, by(o, lambda p: iso(p[0])), by(o, lambda p: p[1])) for o in OUTCOMES]),
    fig([sc("raw", [iso(p[0]) for p in pts], [p[3] for p in pts]),
         sc("new", [iso(p[0]) for p in pts], [p[4] for p in pts]),
         {"type": "scatter", "line": {"shape": "hv"}, "x": [iso(t) for t, _ in total],
          "y": [a for _, a in total]}]),
    fig([{"type": "bar", "x": [iso(d) for d, _ in drills], "y": [s for _, s in drills]}]),
]
out = [pio.to_html(f, include_plotlyjs=i == 0, full_html=False, validate=False)
       for i, f in enumerate(figs)]
""",
    "plotly-objects": """
import plotly.graph_objects as go
f1 = go.Figure([go.Scatter(x=by(o, lambda p: p[0]), y=by(o, lambda p: p[1]), mode="markers",
                           name=o) for o in OUTCOMES])
f2 = go.Figure([go.Scatter(x=[p[0] for p in pts], y=[p[3] for p in pts], mode="markers"),
                go.Scatter(x=[p[0] for p in pts], y=[p[4] for p in pts], mode="markers"),
                go.Scatter(x=[t for t, _ in total], y=[a for _, a in total], line_shape="hv")])
f3 = go.Figure([go.Bar(x=[d for d, _ in drills], y=[s for _, s in drills])])
out = [f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate((f1, f2, f3))]
""",
    "matplotlib-svg": """
from matplotlib.figure import Figure
def svg(fig):
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()
f1 = Figure(figsize=(10, 3)); ax = f1.add_subplot()
for o in OUTCOMES:
    ax.plot(by(o, lambda p: p[0]), by(o, lambda p: TYPES.index(p[1])), ls="none", marker="|")
f2 = Figure(figsize=(10, 3)); ax = f2.add_subplot()
ax.plot([p[0] for p in pts], [p[3] for p in pts], ".", ms=2)
ax.plot([p[0] for p in pts], [p[4] for p in pts], ".", ms=2)
ax.twinx().step([t for t, _ in total], [a for _, a in total])
f3 = Figure(figsize=(10, 3)); ax = f3.add_subplot()
ax.bar([d for d, _ in drills], [s for _, s in drills]); ax.axhline(60)
out = [svg(f) for f in (f1, f2, f3)]
""",
    "pygal": """
import pygal
c1 = pygal.DateTimeLine(stroke=False, js=[], disable_xml_declaration=True)
for o in OUTCOMES:
    c1.add(o, [(p[0], TYPES.index(p[1])) for p in pts if p[2] == o])
c2 = pygal.DateTimeLine(js=[], disable_xml_declaration=True)
c2.add("raw", [(p[0], p[3]) for p in pts]); c2.add("new", [(p[0], p[4]) for p in pts])
c2.add("total", total)
c3 = pygal.Bar(js=[], disable_xml_declaration=True); c3.add("drill", [s for _, s in drills])
out = [c.render(is_unicode=True) for c in (c1, c2, c3)]
""",
    "bokeh": """
from bokeh.embed import components
from bokeh.plotting import figure
from bokeh.resources import INLINE
f1 = figure(x_axis_type="datetime", y_range=TYPES, width=900, height=250)
for o in OUTCOMES:
    f1.scatter(by(o, lambda p: p[0]), by(o, lambda p: p[1]), legend_label=o)
f2 = figure(x_axis_type="datetime", width=900, height=250)
f2.scatter([p[0] for p in pts], [p[3] for p in pts])
f2.scatter([p[0] for p in pts], [p[4] for p in pts])
f2.step([t for t, _ in total], [a for _, a in total])
f3 = figure(x_axis_type="datetime", width=900, height=250)
f3.vbar(x=[d for d, _ in drills], top=[s for _, s in drills], width=3e7)
script, divs = components([f1, f2, f3])
out = [INLINE.render_js(), script, *divs]
""",
}

REPORT = """
T1 = time.process_time()
print(json.dumps({"seconds": T1 - T0, "bytes": sum(len(o) for o in out)}))
"""


def measure(lib: str, n: int, rounds: int) -> dict[str, object]:
    code = "import json\n" + DATA + DRAW[lib] + REPORT
    runs = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", code, lib, str(n)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1]}
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
        "megabytes": round(runs[0]["bytes"] / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {
        lib: {str(n): measure(lib, n, args.rounds) for n in (300, 10_000)} for lib in CANDIDATES
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
