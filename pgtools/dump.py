"""Run pg_dump / pg_dumpall as child processes and stream their output to a consumer.

The consumer (the store) reads stdout in chunks; this module checks the exit status and,
for plain dumps, that pg_dump wrote its completion trailer.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pgtools.errors import PgDumpFailed
from pgtools.locks import PgLockTimeout, is_lock_timeout
from pgtools.pipes import widen
from pgtools.target import DbTarget

CHUNK = 1 << 20
PLAIN_TRAILERS = (
    b"-- PostgreSQL database dump complete",
    b"-- PostgreSQL database cluster dump complete",
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DumpSpec:
    """One artifact: which program, which arguments, and whether its output is plain SQL."""

    kind: str
    program: str  # "pg_dump" or "pg_dumpall"
    args: tuple[str, ...]
    plain: bool = True


def artifact_specs(
    snapshot_id: str,
    *,
    role_passwords: bool = False,
    restrict_key: str | None = None,
    lock_wait_timeout_ms: int = 0,
    compress_custom: bool = True,
) -> dict[str, DumpSpec]:
    """The pg_dump/pg_dumpall invocations of each artifact kind.

    `restrict_key` pins psql's `\\restrict` key (pg_dump 15.14/16.10/17.6 and newer pick a
    random one per run otherwise), so an unchanged database dumps to identical bytes.
    `lock_wait_timeout_ms` (0: wait for ever): pg_dump fails instead of queueing longer for a
    table another session locked.
    `compress_custom=False` dumps the custom format uncompressed (`--compress=0`): a chunked
    store deduplicates it and compresses its chunks itself.
    """
    common: tuple[str, ...] = ("--no-password", f"--snapshot={snapshot_id}")
    if lock_wait_timeout_ms > 0:
        common += (f"--lock-wait-timeout={int(lock_wait_timeout_ms)}",)
    plain: tuple[str, ...] = ("--format=plain",)
    if restrict_key:
        plain += (f"--restrict-key={restrict_key}",)
    globals_args: tuple[str, ...] = ("--no-password", "--globals-only", *plain[1:])
    if not role_passwords:
        globals_args += ("--no-role-passwords",)
    return {
        "full": DumpSpec("full", "pg_dump", (*common, *plain)),
        "globals": DumpSpec("globals", "pg_dumpall", globals_args),
        "schema": DumpSpec("schema", "pg_dump", (*common, *plain, "--schema-only")),
        "data": DumpSpec("data", "pg_dump", (*common, *plain, "--data-only", "--column-inserts")),
        "custom": DumpSpec(
            "custom",
            "pg_dump",
            (*common, "--format=custom", *(() if compress_custom else ("--compress=0",))),
            plain=False,
        ),
    }


def supports_restrict_key(bindir: Path) -> bool:
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--help"], capture_output=True, text=True, check=False, timeout=30
    )
    return "--restrict-key" in done.stdout


class _Tail:
    """Remembers the last bytes of a stream, to check the trailer without buffering it."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.data = b""

    def feed(self, chunk: bytes) -> None:
        self.data = (self.data + chunk[-self.size :])[-self.size :]


def run_dump(
    spec: DumpSpec,
    bindir: Path,
    target: DbTarget,
    consume: Callable[[Iterator[bytes]], T],
    *,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> T:
    """Stream `spec`'s output into `consume`.

    The chunk iterator itself raises PgDumpFailed at its end when the program failed or the
    dump is incomplete, so a consumer that writes atomically (the store) never commits it.
    """
    argv = [str(bindir / spec.program), *spec.args]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=target.env(dict(os.environ)),
    )
    widen(proc.stdout)  # pg_dump writes on while the store is busy with what it read
    if on_start:
        on_start(proc)
    stderr_lines: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(proc, stderr_lines), daemon=True)
    reader.start()
    try:
        return consume(_checked_chunks(spec, proc, reader, stderr_lines))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join()


def _drain(proc: subprocess.Popen[bytes], out: list[bytes]) -> None:
    assert proc.stderr is not None
    out.extend(proc.stderr.readlines())
    proc.stderr.close()


def _checked_chunks(
    spec: DumpSpec,
    proc: subprocess.Popen[bytes],
    reader: threading.Thread,
    stderr_lines: list[bytes],
) -> Iterator[bytes]:
    assert proc.stdout is not None
    tail = _Tail()
    with proc.stdout:
        while chunk := proc.stdout.read(CHUNK):
            tail.feed(chunk)
            yield chunk
    code = proc.wait()
    reader.join()
    _check(spec, code, b"".join(stderr_lines), tail.data)


def error_text(stderr: bytes, limit: int = 1000) -> str:
    """What a client program said went wrong, on one line: its first error line and every line
    after it (pg_dump's `detail:`/`hint:` lines: the server's message, the command that
    failed), not just the last one; without an error line, the last line."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    first = next(
        (i for i, ln in enumerate(lines) if re.search(r"\berror\b|\bfatal\b", ln, re.I)), None
    )
    kept = lines[first:] if first is not None else lines[-1:]
    text = "; ".join(kept)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(spec: DumpSpec, code: int, stderr: bytes, tail: bytes) -> None:
    detail = error_text(stderr)
    if code < 0:
        raise PgDumpFailed(
            f"{spec.program} ({spec.kind}) was killed by signal {-code}; run the backup again"
        )
    if code != 0:
        failed = PgLockTimeout if is_lock_timeout(detail) else PgDumpFailed
        raise failed(f"{spec.program} ({spec.kind}) failed with exit code {code}: {detail}")
    if spec.plain and not any(t in tail for t in PLAIN_TRAILERS):
        raise PgDumpFailed(
            f"{spec.program} ({spec.kind}) output ended without its completion trailer: "
            "the dump is incomplete; run the backup again"
        )


def check_custom_dump(bindir: Path, chunks: Iterator[bytes]) -> None:
    """Decode a whole custom-format dump with pg_restore, writing the SQL nowhere."""
    proc = subprocess.Popen(
        [str(bindir / "pg_restore"), "--file=/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        raise PgDumpFailed(f"pg_restore could not decode the custom-format dump: {err}")
