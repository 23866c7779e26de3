"""The report as one self-contained HTML page: styles and (with the charts extra) plotly.js
inline, a Content-Security-Policy that lets it load nothing, tables for every chart.

The page skeleton and its CSS are package data (templates/); the sections are built in
usecases.report.sections.
"""

from __future__ import annotations

import socket
from importlib.resources import files
from string import Template

from usecases.report import sections
from usecases.report.charts import INSTALL_HINT, Charts
from usecases.report.html import Cell, Times, code, e, table
from usecases.report.model import Report, Verdict


def _template(name: str) -> str:
    return files("usecases.report").joinpath("templates", name).read_text(encoding="utf-8")


def render(report: Report, charts: Charts | None, t: Times) -> str:
    divs = charts.divs if charts else {}
    verdict = report.verdict
    database = report.newest.database if report.newest else "no backup yet"
    body = (
        sections.schedule(report, t, divs)
        + sections.sizes(report, t, divs)
        + sections.recoverability(report, t, divs)
        + sections.audit(report, t)
    )
    return Template(_template("report.html")).substitute(
        version=e(_version()),
        title=e(f"dumpledger report: {database}, {t(report.now)}"),
        css=_template("report.css"),
        verdict_class=verdict.status.lower() if verdict else "unknown",
        header=header(report, t),
        notice=notice(report, charts),
        sections=body,
        footer=footer(report, charts, t),
    )


def header(report: Report, t: Times) -> str:
    facts = [("Period", f"{t(report.since)} to {t(report.now)}, {t.zone(report.now)}")]
    newest = report.newest
    if newest is not None:
        commit = f"{newest.git_commit or '-'}" + (
            f" ({newest.git_branch})" if newest.git_branch else ""
        )
        server = f" (PostgreSQL {newest.server_version})" if newest.server_version else ""
        facts += [
            ("Newest backup", f"{newest.name}, finished {t(newest.finished_at)}"),
            ("Database", newest.database + server),
            ("Host", newest.hostname or "-"),
            ("Git commit", commit),
        ]
    catalog = f"{report.catalog}, {report.events} events"
    if report.catalog_note:
        catalog += f" ({report.catalog_note})"
    facts.append(("Catalog", catalog))
    items = "".join(f'<dt>{e(k)}</dt><dd data-fact="{e(k)}">{e(v)}</dd>' for k, v in facts)
    title = newest.database if newest else "no backup yet"
    return f"<h1>dumpledger report: {e(title)}</h1>{verdict_html(report.verdict)}" + (
        f'<dl class="facts">{items}</dl>'
    )


def verdict_html(verdict: Verdict | None) -> str:
    if verdict is None:
        return (
            '<div class="verdict" id="verdict" data-status="unknown">Health not checked '
            f"(--no-check): run {code('dumpledger check')}.</div>"
        )
    rows: list[list[Cell]] = [
        [e(name), _status(status), (e(message), "wrap")] for name, status, message in verdict.checks
    ]
    checks = table(["check", "status", "message"], rows, table_id="checks")
    return (
        f'<div class="verdict" id="verdict" data-status="{e(verdict.status)}">'
        f"{_status(verdict.status)} {e(verdict.summary)}</div>"
        f"<details><summary>What `dumpledger check` checked</summary>{checks}</details>"
    )


def _status(status: str) -> str:
    return f'<span class="status status-{e(status)}">{e(status)}</span>'


def notice(report: Report, charts: Charts | None) -> str:
    parts = []
    if report.empty:
        parts.append(
            '<div class="empty" id="empty"><b>No backups yet.</b> The catalog at '
            f"{e(report.catalog)} records nothing: take one with {code('dumpledger backup')}, "
            "then make this report again.</div>"
        )
    if charts is None:
        parts.append(
            '<div class="notice" id="no-charts"><b>Charts are not shown:</b> the plotting '
            f"library (plotly) is not installed. Install it with {code(INSTALL_HINT)} (in a "
            f"checkout: {code('.venv/bin/pip install -e .[charts]')}) and make the report "
            "again. The tables below hold the same facts.</div>"
        )
    return "".join(parts)


def footer(report: Report, charts: Charts | None, t: Times) -> str:
    drawn = f"charts drawn by {charts.library}, inline" if charts else "no charts (tables only)"
    return (
        f"<p>Made by dumpledger {e(_version())} on {e(socket.gethostname())} at "
        f"{e(t(report.now, seconds=True))} ({e(t.zone(report.now))}); {e(drawn)}. The page "
        "needs no network: everything it shows is in this file. The report changes nothing "
        "in the catalog.</p>"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dumpledger")
    except PackageNotFoundError:
        return "(not installed)"
