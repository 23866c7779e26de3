"""`dumpledger report`: gather, draw, render, write one file (0600). Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from usecases.config.settings import Settings
from usecases.errors import UseCaseError
from usecases.files import FILE_MODE, atomic_write
from usecases.report.charts import charts
from usecases.report.gather import Clock, ReportRequest, build_report
from usecases.report.html import Times
from usecases.report.model import Report
from usecases.report.render import render


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    report: Report
    html: str
    library: str | None  # what drew the charts; None: tables only


def make_page(settings: Settings, req: ReportRequest, *, clock: Clock) -> Page:
    report = build_report(settings, req, clock=clock)
    times = Times(req.tz)  # one cache of formatted times for the charts and the tables
    drawn = charts(report, times)
    return Page(
        report=report,
        html=render(report, drawn, times),
        library=drawn.library if drawn else None,
    )


def default_path(settings: Settings) -> Path:
    return settings.backup_dir / "report.html"


def write_page(path: Path, html: str, *, backup_dir: Path) -> int:
    """Write atomically, 0600 (the page names hosts, databases and who did what). Inside the
    backup directory its directories are made private as every file there; elsewhere the
    directory must exist and is left as it is."""
    data = html.encode("utf-8")
    inside = path.resolve().is_relative_to(backup_dir.resolve())
    if not inside and not path.parent.is_dir():
        raise UseCaseError(
            f"cannot write the report to {path}: {path.parent} is not a directory; "
            "choose another place with -o"
        )
    try:
        atomic_write(path, data, mode=FILE_MODE, private=inside)
    except OSError as exc:
        raise UseCaseError(
            f"cannot write the report to {path}: {exc.strerror or exc}; choose another place "
            "with -o (or -o - for stdout)"
        ) from None
    return len(data)
