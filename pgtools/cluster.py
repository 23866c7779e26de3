"""Throwaway PostgreSQL clusters: initdb + pg_ctl in a temp dir, a free port, trust auth.

Used by `dumpledger demo` and by the test suite. As root, the server runs as the `postgres`
OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgtools.errors import PgError

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with "
    "`apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql@15`, "
    "or set PG_BINDIR"
)


class PgBinariesMissing(PgError):
    """No initdb/pg_ctl/postgres to start a throwaway cluster with."""


def server_bindir_candidates() -> list[Path]:
    dirs: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        dirs.append(Path(os.environ["PG_BINDIR"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: _major_of(p.parent.name),
        reverse=True,
    )
    dirs.extend(versions)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        dirs.append(Path(pg_ctl).resolve().parent)
    return dirs


def _major_of(text: str) -> int:
    return int(text) if text.isdigit() else 0


def find_server_bindir(candidates: Iterable[Path] | None = None) -> Path:
    for d in server_bindir_candidates() if candidates is None else candidates:
        if all((d / prog).is_file() for prog in SERVER_PROGRAMS):
            return d
    raise PgBinariesMissing(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    bindir: Path
    base: Path
    port: int
    superuser: str

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    @classmethod
    def create(cls, superuser: str = "postgres", *, bindir: Path | None = None) -> Cluster:
        bindir = bindir or find_server_bindir()
        base = Path(tempfile.mkdtemp(prefix="dumpledger-pg-"))
        cluster = cls(bindir=bindir, base=base, port=free_port(), superuser=superuser)
        try:
            cluster._init()
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return cluster

    def _init(self) -> None:
        self.socket_dir.mkdir()
        _hand_to_server_user(self.base)
        self._server_cmd(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            self.superuser,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "60",
            "shared_buffers": "32MB",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _server_cmd(self, program: str, *args: str) -> str:
        argv = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise PgError(f"{program} failed: {(done.stderr or done.stdout).strip()[-800:]}")
        return done.stdout

    def start(self) -> Cluster:
        try:
            self._server_cmd(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            )
        except PgError as exc:
            tail = self.logfile.read_text(errors="replace")[-1500:] if self.logfile.exists() else ""
            raise PgError(f"{exc}\n{tail}") from None
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._server_cmd("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def env(self, user: str | None = None, dbname: str = "postgres") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST=str(self.socket_dir),
            PGPORT=str(self.port),
            PGUSER=user or self.superuser,
            PGDATABASE=dbname,
        )
        return env

    def psql(
        self,
        sql: str,
        dbname: str = "postgres",
        user: str | None = None,
        *,
        on_error_stop: bool = True,
    ) -> str:
        """Run SQL (from stdin) with the real psql; raise with psql's stderr if it fails."""
        argv = [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            f"ON_ERROR_STOP={1 if on_error_stop else 0}",
        ]
        done = subprocess.run(
            argv, input=sql, env=self.env(user, dbname), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise PgError(f"psql failed: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def create_database(self, name: str, owner: str | None = None) -> None:
        owner_sql = f' OWNER "{owner}"' if owner else ""
        self.psql(f'CREATE DATABASE "{name}"{owner_sql}')

    def connect_kwargs(self, dbname: str = "postgres", user: str | None = None) -> dict[str, Any]:
        return {
            "host": str(self.socket_dir),
            "port": self.port,
            "user": user or self.superuser,
            "dbname": dbname,
        }

    def enable_password_auth(self, user: str, password: str) -> None:
        """TCP from 127.0.0.1 needs scram-sha-256; the Unix socket stays trust."""
        quoted = password.replace("'", "''")
        self.psql(
            f"SET password_encryption = 'scram-sha-256'; ALTER ROLE \"{user}\" PASSWORD '{quoted}'"
        )
        hba = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        (self.datadir / "pg_hba.conf").write_text(hba)
        self._server_cmd("pg_ctl", "-D", str(self.datadir), "reload")
        self.psql("SELECT pg_reload_conf()")


def _hand_to_server_user(path: Path) -> None:
    """As root, give the tree to `postgres`: PostgreSQL will not run as root."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise PgError(
            "running as root needs a `postgres` OS user to run the server; "
            "create it (useradd --system postgres) or run as another user"
        ) from None
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def supabase_platform_sql() -> str:
    """A fresh Supabase-like instance: roles, extensions, auth and storage, no project yet
    (run as the bootstrap superuser `supabase_admin`)."""
    return (Path(__file__).parent / "sql" / "supabase_platform.sql").read_text(encoding="utf-8")


def supabase_fixture_sql() -> str:
    """A Supabase-like project: the platform, then the app's schema and sample data (run as
    the bootstrap superuser `supabase_admin`)."""
    app = (Path(__file__).parent / "sql" / "supabase_like.sql").read_text(encoding="utf-8")
    return supabase_platform_sql() + "\n" + app
