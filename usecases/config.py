"""Settings: defaults < backups/backup-config.json < .env < environment < flags.

Defaults match Supabase local: 127.0.0.1:5432, postgres/postgres, database postgres.
The password is read from the environment or .env only, never written anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from catalog.retention import Policy, policy_from_config
from pgtools.target import DbTarget
from usecases.configfile import ConfigFile, errors_of
from usecases.errors import BadInput
from usecases.sections import (
    DEFAULT_SCHEDULE,
    Encryption,
    Health,
    Notifications,
    OffsiteTarget,
    Slot,
)

CODECS = ("gzip", "zstd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    backup_dir: Path
    database: DbTarget = field(default_factory=DbTarget)
    codec: str = "gzip"
    level: int | None = None
    threads: int = 2
    catalog_url: str = ""
    role_passwords: bool = False
    pg_bindir: str | None = None
    retention: Policy = field(default_factory=Policy)
    store_path: Path | None = None
    schedule: tuple[Slot, ...] = DEFAULT_SCHEDULE
    notifications: Notifications = field(default_factory=Notifications)
    health: Health = field(default_factory=Health)
    offsite: tuple[OffsiteTarget, ...] = ()
    encryption: Encryption = field(default_factory=Encryption)
    warnings: tuple[str, ...] = ()

    @property
    def config_file(self) -> Path:
        return self.backup_dir / "backup-config.json"

    @property
    def store_dir(self) -> Path:
        return self.store_path or self.backup_dir / "store"

    def offsite_target(self, name: str | None) -> OffsiteTarget:
        """The named target, or the only one; BadInput naming the choices otherwise."""
        if not self.offsite:
            raise BadInput(
                "no offsite target configured; add one to backup-config.json: "
                '"offsite": {"drive": {"url": "/media/backup-drive/dumpledger"}}'
            )
        names = ", ".join(t.name for t in self.offsite)
        if name is None:
            if len(self.offsite) > 1:
                raise BadInput(f"several offsite targets ({names}); name one")
            return self.offsite[0]
        for target in self.offsite:
            if target.name == name:
                return target
        raise BadInput(f"no offsite target {name!r}; configured: {names}")

    @property
    def database_dir(self) -> Path:
        return self.backup_dir / "database"

    @property
    def logs_dir(self) -> Path:
        return self.backup_dir / "logs"

    def effective_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.backup_dir / 'catalog.db'}"


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional 'export ', optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            raise BadInput(f"{path}:{lineno}: expected KEY=VALUE, got {raw.strip()[:40]!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
            "fix it or move it away to use the defaults"
        ) from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} must hold a JSON object")
    return data


def load_settings(
    *,
    backup_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    env_os = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    dotenv = read_dotenv(cwd / ".env")
    env = {**dotenv, **env_os}
    root = backup_dir or Path(env.get("DUMPLEDGER_BACKUP_DIR", cwd / "backups"))
    root = root if root.is_absolute() else cwd / root
    file_cfg = read_config_file(root / "backup-config.json")
    settings = _from_file(Settings(backup_dir=root), file_cfg)
    settings = _from_env(settings, env)
    return replace(settings, **dict(overrides or {}))


def parse_config_file(cfg: dict[str, Any], source: str = "backup-config.json") -> ConfigFile:
    try:
        return ConfigFile.model_validate(cfg)
    except ValidationError as exc:
        raise BadInput("; ".join(errors_of(exc, source))) from None


def _from_file(s: Settings, cfg: dict[str, Any]) -> Settings:
    doc = parse_config_file(cfg)
    db, comp = doc.database, doc.compression
    target = replace(
        s.database,
        host=db.host,
        port=db.port,
        user=db.user,
        dbname=db.name,
        password=db.password,
    )
    try:
        retention = policy_from_config(doc.retention)
    except ValueError as exc:
        raise BadInput(f"backup-config.json: retention: {exc}") from None
    warnings: tuple[str, ...] = ()
    if db.password is not None:
        warnings = (
            "backup-config.json holds the database password; prefer SUPABASE_DB_PASSWORD "
            "in the environment or .env, and keep the file private (0600)",
        )
    notes = doc.notifications
    return replace(
        s,
        database=target,
        codec=comp.codec,
        level=comp.level,
        threads=comp.threads,
        catalog_url=doc.catalog_url or "",
        role_passwords=db.include_role_passwords,
        retention=retention,
        store_path=_under(s.backup_dir, doc.store.path),
        schedule=tuple(Slot(backup_type=k, time=v) for k, v in doc.schedule.items()),
        notifications=Notifications(
            **notes.model_dump(exclude={"apprise_urls"}), apprise_urls=tuple(notes.apprise_urls)
        ),
        health=Health(**doc.health.model_dump()),
        offsite=tuple(
            OffsiteTarget(name=n, url=t.url, endpoint_url=t.endpoint_url, region=t.region)
            for n, t in doc.offsite.items()
        ),
        encryption=Encryption(
            recipients=tuple(doc.encryption.recipients),
            identity_file=_under(s.backup_dir, doc.encryption.identity_file),
        ),
        warnings=warnings,
    )


def _under(root: Path, path: Path | None) -> Path | None:
    """Relative paths in the config are relative to the backup directory; ~ expands."""
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else root / path


def _from_env(s: Settings, env: Mapping[str, str]) -> Settings:
    d = s.database
    target = replace(
        d,
        host=env.get("SUPABASE_DB_HOST", d.host),
        port=_int("SUPABASE_DB_PORT", env.get("SUPABASE_DB_PORT", d.port)),
        user=env.get("SUPABASE_DB_USER", d.user),
        dbname=env.get("SUPABASE_DB_NAME", d.dbname),
        password=env.get(
            "SUPABASE_DB_PASSWORD", d.password if d.password is not None else "postgres"
        ),
    )
    codec = env.get("DUMPLEDGER_CODEC", s.codec)
    if codec not in CODECS:
        raise BadInput(f"DUMPLEDGER_CODEC is {codec!r}; allowed: gzip, zstd")
    return replace(
        s,
        database=target,
        codec=codec,
        catalog_url=env.get("DUMPLEDGER_CATALOG_URL", s.catalog_url),
        pg_bindir=env.get("DUMPLEDGER_PG_BINDIR", s.pg_bindir),
    )


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a whole number, got {value!r}") from None
