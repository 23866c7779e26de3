"""Notifications: after automatic backups, failed verifications and drills, and `check`.

Channels are small ``Notifier``s: Apprise (any URL: Slack, Discord, e-mail, ntfy, a JSON
webhook ...; the optional ``notify`` extra), ``notify-send`` on a Linux desktop, and a macOS
dialog. A channel that fails never fails the operation: every attempt, good or bad, appends
NotificationSent (never the URL: it may hold a token) and goes to the run log when there is one.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from catalog.events import NotificationSent
from usecases.backup.runlog import append_line
from usecases.config.sections import Notifications
from usecases.context import App
from usecases.health.check import size_text

KINDS = (
    "backup_completed",
    "backup_failed",
    "retention_failed",
    "verify_failed",
    "drill_failed",
    "check",
)
URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
SOUNDS = {True: "Glass", False: "Basso"}  # as the old scripts' dialogs


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    kind: str  # one of KINDS
    about: str  # the backup name, or "check"
    ok: bool  # success (Glass) or failure (Basso)
    title: str
    body: str
    detail: str = ""  # recorded with the attempt (check: status and failing checks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    channel: str
    ok: bool
    reason: str | None = None


class NotifyFailed(Exception):
    """A channel could not deliver; the message says why, without any URL."""


class Notifier(Protocol):
    channel: str

    def send(self, msg: Message) -> None:
        """Deliver, or raise (any exception) saying why not."""


def wanted(prefs: Notifications, kind: str) -> bool:
    return {
        "backup_completed": prefs.on_success,
        "backup_failed": prefs.on_failure,
        "retention_failed": prefs.on_failure,
        "verify_failed": prefs.on_verify_failure,
        "drill_failed": prefs.on_drill_failure,
        "check": prefs.on_check,
    }[kind]


def scrub(text: str) -> str:
    """One line, with anything that looks like a URL (it may hold a token) replaced."""
    return URL_RE.sub("<url>", " ".join(text.split()))


# -- channels --------------------------------------------------------------------------------


class AppriseNotifier:
    channel = "apprise"

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = tuple(urls)

    def send(self, msg: Message) -> None:
        try:
            import apprise
        except ImportError:
            raise NotifyFailed(
                "apprise is not installed; pip install 'dumpledger[notify]'"
            ) from None
        sender = apprise.Apprise()
        for n, url in enumerate(self.urls, 1):
            if not sender.add(url):
                raise NotifyFailed(f"apprise URL #{n} is not a valid Apprise URL")
        kind = apprise.NotifyType.SUCCESS if msg.ok else apprise.NotifyType.FAILURE
        capture = apprise.LogCapture(level=apprise.logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
        with capture as captured:
            delivered = sender.notify(body=msg.body, title=msg.title, notify_type=kind)
        if not delivered:
            detail = scrub(captured.getvalue())[:300] or "no detail"
            raise NotifyFailed(f"apprise could not deliver to every URL: {detail}")


class NotifySendNotifier:
    """The Linux desktop: needs notify-send and a graphical session."""

    channel = "notify-send"

    def __init__(self, program: str) -> None:
        self.program = program

    def send(self, msg: Message) -> None:
        urgency = "normal" if msg.ok else "critical"
        done = subprocess.run(
            [self.program, "--app-name=dumpledger", f"--urgency={urgency}", msg.title, msg.body],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        if done.returncode != 0:
            raise NotifyFailed(f"notify-send exited {done.returncode}: {scrub(done.stderr)}")


def applescript_text(text: str) -> str:
    """A double-quoted AppleScript string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_dialog_script(msg: Message) -> str:
    """The AppleScript of the dialog: a sound (Glass on success, Basso on failure), then a
    dialog that stays until someone presses OK."""
    sound = f"/System/Library/Sounds/{SOUNDS[msg.ok]}.aiff"
    icon = "note" if msg.ok else "caution"
    return "\n".join(
        [
            f"do shell script {applescript_text(f'afplay {sound} >/dev/null 2>&1 &')}",
            f"display dialog {applescript_text(msg.body)} with title "
            f'{applescript_text(msg.title)} buttons {{"OK"}} default button "OK" '
            f"with icon {icon}",
        ]
    )


class MacDialogNotifier:
    """osascript, started and not waited for: the dialog waits for a person, the backup not.

    Running osascript is the one part no test here exercises (it needs macOS); the script it
    runs is built and tested by ``macos_dialog_script``.
    """

    channel = "macos-dialog"

    def send(self, msg: Message) -> None:
        subprocess.Popen(
            ["osascript", "-e", macos_dialog_script(msg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def desktop_notifier(
    system: str | None = None,
    environ: dict[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Notifier | None:
    """The desktop channel of this machine, or None when there is no desktop to notify."""
    system = system or platform.system()
    env = os.environ if environ is None else environ
    if system == "Darwin":
        return MacDialogNotifier() if which("osascript") else None
    program = which("notify-send")
    session = any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"))
    return NotifySendNotifier(program) if program and session else None


def channels(prefs: Notifications) -> list[Notifier]:
    out: list[Notifier] = []
    if prefs.desktop:
        desktop = desktop_notifier()
        if desktop is not None:
            out.append(desktop)
    if prefs.apprise_urls:
        out.append(AppriseNotifier(prefs.apprise_urls))
    return out


# -- sending ---------------------------------------------------------------------------------


def dispatch(
    app: App | None,
    msg: Message,
    notifiers: Sequence[Notifier],
    *,
    log_path: Path | None = None,
) -> list[Attempt]:
    """Send through every channel; record each attempt; never raise."""
    attempts = []
    for notifier in notifiers:
        try:
            notifier.send(msg)
            attempt = Attempt(channel=notifier.channel, ok=True)
        except Exception as exc:
            reason = scrub(str(exc)) or type(exc).__name__
            attempt = Attempt(channel=notifier.channel, ok=False, reason=reason)
        attempts.append(attempt)
        _record(app, msg, attempt, log_path)
    return attempts


def notify(app: App, msg: Message, *, log_path: Path | None = None) -> list[Attempt]:
    """Send `msg` if its kind is switched on in the settings."""
    prefs = app.settings.notifications
    if not wanted(prefs, msg.kind):
        return []
    return dispatch(app, msg, channels(prefs), log_path=log_path)


def _record(app: App | None, msg: Message, attempt: Attempt, log_path: Path | None) -> None:
    line = f"notification {msg.kind} about {msg.about} via {attempt.channel}: " + (
        "sent" if attempt.ok else f"FAILED: {attempt.reason}"
    )
    if log_path is not None:
        append_line(log_path, line)
    if app is None:
        return
    try:
        app.catalog.append(
            NotificationSent(
                kind=msg.kind,
                channel=attempt.channel,
                ok=attempt.ok,
                about=msg.about,
                reason=attempt.reason,
                detail=msg.detail,
            ),
            actor=app.actor,
        )
    except Exception as exc:  # a notification must not fail what it reports on
        if log_path is not None:
            append_line(log_path, f"could not record the notification: {scrub(str(exc))}")


# -- the messages ----------------------------------------------------------------------------


def backup_completed(name: str, stored_bytes: int, duration_seconds: float) -> Message:
    return Message(
        kind="backup_completed",
        about=name,
        ok=True,
        title=f"dumpledger: backup {name} completed",
        body=(
            f"Backup: {name}\nSize: {size_text(stored_bytes)} compressed\n"
            f"Status: completed and verified in {duration_seconds:.1f}s"
        ),
    )


def backup_failed(name: str, reason: str) -> Message:
    return Message(
        kind="backup_failed",
        about=name,
        ok=False,
        title=f"dumpledger: backup {name} FAILED",
        body=f"Backup: {name}\nStatus: FAILED\nReason: {scrub(reason)}",
    )


def retention_failed(name: str, reason: str) -> Message:
    """The backup is fine; what should have made room after it did not run to the end."""
    return Message(
        kind="retention_failed",
        about=name,
        ok=False,
        title=f"dumpledger: retention after backup {name} FAILED",
        body=(
            f"Backup: {name}\nStatus: completed and verified; retention FAILED\n"
            f"Reason: {scrub(reason)}\nOld backups stay until `dumpledger cleanup` succeeds."
        ),
    )


def verify_failed(name: str, problems: Sequence[str]) -> Message:
    return Message(
        kind="verify_failed",
        about=name,
        ok=False,
        title=f"dumpledger: backup {name} failed verification",
        body=f"Backup: {name}\nStatus: verification FAILED\n" + "\n".join(problems),
    )


def drill_failed(name: str, reason: str, problems: Sequence[str] = ()) -> Message:
    shown = "".join(f"\n{p}" for p in problems[:10])
    return Message(
        kind="drill_failed",
        about=name,
        ok=False,
        title=f"dumpledger: restore drill of {name} FAILED",
        body=f"Backup: {name}\nStatus: restore drill FAILED\nReason: {scrub(reason)}{shown}",
    )


def check_result(first_line: str, ok: bool, detail: str = "") -> Message:
    return Message(
        kind="check", about="check", ok=ok, title=first_line, body=first_line, detail=detail
    )
