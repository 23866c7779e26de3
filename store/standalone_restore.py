#!/usr/bin/env python3
"""Rebuild a dumpledger backup's dump from the store, with nothing but Python's standard library.

dumpledger copies this script to backups/restore-without-dumpledger.py at every backup, for
the day dumpledger itself cannot be installed. It reads the store's files directly: a whole
blob (store/sha256/...) is copied; a chunked artifact's manifest (store/manifests/...) lists
its chunks, the trailers at the end of the pack files (store/packs/...) say where each chunk
is. No index, no catalog, no third-party package. Every chunk's SHA-256 is checked, and the
whole dump's SHA-256 at the end.

    python3 backups/restore-without-dumpledger.py NAME -o NAME_full.sql.gz
    python3 backups/restore-without-dumpledger.py NAME --plain | psql "$DATABASE_URL"
    python3 backups/restore-without-dumpledger.py NAME --artifact custom -o NAME.dump
    python3 backups/restore-without-dumpledger.py --digest HEX --codec gzip -o out.sql.gz

NAME is a backup with a backups/database/NAME_metadata.json (which names its digests). The
output is the artifact's file (gzip stream; zstd stream; a custom dump as is) or, with
--plain, its SQL. zstd chunks need Python 3.14's compression.zstd to be checked or made plain;
without it, their bytes are written as stored (`zstd -d` reads them).

Encrypted backups: their packs are age files. With -i KEY (the age identity file) each pack
is decrypted by the age program (`age -d -i KEY PACK`, one pack in memory at a time) and read
as a plain one; --age names the program (rage works too). By hand: `age -d -i KEY PACK >
PLAIN.pack` gives the plain pack format. An encrypted whole blob of before (store/sha256/...
.age) is decrypted with `age -d -i KEY FILE`.

    python3 backups/restore-without-dumpledger.py NAME -i ~/.config/age/key.txt --plain | psql
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

PACK_MAGIC = b"DLPACK1\n"
PACK_FOOTER = struct.Struct(">I8s")
PACK_ENTRY = struct.Struct(">32sQIIB")
MANIFEST_MAGIC = b"DLMANIFEST1\n"
RECORD = struct.Struct(">32sI")
CODEC_IDS = {"gzip": 1, "zstd": 2}
AGE_MAGIC = b"age-encryption.org/v1"
SUFFIXES = {".sql.gz": "gzip", ".sql.zst": "zstd", ".dump": "none"}


class Failed(Exception):
    """What went wrong, in one line."""


class NotOpened(Failed):
    """The age program could not decrypt a pack with the identity."""


def zstd_module() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # 3.14
    except ImportError:
        return None
    return zstd


def artifact_of(backup_dir: Path, name: str, kind: str) -> tuple[str, str]:
    """(digest, codec) of a backup's artifact, from its metadata file."""
    meta_path = backup_dir / "database" / f"{name}_metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Failed(f"{meta_path} does not exist: is {name} a backup of {backup_dir}?") from None
    digest = (meta.get("digests") or {}).get(kind)
    filename = (meta.get("files") or {}).get(kind, "")
    if not digest:
        raise Failed(f"backup {name} has no {kind} artifact")
    sealed = filename.endswith(".age")
    codec = next(
        (c for s, c in SUFFIXES.items() if filename.removesuffix(".age").endswith(s)), None
    )
    if codec is None:
        raise Failed(f"{meta_path}: unknown file type {filename!r}")
    return digest.removeprefix("sha256:"), codec + ("+age" if sealed else "")


class Age:
    """Encrypted packs, decrypted by the age program with the identity file; the last kept."""

    def __init__(self, identity: Path | None, program: str) -> None:
        self.identity, self.program = identity, program
        self.last: tuple[Path, bytes] | None = None
        self.sealed: set[Path] = set()
        self.skipped = 0  # encrypted packs passed over: no identity
        self.unopened = 0  # encrypted packs passed over: the identity does not decrypt them

    def plain(self, pack: Path) -> bytes:
        if self.last is not None and self.last[0] == pack:
            return self.last[1]
        if self.identity is None:
            raise Failed(f"{pack} is encrypted: pass -i KEY (the age identity file)")
        try:
            done = subprocess.run(
                [self.program, "-d", "-i", str(self.identity), str(pack)],
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            raise Failed(f"no {self.program} program: install age (or pass --age)") from None
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise NotOpened(f"{self.program} -d {pack} failed: {why[-1] if why else 'no reason'}")
        self.last = (pack, done.stdout)
        return done.stdout


def trailer_of(pack: Path, age: Age) -> bytes | None:
    """A pack's trailer entries: of its plain form when it is encrypted (None, counted, when
    there is no identity to decrypt it with)."""
    with pack.open("rb") as fh:
        if fh.read(len(AGE_MAGIC)) == AGE_MAGIC:
            if age.identity is None:
                age.skipped += 1
                return None
            try:
                data = age.plain(pack)
            except NotOpened:  # sealed to other keys (before a key change): others may hold it
                age.unopened += 1
                return None
            age.sealed.add(pack)
            return entries_of(pack, len(data), lambda start, n: data[start : start + n])

        def read(start: int, n: int) -> bytes:
            fh.seek(start)
            return fh.read(n)

        return entries_of(pack, os.fstat(fh.fileno()).st_size, read)


def entries_of(pack: Path, size: int, read: Callable[[int, int], bytes]) -> bytes | None:
    if size < len(PACK_MAGIC) + PACK_FOOTER.size:
        return None
    count, magic = PACK_FOOTER.unpack(read(size - PACK_FOOTER.size, PACK_FOOTER.size))
    start = size - PACK_FOOTER.size - count * PACK_ENTRY.size
    if magic != b"DLPACKT1" or start < len(PACK_MAGIC):
        print(f"warning: {pack} has no valid trailer; skipped", file=sys.stderr)
        return None
    return read(start, count * PACK_ENTRY.size)


def read_manifest(path: Path) -> tuple[dict[str, object], list[tuple[bytes, int]]]:
    data = path.read_bytes()
    if not data.startswith(MANIFEST_MAGIC) or len(data) < len(MANIFEST_MAGIC) + 4:
        raise Failed(f"{path} is not a dumpledger manifest")
    (length,) = struct.unpack(">I", data[-4:])
    footer = json.loads(data[len(data) - 4 - length : len(data) - 4])
    body = data[len(MANIFEST_MAGIC) : len(data) - 4 - length]
    if len(body) != footer["chunks"] * RECORD.size:
        raise Failed(f"{path} is damaged: it lists the wrong number of chunks")
    return footer, list(RECORD.iter_unpack(body))


def locate(
    store: Path, wanted: set[bytes], codec_id: int, age: Age
) -> dict[bytes, tuple[Path, int, int, int]]:
    """chunk digest -> (pack, offset, stored length, raw length), from the packs' trailers."""
    found: dict[bytes, tuple[Path, int, int, int]] = {}
    for pack in sorted((store / "packs").glob("??/*.pack")):
        trailer = trailer_of(pack, age)
        if trailer is None:
            continue
        for digest, offset, stored, raw, cid in PACK_ENTRY.iter_unpack(trailer):
            if digest in wanted and cid == codec_id:
                found.setdefault(digest, (pack, offset, stored, raw))
    return found


def decompress(stored: bytes, codec: str) -> bytes | None:
    if codec == "gzip":
        d = zlib.decompressobj(wbits=31)
        raw = d.decompress(stored)
        if not d.eof or d.unused_data:
            raise Failed("a chunk is not one complete gzip member")
        return raw
    zstd = zstd_module()
    return None if zstd is None else bytes(zstd.decompress(stored))


def chunked(store: Path, digest: str, codec: str, plain: bool, out: BinaryIO, age: Age) -> int:
    path = store / "manifests" / digest[:2] / f"{digest}.{codec}.manifest"
    footer, records = read_manifest(path)
    chunk_codec = str(footer["chunk_codec"])
    codec = codec.removesuffix("+age")  # the output: the plain compressed stream, or SQL
    found = locate(store, {d for d, _ in records}, CODEC_IDS[chunk_codec], age)
    whole, size, unchecked = hashlib.sha256(), 0, 0
    if not records and codec != "none" and not plain:
        empty = zlib.compressobj(9, zlib.DEFLATED, 31)  # one empty member: a valid gzip file
        out.write(empty.compress(b"") + empty.flush() if chunk_codec == "gzip" else b"")
    handles: dict[Path, BinaryIO] = {}
    for d, raw_len in records:
        if d not in found:
            hint = f" ({age.skipped} encrypted packs skipped: pass -i KEY)" if age.skipped else ""
            if age.unopened:
                hint += f" ({age.unopened} encrypted packs {age.identity} does not decrypt)"
            raise Failed(f"chunk {d.hex()} of {digest} is in no pack under {store}/packs{hint}")
        pack, offset, stored_len, _ = found[d]
        if pack not in handles:
            handles[pack] = pack.open("rb")
        fh = handles[pack]
        if pack in age.sealed:
            stored = age.plain(pack)[offset : offset + stored_len]
        else:
            fh.seek(offset)
            stored = fh.read(stored_len)
        try:
            raw = decompress(stored, chunk_codec)
        except (zlib.error, Failed, ValueError) as exc:
            raise Failed(f"chunk {d.hex()} in {pack} (offset {offset}) is damaged: {exc}") from None
        if raw is None:
            unchecked += 1
            if plain or codec == "none":
                raise Failed("zstd chunks: this Python has no zstd; use Python 3.14 or dumpledger")
        elif len(raw) != raw_len or hashlib.sha256(raw).digest() != d:
            raise Failed(f"chunk {d.hex()} in {pack} (offset {offset}) is damaged")
        else:
            whole.update(raw)
            size += len(raw)
        out.write(raw if (plain or codec == "none") and raw is not None else stored)
    for fh in handles.values():
        fh.close()
    if unchecked:
        print(f"warning: {unchecked} zstd chunks written unchecked (no zstd)", file=sys.stderr)
    elif whole.hexdigest() != digest:
        raise Failed(f"the rebuilt dump hashes to {whole.hexdigest()}, not {digest}")
    return size


def whole_blob(store: Path, digest: str, codec: str, plain: bool, out: BinaryIO) -> bool:
    suffix = {v: k for k, v in SUFFIXES.items()}[codec.removesuffix("+age")]
    suffix += ".age" if codec.endswith("+age") else ""
    path = store / "sha256" / digest[:2] / f"{digest}{suffix}"
    if not path.is_file():
        return False
    if codec.endswith("+age"):
        raise Failed(f"{path} is an encrypted whole blob: decrypt it with `age -d -i KEY {path}`")
    data = path.read_bytes()
    if plain and codec == "gzip":
        import gzip

        data = gzip.decompress(data)
    elif plain and codec == "zstd":
        raise Failed(f"{path} is zstd: decompress it with `zstd -dc {path}`")
    out.write(data)
    return True


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("name", nargs="?", help="backup name (its database/NAME_metadata.json)")
    p.add_argument("--artifact", default="full", help="full, globals, schema, data or custom")
    p.add_argument("--digest", help="an artifact's SHA-256 instead of a backup name")
    p.add_argument("--codec", default="gzip", help="with --digest: gzip, zstd or none")
    p.add_argument("--backup-dir", type=Path, default=here, help=f"default: {here}")
    p.add_argument("--plain", action="store_true", help="write SQL, not the compressed file")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    p.add_argument("-i", "--identity", type=Path, help="age identity file: encrypted packs")
    p.add_argument("--age", default="age", help="the age program (default: age)")
    args = p.parse_args(argv)
    try:
        if args.digest:
            digest, codec = args.digest.removeprefix("sha256:"), args.codec
        elif args.name:
            digest, codec = artifact_of(args.backup_dir, args.name, args.artifact)
        else:
            raise Failed("name a backup, or pass --digest")
        store = args.backup_dir / "store"
        target = args.output.with_name(f".{args.output.name}.partial") if args.output else None
        out: BinaryIO = target.open("wb") if target else sys.stdout.buffer
        try:
            if not whole_blob(store, digest, codec, args.plain, out):
                chunked(store, digest, codec, args.plain, out, Age(args.identity, args.age))
            out.flush()
        except BaseException:
            if target:
                out.close()
                target.unlink()
            raise
        if target and args.output:
            out.close()
            target.replace(args.output)
    except (Failed, OSError, KeyError, ValueError, zlib.error) as exc:
        print(f"restore-without-dumpledger: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
