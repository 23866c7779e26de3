"""Database coordinates. The password travels only in child processes' environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class DbTarget:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    dbname: str = "postgres"
    password: str | None = field(default=None, repr=False)
    connect_timeout: int = 10

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump & co: libpq reads these, so nothing goes on argv."""
        env = dict(base or {})
        for key in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGOPTIONS"):
            env.pop(key, None)
        env.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGDATABASE=self.dbname,
            PGCONNECT_TIMEOUT=str(self.connect_timeout),
            PGAPPNAME="dumpledger",
        )
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": self.connect_timeout,
            "application_name": "dumpledger",
        }
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def describe(self) -> dict[str, Any]:
        """What metadata and events may record: never the password."""
        return {"host": self.host, "port": self.port, "user": self.user, "name": self.dbname}

    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"
