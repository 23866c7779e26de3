"""Configurations pydantic has already accepted, so that a command whose settings did not change
since the last run starts without importing pydantic (about 0.2 s of every command's start-up on
a small machine; `list` must answer in under 0.3 s).

The key is the SHA-256 of the schema (the source of ``usecases/config/file.py`` and
``usecases/config/sections.py``, and the installed pydantic's version file) and of the merged
layers.
Values that may hold a secret (the database password, the catalog URL, Apprise URLs) enter the
key only as their shape (``"str"``, ``None``, a list of shapes): whether they are valid depends
on nothing else, and the file must not become an oracle for guessing a password. The value is
the validated document (``model_dump(mode="json")``) with those fields blanked; ``lookup`` puts
them back from the layers.

The file is ``$DUMPLEDGER_CACHE_DIR/settings.json`` (default ``$XDG_CACHE_HOME/dumpledger``, or
``~/.cache/dumpledger``), 0600 in a 0700 directory. It is only ever an optimisation: any problem
reading it is a miss, any problem writing it is ignored, and `config validate`/`config show`
always run pydantic.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

FORMAT = 1
KEEP = 8  # entries: a few backup directories or environments per user
CACHE_FILE = "settings.json"
SCHEMA_SOURCES = ("file.py", "sections.py")
# Paths whose value may be a secret: kept out of the file, even hashed.
NOT_CACHED: tuple[tuple[str, ...], ...] = (
    ("database", "password"),
    ("catalog_url",),
    ("notifications", "apprise_urls"),
)


def cache_dir(environ: Mapping[str, str]) -> Path | None:
    if environ.get("DUMPLEDGER_CACHE_DIR"):
        return Path(environ["DUMPLEDGER_CACHE_DIR"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "dumpledger"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".cache" / "dumpledger"
    return None


def key_of(merged: Mapping[str, Any]) -> str:
    """What pydantic's verdict on ``merged`` depends on, hashed; secrets only by shape."""
    shaped = copy.deepcopy(dict(merged))
    for path in NOT_CACHED:
        found, value = _get(shaped, path)
        if found:
            _put(shaped, path, _shape(value))
    digest = hashlib.sha256()
    digest.update(_schema_fingerprint())
    digest.update(json.dumps(shaped, sort_keys=True, default=repr).encode())
    return digest.hexdigest()


def lookup(directory: Path | None, key: str, merged: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated document for ``key``, secrets restored from ``merged``; None on a miss."""
    if directory is None:
        return None
    try:
        data = json.loads((directory / CACHE_FILE).read_text(encoding="utf-8"))
        doc = data["entries"][key] if data.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(doc, dict):
        return None
    for path in NOT_CACHED:
        found, value = _get(merged, path)
        if found:
            _put(doc, path, copy.deepcopy(value))
    return doc


def remember(
    directory: Path | None, key: str, doc: Mapping[str, Any], merged: Mapping[str, Any]
) -> None:
    """Record that ``key`` validated to ``doc`` (secrets blanked); never fails the command."""
    if directory is None:
        return
    kept = copy.deepcopy(dict(doc))
    for secret in NOT_CACHED:
        if _get(merged, secret)[0]:
            _put(kept, secret, None)
    path = directory / CACHE_FILE
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["entries"] if data.get("format") == FORMAT else {}
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            entries = {}
        entries.pop(key, None)
        entries[key] = kept
        entries = dict(list(entries.items())[-KEEP:])
        tmp = directory / f".{CACHE_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"format": FORMAT, "entries": entries}, out)
        os.replace(tmp, path)
    except OSError:
        return


def _schema_fingerprint() -> bytes:
    here = Path(__file__).parent
    digest = hashlib.sha256(str(FORMAT).encode())
    for name in SCHEMA_SOURCES:
        digest.update((here / name).read_bytes())
    spec = find_spec("pydantic")
    locations = spec.submodule_search_locations if spec else None
    if locations:
        digest.update((Path(next(iter(locations))) / "version.py").read_bytes())
    return digest.digest()


def _shape(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return
        node = child
    node[path[-1]] = value
