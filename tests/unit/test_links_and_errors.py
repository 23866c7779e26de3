"""What a failed pg_dump said, kept whole; run and scheduler logs never written through a link."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pgtools.dump import DumpSpec, _check, error_text
from pgtools.errors import PgDumpFailed
from usecases.backup.runlog import RunLogUnavailable, open_run_log

COPY_FAILED = (
    b"pg_dump: warning: there are circular foreign-key constraints on this table:\n"
    b'pg_dump: error: Dumping the contents of table "orders" failed: PQgetResult() failed.\n'
    b"pg_dump: detail: Error message from server: ERROR:  could not read block 7 in file "
    b'"base/5/16384": read only 0 of 8192 bytes\n'
    b"pg_dump: detail: Command was: COPY public.orders (id, total) TO stdout;\n"
)


def test_a_failed_dump_keeps_its_error_line_and_every_detail() -> None:
    with pytest.raises(PgDumpFailed) as caught:
        _check(DumpSpec("full", "pg_dump", ()), 1, COPY_FAILED, b"")
    message = str(caught.value)
    assert 'Dumping the contents of table "orders" failed' in message
    assert "could not read block 7" in message
    assert message.endswith("detail: Command was: COPY public.orders (id, total) TO stdout;")
    assert "warning" not in message  # what came before the error is not the error


def test_error_text_falls_back_to_the_last_line_and_is_bounded() -> None:
    assert error_text(b"something odd\nfinal words\n") == "final words"
    assert error_text(b"") == ""
    long = b"pg_dump: error: " + b"x" * 5000
    assert len(error_text(long)) == 1000 and error_text(long).endswith("...")


def test_a_run_log_directory_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "logs").symlink_to(elsewhere)
    with pytest.raises(RunLogUnavailable, match="is a symbolic link; remove it"):
        open_run_log(tmp_path / "logs", "backup", datetime(2026, 11, 24, 12, 0))
    assert list(elsewhere.iterdir()) == []
    assert elsewhere.stat().st_mode & 0o777 == 0o755  # not chmod-ed through the link


def test_a_scheduler_log_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    from usecases.errors import UseCaseError
    from usecases.schedule.jobs import touch_private

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    log = tmp_path / "logs" / "cron_nightly.log"
    log.parent.mkdir()
    log.symlink_to(victim)
    with pytest.raises(UseCaseError, match="it is a symbolic link: remove it"):
        touch_private(log)
    assert victim.stat().st_mode & 0o777 == 0o644 and victim.read_text() == "precious\n"
    fresh = tmp_path / "logs" / "cron_noon.log"
    touch_private(fresh)
    assert fresh.stat().st_mode & 0o777 == 0o600
