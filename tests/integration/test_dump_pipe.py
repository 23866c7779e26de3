"""pg_dump's pipe is widened (pgtools.pipes): pg_dump writes on while the store is busy with
what it read. Where the kernel refuses, the dump goes on through the pipe as it was."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from pgtools.dump import artifact_specs, run_dump
from pgtools.pipes import WANTED, widen
from pgtools.session import SnapshotSession
from pgtools.target import DbTarget


def _allowed() -> int:
    return min(WANTED, int(Path("/proc/sys/fs/pipe-max-size").read_text()))


def test_a_pipe_is_widened_to_what_the_system_allows() -> None:
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        assert fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ) < _allowed()  # 64 KiB
        assert widen(reader) == _allowed()
        assert fcntl.fcntl(writer.fileno(), fcntl.F_GETPIPE_SZ) == _allowed()  # one pipe


def test_what_cannot_be_widened_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "not-a-pipe"
    path.write_bytes(b"kept")
    with path.open("rb") as fh:
        assert widen(fh) is None
        assert fh.read() == b"kept"
    assert widen(None) is None


def test_pg_dump_writes_into_a_wide_pipe_and_the_dump_is_whole(supabase_cluster: Any) -> None:
    target = DbTarget(
        host=str(supabase_cluster.socket_dir),
        port=supabase_cluster.port,
        user="postgres",
        dbname="postgres",
    )
    sizes: list[int] = []

    def seen(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        sizes.append(fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ))

    with SnapshotSession(target) as snap:
        # one restrict key for both dumps (pg_dump picks a random one otherwise)
        spec = artifact_specs(snap.snapshot_id, restrict_key="k" * 32)["full"]
        via_store = run_dump(
            spec,
            supabase_cluster.bindir,
            target,
            lambda chunks: hashlib.sha256(b"".join(chunks)).hexdigest(),
            on_start=seen,
        )
        direct = subprocess.run(
            [str(supabase_cluster.bindir / "pg_dump"), *spec.args],
            env=target.env(dict(os.environ)),
            capture_output=True,
            check=True,
        ).stdout
    assert sizes == [_allowed()]
    assert via_store == hashlib.sha256(direct).hexdigest()
