"""Run one stage of a stream in a background thread, so stages overlap on separate cores.

zlib, zstd and hashlib release the GIL on large buffers, so a producer thread that reads and
hashes (or decompresses) runs alongside a consumer that compresses (or hashes). The queue
between them is bounded, so memory stays bounded whatever the stream's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_POLL = 0.05


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield `items` in order, computed up to `depth` ahead in a worker thread.

    The worker's exception is raised in the consumer; when the consumer stops early, the
    worker stops at its next item.
    """

    def produce(emit: Callable[[T], bool], _stop: threading.Event) -> None:
        for item in items:
            if not emit(item):
                return

    return in_worker(produce, depth=depth, name="prefetch")


def in_worker(
    produce: Callable[[Callable[[T], bool], threading.Event], None],
    *,
    depth: int = 4,
    name: str = "worker",
) -> Iterator[T]:
    """Run `produce(emit, stop)` on a worker thread; yield what it emits, in order.

    `emit` blocks while `depth` items wait, and returns False once the consumer has gone
    (`stop` is then set too). An exception of `produce` is raised in the consumer.
    """
    q: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            produce(lambda item: offer((True, item)), stop)
        except BaseException as exc:  # handed to the consumer, raised there
            offer((False, exc))
            return
        offer((False, None))

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            is_item, value = q.get()
            if is_item:
                yield value  # type: ignore[misc]
            elif value is None:
                return
            else:
                assert isinstance(value, BaseException)
                raise value
    finally:
        stop.set()
        worker.join()
