"""Real age keys for tests: a fresh X25519 identity written to a 0600 identity file."""

from __future__ import annotations

import os
from pathlib import Path

import pyrage

from store import AgeKeys


def write_identity(path: Path) -> str:
    """A new identity in `path` (0600, as age-keygen writes it); returns its recipient."""
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# created: by the tests\n# public key: {recipient}\n{identity}\n")
    return recipient


def age_keys(directory: Path, name: str = "age.key") -> AgeKeys:
    path = directory / name
    recipient = write_identity(path)
    return AgeKeys(recipients=(recipient,), identity_file=path)
