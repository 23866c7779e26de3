"""Retention: which backups to keep, as a pure function of (policy, backups, now).

No I/O and no clock reads: the backups are what the event log describes, `now` is given.
Every decision names the rule that decided it, so `cleanup` and `retention explain` can say why.

Order of the rules (the first that keeps a backup is the one reported):
  in-flight, pinned, newest-verified, forever (the class keeps everything until a person
  deletes it), keep_within, keep_last, keep_daily/weekly/monthly/yearly, min_verified.
A backup no rule keeps is removed by "expired". Periods are calendar periods in UTC (ISO weeks);
as in restic's `forget`, keep_daily N keeps the newest backup of each of the N most recent days
that have a backup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

CLASSES = ("auto", "manual", "emergency", "pre")
PERIODS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassPolicy:
    """How long one class of backups lives. No rule at all would remove everything, so a class
    without rules must say `forever`."""

    forever: bool = False
    keep_within_days: float | None = None
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def period_counts(self) -> dict[str, int]:
        return {
            "daily": self.keep_daily,
            "weekly": self.keep_weekly,
            "monthly": self.keep_monthly,
            "yearly": self.keep_yearly,
        }

    def describe(self) -> str:
        if self.forever:
            return "kept until a person deletes them"
        parts = []
        if self.keep_within_days is not None:
            parts.append(f"within {self.keep_within_days:g} days")
        if self.keep_last:
            parts.append(f"last {self.keep_last}")
        parts += [f"{n} {p}" for p, n in self.period_counts().items() if n]
        return "keep " + ", ".join(parts) if parts else "keep nothing"


FOREVER = ClassPolicy(forever=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Defaults are the old scripts': automatic backups 60 days; the rest until deleted."""

    classes: Mapping[str, ClassPolicy] = field(
        default_factory=lambda: {
            "auto": ClassPolicy(keep_within_days=60),
            "manual": FOREVER,
            "emergency": FOREVER,
            "pre": FOREVER,
        }
    )
    min_verified: int = 1

    def for_class(self, cls: str) -> ClassPolicy:
        return self.classes.get(cls, FOREVER)  # an unknown class is never removed

    def with_auto_days(self, days: float) -> Policy:
        """`cleanup DAYS`: the automatic backups' age limit for this run only."""
        auto = replace(self.for_class("auto"), forever=False, keep_within_days=days)
        return replace(self, classes={**self.classes, "auto": auto})


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupView:
    """One backup as the log describes it."""

    name: str
    backup_class: str
    status: str  # running | completed (failed and deleted ones hold nothing to retain)
    started_at: datetime  # UTC
    verified: bool = False
    pinned: bool = False
    pin_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    name: str
    keep: bool
    rule: str
    detail: str

    @property
    def action(self) -> str:
        return "keep" if self.keep else "remove"


def evaluate(policy: Policy, backups: Iterable[BackupView], now: datetime) -> list[Decision]:
    """One decision per backup, newest first; independent of the input's order."""
    views = sorted(
        (b for b in backups if b.status in ("running", "completed")),
        key=lambda b: (b.started_at, b.name),
        reverse=True,
    )
    decided: dict[str, Decision] = {}

    def keep(b: BackupView, rule: str, detail: str) -> None:
        decided.setdefault(b.name, Decision(name=b.name, keep=True, rule=rule, detail=detail))

    usable = [b for b in views if b.status == "completed"]
    verified = [b for b in usable if b.verified]
    for b in views:
        if b.status == "running":
            keep(b, "in-flight", "the backup is still being written")
        elif b.pinned:
            keep(b, "pinned", f"pinned: {b.pin_reason or 'no reason given'}")
    if verified:
        keep(verified[0], "newest-verified", "the newest verified backup is always kept")
    for cls in sorted({b.backup_class for b in usable}):
        members = [b for b in usable if b.backup_class == cls]
        _apply_class(policy.for_class(cls), cls, members, now, keep)
    floor = max(1, policy.min_verified)
    have = sum(1 for b in verified if b.name in decided)
    for b in verified:
        if have >= floor:
            break
        if b.name not in decided:
            keep(b, "min_verified", f"keeps at least {floor} verified backup(s)")
            have += 1
    out = []
    for b in views:
        if b.name in decided:
            out.append(decided[b.name])
        else:
            pol = policy.for_class(b.backup_class)
            out.append(
                Decision(
                    name=b.name,
                    keep=False,
                    rule="expired",
                    detail=f"no rule keeps it ({b.backup_class} backups: {pol.describe()})",
                )
            )
    return out


def _apply_class(
    pol: ClassPolicy,
    cls: str,
    members: list[BackupView],
    now: datetime,
    keep: Callable[[BackupView, str, str], None],
) -> None:
    """`members` are newest first."""
    if pol.forever:
        for b in members:
            keep(b, "forever", f"{cls} backups are kept until a person deletes them")
        return
    if pol.keep_within_days is not None:
        limit = timedelta(days=pol.keep_within_days)
        for b in members:
            if now - b.started_at <= limit:
                keep(b, "keep_within", f"younger than {pol.keep_within_days:g} days")
    for b in members[: pol.keep_last]:
        keep(b, "keep_last", f"one of the last {pol.keep_last} {cls} backups")
    for period, count in pol.period_counts().items():
        if count <= 0:
            continue
        seen: list[tuple[int, ...]] = []
        for b in members:
            key = PERIODS[period](b.started_at)
            if key in seen:
                continue
            seen.append(key)
            if len(seen) > count:
                break
            keep(b, f"keep_{period}", f"newest {cls} backup of its {_unit(period)}")


def _unit(period: str) -> str:
    return {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"}[period]


def policy_from_config(doc: Mapping[str, object]) -> Policy:
    """The `retention` object of backup-config.json -> Policy. Raises ValueError on nonsense."""
    base = Policy()
    classes = dict(base.classes)
    known = {"min_verified", *CLASSES}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    for cls in CLASSES:
        raw = doc.get(cls)
        if raw is None:
            continue
        if not isinstance(raw, Mapping):
            raise ValueError(f"{cls} must be an object")
        classes[cls] = _class_policy(cls, raw)
    min_verified = doc.get("min_verified", base.min_verified)
    if not isinstance(min_verified, int) or isinstance(min_verified, bool) or min_verified < 1:
        raise ValueError(f"min_verified must be a whole number >= 1, got {min_verified!r}")
    return Policy(classes=classes, min_verified=min_verified)


def _class_policy(cls: str, raw: Mapping[str, object]) -> ClassPolicy:
    fields = {
        "forever",
        "keep_within_days",
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
    }
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ValueError(f"{cls}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key == "forever":
            if not isinstance(value, bool):
                raise ValueError(f"{cls}.forever must be true or false")
        elif key == "keep_within_days":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ValueError(f"{cls}.keep_within_days must be a number >= 0 or null")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{cls}.{key} must be a whole number >= 0")
        values[key] = value
    pol = ClassPolicy(**values)  # type: ignore[arg-type]
    has_rule = (
        pol.keep_within_days is not None or pol.keep_last or any(pol.period_counts().values())
    )
    if not pol.forever and not has_rule:
        raise ValueError(
            f"{cls}: no rule keeps anything; give keep_within_days/keep_last/keep_daily/... "
            'or "forever": true'
        )
    return pol
