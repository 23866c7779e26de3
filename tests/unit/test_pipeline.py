"""prefetch: order, errors and early stops cross the thread boundary intact."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from store.pipeline import prefetch


def test_items_arrive_in_order() -> None:
    assert list(prefetch(range(1000), depth=3)) == list(range(1000))


def test_worker_error_is_raised_in_the_consumer_after_the_good_items() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    got: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(source(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_stops_the_worker_within_the_queue_depth() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = prefetch(source(), depth=4)
    assert next(stream) == 0
    assert isinstance(stream, Generator)
    stream.close()  # joins the worker
    assert len(produced) <= 1 + 4 + 2
