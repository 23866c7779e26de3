"""age encryption of stored bytes (X25519 recipients, through pyrage), streaming.

pyrage's ``encrypt_io``/``decrypt_io`` pull from a reader in 8 KiB pieces and push age's
64 KiB STREAM chunks to a writer. A worker thread runs them between an iterator of chunks and
a bounded queue, so memory stays bounded whatever the blob's size. age output is not
deterministic: the same dump encrypted twice gives different bytes.

pyrage is the optional ``age`` extra; it is imported only when a blob is encrypted or decrypted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.errors import BlobCorrupted, DecryptionKeyError, StoreError
from store.pipeline import in_worker

AGE_MAGIC = b"age-encryption.org/v1"
_DEPTH = 16  # 64 KiB age chunks in flight between the worker and the consumer


def _pyrage() -> Any:
    try:
        import pyrage
    except ImportError:
        raise StoreError(
            "age encryption needs the pyrage package: pip install 'dumpledger[age]'"
        ) from None
    return pyrage


@dataclass(frozen=True, slots=True, kw_only=True)
class AgeKeys:
    """Who new blobs are encrypted to, and where the private key(s) to read them live."""

    recipients: tuple[str, ...] = ()
    identity_file: Path | None = None

    def parsed_recipients(self) -> list[Any]:
        if not self.recipients:
            raise StoreError(
                "no age recipient configured: add encryption.recipients to backup-config.json"
            )
        pyrage = _pyrage()
        out = []
        for key in self.recipients:
            try:
                out.append(pyrage.x25519.Recipient.from_str(key))
            except pyrage.RecipientError:
                raise StoreError(
                    f"{key[:16]}... is not an age X25519 recipient (age1...): "
                    "fix encryption.recipients in backup-config.json"
                ) from None
        return out

    def identities(self) -> list[Any]:
        """The X25519 identities of the identity file; DecryptionKeyError naming the file."""
        path = self.identity_file
        if path is None:
            raise DecryptionKeyError(
                "no age identity file configured: set encryption.identity_file in "
                "backup-config.json to the private key (AGE-SECRET-KEY-1...)"
            )
        try:
            mode = path.stat().st_mode
            if path.is_file() and mode & 0o077:  # as ssh does with private keys
                raise DecryptionKeyError(
                    f"age identity file {path} is readable by others (mode {mode & 0o777:o}): "
                    f"chmod 600 {path}"
                )
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DecryptionKeyError(
                f"age identity file {path} does not exist: restore it from where you keep the "
                "key, or fix encryption.identity_file"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text file"
            raise DecryptionKeyError(
                f"age identity file {path} cannot be read ({reason}): check its permissions"
            ) from None
        return _parse_identities(text, path)


def _parse_identities(text: str, path: Path) -> list[Any]:
    pyrage = _pyrage()
    found = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:  # never echo the line: it may be a secret
            raise DecryptionKeyError(
                f"age identity file {path} line {lineno} is not an age X25519 identity "
                "(AGE-SECRET-KEY-1...)"
            ) from None
    if not found:
        raise DecryptionKeyError(f"age identity file {path} holds no age identity")
    return found


def encrypt(chunks: Iterable[bytes], recipients: Sequence[Any]) -> Iterator[bytes]:
    """age-encrypt a stream of chunks to `recipients` (parsed), as a stream."""
    pyrage = _pyrage()
    return _pump(lambda r, w: pyrage.encrypt_io(r, w, list(recipients)), chunks)


def decrypt(
    chunks: Iterable[bytes], identities: Sequence[Any], *, what: str, key_file: Path | None
) -> Iterator[bytes]:
    """Decrypt an age stream; a key that does not fit is DecryptionKeyError, damage is
    BlobCorrupted (age authenticates every 64 KiB chunk and the end)."""
    pyrage = _pyrage()
    stream = _pump(lambda r, w: pyrage.decrypt_io(r, w, list(identities)), chunks)
    try:
        yield from stream
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise DecryptionKeyError(
                f"age identity file {key_file} holds no key that decrypts {what}"
            ) from None
        raise BlobCorrupted(f"{what}: cannot decrypt: {exc}") from None
    except OSError as exc:  # pyrage reports a damaged or truncated payload as an I/O error
        raise BlobCorrupted(f"{what}: cannot decrypt (damaged or truncated): {exc}") from None


class _Stopped(Exception):
    """The consumer went away; the worker unwinds."""


class _Reader:
    """A file-like view of an iterator of chunks, for pyrage to read from."""

    def __init__(self, chunks: Iterable[bytes], stop: threading.Event) -> None:
        self.chunks = iter(chunks)
        self.buf = memoryview(b"")
        self.stop = stop
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            if self.stop.is_set():
                raise _Stopped
            while not self.buf:
                nxt = next(self.chunks, None)
                if nxt is None:
                    return b""
                self.buf = memoryview(nxt)
            n = len(self.buf) if size is None or size < 0 else size
            out, self.buf = bytes(self.buf[:n]), self.buf[n:]
            return out
        except BaseException as exc:  # pyrage turns it into an I/O error: keep the original
            self.error = exc
            raise


class _Writer:
    """A file-like sink for pyrage: each write is handed to the consumer."""

    def __init__(self, emit: Callable[[bytes], bool]) -> None:
        self.emit = emit

    def write(self, data: bytes) -> int:
        if not self.emit(bytes(data)):
            raise _Stopped
        return len(data)

    def flush(self) -> None:
        pass


def _pump(run: Callable[[_Reader, _Writer], None], chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Run `run(reader, writer)` on a worker thread; yield what it writes, in order."""

    def produce(emit: Callable[[bytes], bool], stop: threading.Event) -> None:
        reader = _Reader(chunks, stop)
        try:
            run(reader, _Writer(emit))
        except BaseException as exc:  # pyrage wraps the reader's error: raise the original
            if reader.error is not None and reader.error is not exc:
                raise reader.error from None
            raise

    return in_worker(produce, depth=_DEPTH, name="age")
