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
from operator import attrgetter

CLASSES = ("auto", "manual", "emergency", "pre")
PERIODS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}
_NEWEST_KEY = attrgetter("started_at", "name")  # sorted(reverse=True): newest first


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
    """One decision per backup, newest first; independent of the input's order.

    Linear after the sort: one pass groups the backups by class, a Decision is made only for a
    backup not yet decided, and each class's policy is described once.
    """
    views = sorted(
        (b for b in backups if b.status in ("running", "completed")), key=_NEWEST_KEY, reverse=True
    )
    decided: dict[str, Decision] = {}

    def keep(b: BackupView, rule: str, detail: str) -> None:
        if b.name not in decided:
            decided[b.name] = Decision(name=b.name, keep=True, rule=rule, detail=detail)

    by_class: dict[str, list[BackupView]] = {}
    verified: list[BackupView] = []
    for b in views:
        if b.status == "running":
            keep(b, "in-flight", "the backup is still being written")
            continue
        if b.pinned:
            keep(b, "pinned", f"pinned: {b.pin_reason or 'no reason given'}")
        by_class.setdefault(b.backup_class, []).append(b)
        if b.verified:
            verified.append(b)
    if verified:
        keep(verified[0], "newest-verified", "the newest verified backup is always kept")
    for cls in sorted(by_class):
        _apply_class(policy.for_class(cls), cls, by_class[cls], now, keep)
    _keep_min_verified(max(1, policy.min_verified), verified, decided, keep)
    return _decisions(policy, views, decided)


def _keep_min_verified(
    floor: int,
    verified: list[BackupView],
    decided: Mapping[str, Decision],
    keep: Callable[[BackupView, str, str], None],
) -> None:
    """`verified` are newest first; the newest undecided ones are kept up to the floor."""
    have = sum(1 for b in verified if b.name in decided)
    for b in verified:
        if have >= floor:
            break
        if b.name not in decided:
            keep(b, "min_verified", f"keeps at least {floor} verified backup(s)")
            have += 1


def _decisions(
    policy: Policy, views: list[BackupView], decided: Mapping[str, Decision]
) -> list[Decision]:
    """The kept ones as decided; every other one expired, with its class's policy described."""
    expired: dict[str, str] = {}
    out = []
    for b in views:
        d = decided.get(b.name)
        if d is None:
            cls = b.backup_class
            detail = expired.get(cls)
            if detail is None:
                detail = f"no rule keeps it ({cls} backups: {policy.for_class(cls).describe()})"
                expired[cls] = detail
            d = Decision(name=b.name, keep=False, rule="expired", detail=detail)
        out.append(d)
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
        detail = f"{cls} backups are kept until a person deletes them"
        for b in members:
            keep(b, "forever", detail)
        return
    if pol.keep_within_days is not None:
        limit = timedelta(days=pol.keep_within_days)
        detail = f"younger than {pol.keep_within_days:g} days"
        for b in members:
            if now - b.started_at > limit:
                break  # newest first: every later one is older still
            keep(b, "keep_within", detail)
    detail = f"one of the last {pol.keep_last} {cls} backups"
    for b in members[: pol.keep_last]:
        keep(b, "keep_last", detail)
    for period, count in pol.period_counts().items():
        if count > 0:
            _keep_periods(period, count, cls, members, keep)


def _keep_periods(
    period: str,
    count: int,
    cls: str,
    members: list[BackupView],
    keep: Callable[[BackupView, str, str], None],
) -> None:
    """The newest member of each of the `count` most recent periods that have one."""
    key_of = PERIODS[period]
    detail = f"newest {cls} backup of its {_unit(period)}"
    seen: set[tuple[int, ...]] = set()
    for b in members:
        key = key_of(b.started_at)
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.add(key)
        keep(b, f"keep_{period}", detail)


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
