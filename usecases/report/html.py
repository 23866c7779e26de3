"""Small HTML pieces shared by the page and its sections: escaping, cells, tables, times."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from html import escape

from usecases.health.check import size_text


def e(value: object) -> str:
    return escape(str(value), quote=True)


def n(key: str, value: object) -> str:
    """A number the page states, findable by tests and scripts: <b data-n="key">."""
    return f'<b data-n="{e(key)}">{e(value)}</b>'


def size(value: int | None) -> str:
    return "-" if value is None else size_text(int(value))


def code(text: str) -> str:
    return f"<code>{e(text)}</code>"


def outcome(text: str) -> str:
    slug = text.replace(" ", "-")
    return f'<span class="outcome o-{e(slug)}">{e(text)}</span>'


class Times:
    """Times as the page shows them: the wall clock of `tz` (None: this machine's zone)."""

    def __init__(self, tz: tzinfo | None) -> None:
        self.tz = tz
        self._seen: dict[datetime, str] = {}  # a backup's time shows in a table and a chart

    def __call__(self, moment: datetime | None, *, seconds: bool = False) -> str:
        if moment is None:
            return "-"
        text = self._seen.get(moment)
        if text is None:
            text = self._seen[moment] = moment.astimezone(self.tz).isoformat(" ", "seconds")[:19]
        return text if seconds else text[:16]

    def zone(self, moment: datetime) -> str:
        local = moment.astimezone(self.tz)
        offset = local.strftime("%z")
        return f"{local.tzname()} (UTC{offset[:3]}:{offset[3:]})"


Cell = str | tuple[str, str]  # html, or (html, class)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    table_id: str,
    numeric: Sequence[int] = (),
    row_attrs: Iterable[str] | None = None,
) -> str:
    """`rows` hold HTML already escaped; `numeric` columns align right."""
    head = "".join(
        f'<th class="num">{e(h)}</th>' if i in numeric else f"<th>{e(h)}</th>"
        for i, h in enumerate(headers)
    )
    attrs = iter(row_attrs) if row_attrs is not None else None
    body = []
    for row in rows:
        cells = "".join(_cell(c, i in numeric) for i, c in enumerate(row))
        extra = f" {next(attrs)}" if attrs is not None else ""
        body.append(f"<tr{extra}>{cells}</tr>")
    return (
        f'<table id="{e(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _cell(cell: Cell, numeric: bool) -> str:
    html, cls = cell if isinstance(cell, tuple) else (cell, "")
    classes = " ".join(c for c in (cls, "num" if numeric else "") if c)
    return f'<td class="{classes}">{html}</td>' if classes else f"<td>{html}</td>"


def ok_text(ok: bool | None, when: str) -> str:
    if ok is None:
        return "never"
    return f"{when} ok" if ok else f'<span class="bad">{when} FAILED</span>'
