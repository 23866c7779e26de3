"""A test hook: die at a named step of pack collection, as a SIGKILL would.

`DUMPLEDGER_TEST_CRASH_AT=<point>` makes the process kill itself (SIGKILL: no cleanup, no
finally) the first time it reaches `<point>`; `<point>:<n>` the n-th time. Read here only:
tests/integration/test_pack_collection_crash.py kills a real `dumpledger cleanup` at each
step of pack collection this way (store/chunked/store.py, refs.py, repack.py).
"""

from __future__ import annotations

import os
import signal

VARIABLE = "DUMPLEDGER_TEST_CRASH_AT"
_seen: dict[str, int] = {}


def reached(point: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
