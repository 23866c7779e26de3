"""Notification messages, channel choice, the macOS dialog's script, and failures recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from usecases.config.sections import Notifications
from usecases.config.settings import Settings
from usecases.context import App
from usecases.health import notify


def test_macos_dialog_on_success_plays_glass_and_shows_name_size_status() -> None:
    msg = notify.backup_completed("auto_nightly_20261124_235900", 3 * 1024 * 1024, 12.34)
    script = notify.macos_dialog_script(msg)
    assert "/System/Library/Sounds/Glass.aiff" in script
    assert "Basso" not in script
    assert "auto_nightly_20261124_235900" in script
    assert "Size: 3.0 MB compressed" in script
    assert "Status: completed and verified in 12.3s" in script
    assert 'buttons {"OK"} default button "OK"' in script  # must be acknowledged
    assert "with icon note" in script


def test_macos_dialog_on_failure_plays_basso_and_escapes_quotes() -> None:
    msg = notify.backup_failed("auto_noon_x", 'pg_dump: error: "quoted" \\ thing')
    script = notify.macos_dialog_script(msg)
    assert "/System/Library/Sounds/Basso.aiff" in script
    assert "Glass" not in script
    assert "Status: FAILED" in script
    assert '\\"quoted\\" \\\\ thing' in script
    assert "with icon caution" in script


def test_desktop_channel_depends_on_the_machine() -> None:
    def which(found: set[str]):  # type: ignore[no-untyped-def]
        return lambda name: f"/usr/bin/{name}" if name in found else None

    mac = notify.desktop_notifier("Darwin", {}, which({"osascript"}))
    assert mac is not None and mac.channel == "macos-dialog"
    linux = notify.desktop_notifier("Linux", {"DISPLAY": ":0"}, which({"notify-send"}))
    assert linux is not None and linux.channel == "notify-send"
    assert notify.desktop_notifier("Linux", {}, which({"notify-send"})) is None  # no session
    assert notify.desktop_notifier("Linux", {"DISPLAY": ":0"}, which(set())) is None


def test_switches_per_kind() -> None:
    prefs = Notifications(on_success=False, on_drill_failure=False)
    assert not notify.wanted(prefs, "backup_completed")
    assert notify.wanted(prefs, "backup_failed")
    assert not notify.wanted(prefs, "drill_failed")
    assert notify.wanted(prefs, "check")


def test_scrub_hides_urls() -> None:
    text = "failed to send to tgram://123:SECRET@chat/\n  retry"
    assert notify.scrub(text) == "failed to send to <url> retry"


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App.open(Settings(backup_dir=tmp_path / "backups"))


def test_missing_apprise_is_recorded_with_the_fix_and_never_raises(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # as when the extra is not installed
    log = tmp_path / "run.log"
    msg = notify.backup_completed("auto_nightly_x", 100, 1.0)
    attempts = notify.dispatch(
        app, msg, [notify.AppriseNotifier(["json://token@example.invalid/"])], log_path=log
    )
    assert [(a.channel, a.ok) for a in attempts] == [("apprise", False)]
    [rec] = app.catalog.events(types=["NotificationSent"])
    assert rec.subject == "auto_nightly_x"
    assert rec.payload["ok"] is False and rec.payload["kind"] == "backup_completed"
    assert "pip install 'dumpledger[notify]'" in rec.payload["reason"]
    assert "token" not in str(rec.payload)
    assert "via apprise: FAILED" in log.read_text()
    app.close()


def test_an_invalid_apprise_url_is_named_by_position_not_shown(app: App) -> None:
    [attempt] = notify.dispatch(
        app, notify.check_result("DUMPLEDGER WARNING - x", False), [notify.AppriseNotifier(["x"])]
    )
    assert not attempt.ok and attempt.reason == "apprise URL #1 is not a valid Apprise URL"
    app.close()
