"""cli.memory: at most two malloc arenas while a command runs, and a trimmer that ends with it
(glibc; the benchmark in docs/PERFORMANCE.md measures what that does to resident memory)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from cli.memory import bounded_heap

# Eight threads allocate at once, then the arenas are counted in malloc_info's report.
ARENAS = r"""
import ctypes, sys, threading
from pathlib import Path
from cli.memory import bounded_heap

def arenas(report: Path) -> int:
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    fh = libc.fopen(str(report).encode(), b"w")
    libc.malloc_info(0, fh)
    libc.fclose(fh)
    return report.read_text().count("<heap nr=")

def work(start: threading.Barrier, done: threading.Barrier) -> None:
    start.wait()
    kept = [bytearray(300_000) for _ in range(20)]  # past the mmap threshold's start: heaps
    done.wait()

def run() -> int:
    start, done = threading.Barrier(8), threading.Barrier(8)
    threads = [threading.Thread(target=work, args=(start, done)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return arenas(Path(sys.argv[2]))

if sys.argv[1] == "bounded":
    with bounded_heap() as took:
        assert took
        print(run())
else:
    print(run())
"""


def _arenas(mode: str, tmp_path: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, mode, str(tmp_path / f"{mode}.xml")],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def test_threads_share_two_arenas_while_a_command_runs(tmp_path: Path) -> None:
    assert _arenas("plain", tmp_path) > 2  # glibc gives each allocating thread its own
    assert _arenas("bounded", tmp_path) <= 2


def test_the_trimmer_runs_only_while_the_command_does() -> None:
    def trimmers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "malloc-trim"]

    with bounded_heap(every=0.01) as took:
        assert took
        assert len(trimmers()) == 1
    assert trimmers() == []
