"""`--since`/`--until` values: ISO dates or times (local unless zoned) or ages like 7d, 12h."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from catalog.canonical import utc_iso

AGE = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str, now: datetime) -> str:
    """UTC ISO string for the catalog's comparisons; ValueError with a hint otherwise."""
    match = AGE.match(text.strip())
    if match:
        delta = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
        return utc_iso(now - delta)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use 2026-11-24, '2026-11-24 06:00', or an age "
            "such as 7d, 12h, 30m, 2w"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as the user reads the clock
    return utc_iso(moment.astimezone(UTC))
