"""A throwaway OS user whose crontab the cron tests may change: a real user's crontab is
never touched. Creating users needs root (CI and this container run the suite as root)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_crontab_user() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("crontab") or not shutil.which("useradd"):
        raise RuntimeError(
            "the cron tests need root, useradd and crontab (Debian: apt-get install cron)"
        )
    user = f"dl-cron-{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True
    )
    try:
        yield user
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], capture_output=True, check=False)
        subprocess.run(["userdel", user], check=True)


def crontab_of(user: str) -> str:
    done = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def set_crontab(user: str, text: str) -> None:
    subprocess.run(["crontab", "-u", user, "-"], input=text, text=True, check=True)
