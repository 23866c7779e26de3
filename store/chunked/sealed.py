"""Encrypted packs: with age recipients configured, a pack's whole file is one age file.

    age -d -i KEY PACK   gives the plain pack format (store/chunked/packs.py)

so a pack on disk or offsite shows nothing of the data but its size. A sealed pack is named,
as a plain one, by the SHA-256 of its file (here: the ciphertext), so it is re-hashed without
the key (a host with only the recipients backs up, deduplicates and checks its packs). Its
trailer is inside the encryption: indexing it (recover, an index rebuilt) needs the identity.

Reading a chunk needs the identity too: the pack is decrypted whole, once, into memory, and a
few decrypted packs are kept (OPEN_SEALED x ~16 MiB), so a read stays within the memory target.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from store import age
from store.age import AGE_MAGIC, AgeKeys, _pyrage
from store.errors import BlobCorrupted, DecryptionKeyError

OPEN_SEALED = 2  # decrypted packs kept in memory by one reader
_QUEUED = 64  # pieces waiting for the encryption of a pack being written
_HEAD = 128 << 10  # bytes of an age file read to tell whether a key fits it
_AGE_CHUNK = 64 << 10
_TAG = 16
_HEADER = 22 + 48 + 16 + 90  # version line, MAC line, nonce, a grease stanza's mean size
_STANZA = 98  # an X25519 recipient's stanza


class PackKeys:
    """The store's age keys, parsed once, as packs use them."""

    def __init__(self, keys: AgeKeys | None = None) -> None:
        self.keys = keys or AgeKeys()
        self._recipients: list[Any] | None = None
        self._identities: list[Any] | None = None

    @property
    def can_open(self) -> bool:
        return self.keys.identity_file is not None

    @property
    def can_seal(self) -> bool:
        return bool(self.keys.recipients)

    @property
    def keyset(self) -> str | None:
        """Names the set of recipients packs are sealed to now (public keys only): a chunk
        in a pack sealed to another set is stored again, so that a new backup never needs a
        key the configuration no longer names. None without recipients."""
        if not self.keys.recipients:
            return None
        joined = "\n".join(sorted(set(self.keys.recipients)))
        return hashlib.sha256(joined.encode()).hexdigest()[:32]

    def recipients(self) -> list[Any]:
        if self._recipients is None:
            self._recipients = self.keys.parsed_recipients()
        return self._recipients

    def identities(self) -> list[Any]:
        if self._identities is None:
            self._identities = self.keys.identities()
        return self._identities

    def sealed_size(self, plain_size: int) -> int:
        """About the size of the age file of `plain_size` bytes for these recipients: age's
        header (its random "grease" stanza makes it vary by up to ~150 bytes: counted at its
        mean), then 64 KiB chunks each with a 16-byte tag."""
        header = _HEADER + _STANZA * len(self.keys.recipients)
        return header + plain_size + max(1, -(-plain_size // _AGE_CHUNK)) * _TAG

    def sealing(self, out: Any) -> Sealing:
        """A writer whose bytes are age-encrypted to the recipients into `out`, streaming."""
        return Sealing(self.recipients(), out)

    def fits(self, path: Path) -> None:
        """DecryptionKeyError unless an identity opens the age file at `path` (its header
        and first 64 KiB are decrypted, not the whole file)."""
        pyrage = _pyrage()
        identities = self.identities()
        with path.open("rb") as fh:
            head = fh.read(_HEAD)
        try:
            pyrage.decrypt_io(_View(head), _Sink(), identities)
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise self._no_key(path) from None
        except OSError:
            pass  # a key fitted: the payload ends where the head was cut

    def _no_key(self, path: Path) -> DecryptionKeyError:
        return DecryptionKeyError(
            f"age identity file {self.keys.identity_file} holds no key that decrypts "
            f"pack {path}: set encryption.identity_file to the key of the recipients "
            "the backups were encrypted to"
        )

    def open(self, path: Path) -> bytearray:
        """The plain pack of a sealed one; DecryptionKeyError when no identity fits it,
        BlobCorrupted when it is damaged (age authenticates every 64 KiB and the end)."""
        pyrage = _pyrage()
        identities = self.identities()
        plain = _Sink()
        try:
            with path.open("rb") as fh:
                pyrage.decrypt_io(fh, plain, identities)
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise self._no_key(path) from None
            raise BlobCorrupted(f"pack {path}: cannot decrypt: {exc}") from None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise BlobCorrupted(f"pack {path}: cannot decrypt (damaged): {exc}") from None
        return plain.data


class Sealing:
    """Plain bytes written here come out age-encrypted into `out` (a file-like), from a
    thread pyrage pulls them on; a bounded queue between, so memory stays small."""

    def __init__(self, recipients: list[Any], out: Any) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(recipients, out), name="seal")
        self.thread.start()

    def _run(self, recipients: list[Any], out: Any) -> None:
        try:
            _pyrage().encrypt_io(_Queued(self.queue), out, recipients)
        except BaseException as exc:
            self.error = exc
            with contextlib.suppress(queue.Empty):
                while True:  # unblock the writer
                    self.queue.get_nowait()

    def write(self, data: bytes) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(data, timeout=0.2)
                return
            except queue.Full:
                continue
        self.close()  # the thread died: raise why

    def close(self) -> None:
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Queued:
    """A file-like reader over a queue of pieces (None ends it), for pyrage."""

    def __init__(self, q: queue.Queue[bytes | None]) -> None:
        self.q = q
        self.buf = b""
        self.done = False

    def read(self, size: int = -1) -> bytes:
        while not self.buf and not self.done:
            piece = self.q.get()
            if piece is None:
                self.done = True
            else:
                self.buf = piece
        n = len(self.buf) if size is None or size < 0 else size
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class _Sink:
    """A file-like writer into one bytearray (BytesIO.getvalue would copy it once more)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


class _View:
    """A file-like reader over bytes without copying them (BytesIO would)."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else self.pos + size
        out = bytes(self.view[self.pos : end])
        self.pos += len(out)
        return out


def sealed_file(stored: Iterator[bytes], keys: PackKeys) -> Iterator[bytes]:
    """An encrypted artifact's file (`age -d -i KEY FILE | gunzip`): its stored stream
    age-encrypted to the configured recipients, else to the identity's own."""
    recipients = keys.recipients() if keys.can_seal else [i.to_public() for i in keys.identities()]
    return age.encrypt(stored, recipients)


def is_sealed(path: Path) -> bool:
    """True when the file at `path` is an age file (an encrypted pack)."""
    with path.open("rb") as fh:
        return fh.read(len(AGE_MAGIC)) == AGE_MAGIC


class OpenedPacks:
    """Decrypted packs, the most recently used OPEN_SEALED kept."""

    def __init__(self, keys: PackKeys) -> None:
        self.keys = keys
        self.plain: OrderedDict[str, bytearray] = OrderedDict()

    def get(self, name: str, path: Path) -> bytearray:
        data = self.plain.get(name)
        if data is not None:
            self.plain.move_to_end(name)
            return data
        if len(self.plain) >= OPEN_SEALED:  # dropped first: at most OPEN_SEALED in memory
            self.plain.popitem(last=False)
        data = self.keys.open(path)
        self.plain[name] = data
        return data
