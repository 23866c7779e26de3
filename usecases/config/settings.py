"""Settings: defaults < backups/backup-config.json < .env < environment < flags.

Each layer is read into a nested dict shaped like backup-config.json, the layers are merged, and
the result is validated once by the pydantic schema in ``usecases.config.file``, so a wrong value
is named with its field, its value and the layer it came from. ``explain`` tells where each
effective value came from (``dumpledger config show``).

Defaults match Supabase local: 127.0.0.1:5432, postgres/postgres, database postgres.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.retention import Policy, policy_from_config
from pgtools.target import DbTarget
from usecases.config import cache as configcache
from usecases.config.sections import (
    DEFAULT_SCHEDULE,
    Encryption,
    Health,
    Notifications,
    OffsiteTarget,
    Slot,
)
from usecases.errors import BadInput

if TYPE_CHECKING:
    from pydantic import ValidationError

    from usecases.config.file import ConfigFile

CODECS = ("gzip", "zstd")
FLAG_CHOICES: dict[str, tuple[str, ...]] = {"codec": CODECS}  # flags that override a setting
DEFAULT_PASSWORD = "postgres"  # Supabase local's; a real project sets SUPABASE_DB_PASSWORD
MASK = "********"

# Environment variables (and .env keys) with their own names -> path in backup-config.json.
# Any other setting: DUMPLEDGER_<SECTION>__<KEY>, e.g. DUMPLEDGER_HEALTH__RPO_HOURS=4.
NAMED_VARIABLES: dict[str, tuple[str, ...]] = {
    "SUPABASE_DB_HOST": ("database", "host"),
    "SUPABASE_DB_PORT": ("database", "port"),
    "SUPABASE_DB_USER": ("database", "user"),
    "SUPABASE_DB_NAME": ("database", "name"),
    "SUPABASE_DB_PASSWORD": ("database", "password"),
    "DUMPLEDGER_CODEC": ("compression", "codec"),
    "DUMPLEDGER_CATALOG_URL": ("catalog_url",),
    "DUMPLEDGER_PG_BINDIR": ("pg_bindir",),
    "DUMPLEDGER_STORE": ("store", "path"),
}
NESTED_PREFIX = "DUMPLEDGER_"
# DUMPLEDGER_* variables that are not settings of the file.
NOT_SETTINGS = {"DUMPLEDGER_BACKUP_DIR", "DUMPLEDGER_VIA", "DUMPLEDGER_CACHE_DIR"}
SECRET_PATHS = {("database", "password")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    backup_dir: Path
    database: DbTarget = field(default_factory=DbTarget)
    codec: str = "gzip"
    level: int | None = None
    threads: int = 2
    catalog_url: str = ""
    role_passwords: bool | None = None  # None: auto (kept when the role can read them)
    lock_wait_timeout: float = 300.0  # seconds: database.lock_wait_timeout_seconds
    pg_bindir: str | None = None
    retention: Policy = field(default_factory=Policy)
    store_path: Path | None = None
    repack_threshold: float = 0.3  # store.repack_threshold
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

    @property
    def database_dir(self) -> Path:
        return self.backup_dir / "database"

    @property
    def logs_dir(self) -> Path:
        return self.backup_dir / "logs"

    def effective_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.backup_dir / 'catalog.db'}"

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


@dataclass(frozen=True, slots=True)
class Layer:
    """One source of settings: nested values shaped like the file, and where each came from."""

    name: str  # backup-config.json, .env, environment
    values: dict[str, Any]
    origins: dict[tuple[str, ...], str]  # path -> variable name (or the file)


@dataclass(frozen=True, slots=True)
class Sources:
    backup_dir: Path
    backup_dir_origin: str
    layers: tuple[Layer, ...]  # lowest precedence first

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for layer in self.layers:
            _deep_merge(out, layer.values)
        return out

    def origin_of(self, path: tuple[str, ...]) -> str:
        for layer in reversed(self.layers):
            for known, where in layer.origins.items():
                n = min(len(known), len(path))
                if path[:n] == known[:n]:
                    return where if where == layer.name else f"{layer.name} ({where})"
        return "default"


def read_sources(
    *, backup_dir: Path | None, environ: Mapping[str, str] | None, cwd: Path | None
) -> Sources:
    env_os = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    dotenv = read_dotenv(cwd / ".env")
    if backup_dir is not None:
        root, root_origin = backup_dir, "flag (--backup-dir)"
    elif "DUMPLEDGER_BACKUP_DIR" in env_os:
        root, root_origin = Path(env_os["DUMPLEDGER_BACKUP_DIR"]), "environment"
    elif "DUMPLEDGER_BACKUP_DIR" in dotenv:
        root, root_origin = Path(dotenv["DUMPLEDGER_BACKUP_DIR"]), ".env"
    else:
        root, root_origin = cwd / "backups", "default"
    root = root if root.is_absolute() else cwd / root
    file_values = _strip_comments(read_config_file(root / "backup-config.json"))
    file_layer = Layer(
        "backup-config.json",
        file_values,
        {path: "backup-config.json" for path in _paths(file_values)},
    )
    return Sources(
        backup_dir=root,
        backup_dir_origin=root_origin,
        layers=(
            file_layer,
            _variables_layer(".env", dotenv),
            _variables_layer("environment", env_os),
        ),
    )


def load_settings(
    *,
    backup_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    sources = read_sources(backup_dir=backup_dir, environ=environ, cwd=cwd)
    env = os.environ if environ is None else environ
    settings = settings_from(sources, checked_document(sources, configcache.cache_dir(env)))
    for key, value in (overrides or {}).items():  # flags: past the file's validation, so here
        allowed = FLAG_CHOICES.get(key)
        if allowed is not None and value not in allowed:
            raise BadInput(f"--{key} {value!r}: choose one of {', '.join(allowed)}")
    return replace(settings, **dict(overrides or {}))


def checked_document(sources: Sources, cache: Path | None) -> dict[str, Any]:
    """The merged layers as pydantic validated them (JSON types, defaults filled in).

    A document pydantic accepted before, with the same schema, comes from the cache in
    ``cache`` (see usecases.config.cache) without importing pydantic; None: always validate."""
    merged = sources.merged()
    try:
        key = configcache.key_of(merged)
    except OSError:  # the schema's source is not readable (a frozen install): no cache
        return document(validate(sources))
    doc = configcache.lookup(cache, key, merged)
    if doc is None:
        doc = document(validate(sources))
        configcache.remember(cache, key, doc, merged)
    return doc


def document(checked: ConfigFile) -> dict[str, Any]:
    return checked.model_dump(mode="json")


def validate(sources: Sources) -> ConfigFile:
    """The merged layers, checked; BadInput with one clause per wrong field (and its layer)."""
    from pydantic import ValidationError  # here: a cached document needs no pydantic

    from usecases.config.file import ConfigFile

    try:
        return ConfigFile.model_validate(sources.merged())
    except ValidationError as exc:
        lines = validation_errors(sources, exc)
        raise BadInput("; ".join(lines) + "; see `dumpledger config validate`") from None


def validation_errors(sources: Sources, exc: ValidationError) -> list[str]:
    from usecases.config.file import errors_of

    lines = []
    for line, err in zip(errors_of(exc, ""), exc.errors(), strict=True):
        path = tuple(str(p) for p in err["loc"])
        lines.append(f"{sources.origin_of(path)}{line}")
    return lines


def _role_passwords(value: bool | str) -> bool | None:
    return None if value == "auto" else bool(value)


def settings_from(sources: Sources, doc: Mapping[str, Any]) -> Settings:
    """Settings from a validated document (``checked_document``, or ``document(validate(..))``)."""
    root = sources.backup_dir
    db, comp, notes = doc["database"], doc["compression"], doc["notifications"]
    target = DbTarget(
        host=db["host"],
        port=db["port"],
        user=db["user"],
        dbname=db["name"],
        password=DEFAULT_PASSWORD if db["password"] is None else db["password"],
    )
    try:
        retention = policy_from_config(doc["retention"])
    except ValueError as exc:
        raise BadInput(
            f"{sources.origin_of(('retention',))}: retention: {exc}; "
            "see `dumpledger config validate`"
        ) from None
    return Settings(
        backup_dir=root,
        database=target,
        codec=comp["codec"],
        level=comp["level"],
        threads=comp["threads"],
        catalog_url=doc["catalog_url"] or "",
        role_passwords=_role_passwords(db["include_role_passwords"]),
        lock_wait_timeout=db["lock_wait_timeout_seconds"],
        pg_bindir=doc["pg_bindir"],
        retention=retention,
        store_path=_under(root, doc["store"]["path"]),
        repack_threshold=doc["store"]["repack_threshold"],
        schedule=tuple(Slot(backup_type=k, time=v) for k, v in doc["schedule"].items()),
        notifications=Notifications(
            **{k: v for k, v in notes.items() if k != "apprise_urls"},
            apprise_urls=tuple(notes["apprise_urls"]),
        ),
        health=Health(**doc["health"]),
        offsite=tuple(
            OffsiteTarget(name=n, url=t["url"], endpoint_url=t["endpoint_url"], region=t["region"])
            for n, t in doc["offsite"].items()
        ),
        encryption=Encryption(
            recipients=tuple(doc["encryption"]["recipients"]),
            identity_file=_under(root, doc["encryption"]["identity_file"]),
        ),
        warnings=_warnings(sources),
    )


def explain(sources: Sources, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every effective setting: path, value (secrets masked) and where it came from."""
    rows = [
        {
            "setting": "backup_dir",
            "value": str(sources.backup_dir),
            "source": sources.backup_dir_origin,
        }
    ]
    for path, value in _leaves(doc):
        if path in SECRET_PATHS or (path[:2] == ("notifications", "apprise_urls") and value):
            value = MASK if value is not None else None
        if path == ("database", "password") and value is None:
            value = f"{MASK} (Supabase local default)"
        if isinstance(value, str):  # a password inside a URL (DUMPLEDGER_CATALOG_URL, ...)
            value = mask_url_passwords(value)
        rows.append({"setting": ".".join(path), "value": value, "source": sources.origin_of(path)})
    return rows


URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S*)")


def mask_url_passwords(text: str) -> str:
    """`scheme://user:secret@host/...` -> `scheme://user:********@host/...`, for every URL in
    `text`. The user info ends at the last `@` before any query or fragment (a password may
    hold an unencoded `@`); masking too much is harmless, too little is not."""

    def one(match: re.Match[str]) -> str:
        scheme, rest = match.group(1), match.group(2)
        head = re.split(r"[?#]", rest, maxsplit=1)[0]
        at = head.rfind("@")
        if at < 0 or ":" not in head[:at]:
            return match.group(0)
        user = head[:at].split(":", 1)[0]
        return f"{scheme}{user}:{MASK}{rest[at:]}"

    return URL_RE.sub(one, text)


def _warnings(sources: Sources) -> tuple[str, ...]:
    file_layer = sources.layers[0]
    if ("database", "password") in set(_paths(file_layer.values)):
        return (
            "backup-config.json holds the database password; prefer SUPABASE_DB_PASSWORD in the "
            "environment or .env, and keep the file private (chmod 600)",
        )
    return ()


def _variables_layer(name: str, variables: Mapping[str, str]) -> Layer:
    values: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for var, raw in variables.items():
        path = NAMED_VARIABLES.get(var)
        if path is None and var.startswith(NESTED_PREFIX) and var not in NOT_SETTINGS:
            rest = var.removeprefix(NESTED_PREFIX).lower()
            path = tuple(rest.split("__")) if "__" in rest else None
        if path is None:
            continue
        _set(values, path, _parse_value(raw))
        origins[path] = var
    return Layer(name, values, origins)


def _parse_value(raw: str) -> Any:
    """Lists and objects as JSON (DUMPLEDGER_NOTIFICATIONS__APPRISE_URLS='["json://..."]')."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as python-dotenv reads them (comments, `export`, quotes)."""
    if not path.is_file():
        return {}
    from dotenv.parser import parse_stream  # here: most runs have no .env to read

    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(not_utf8(path, exc)) from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.strip()[:40]
            raise BadInput(f"{path}:{binding.original.line}: expected KEY=VALUE, got {line!r}")
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


def not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    return (
        f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
        "save it as UTF-8"
    )


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
    except UnicodeDecodeError as exc:
        raise BadInput(not_utf8(path, exc)) from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} must hold a JSON object")
    return data


def _strip_comments(value: Any) -> Any:
    """Keys "//" (or starting with "//") are comments, as `config init` writes them."""
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not str(k).startswith("//")}
    return value


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = tree.setdefault(key, {})
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    tree[path[-1]] = value


def _deep_merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


def _paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _leaves(
    tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping) and value and key not in ("retention",):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _under(root: Path, value: str | None) -> Path | None:
    """Relative paths in the config are relative to the backup directory; ~ expands."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path
