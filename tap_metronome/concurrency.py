"""Fetch many partitions (customers, plans) at once; emit from one thread.

The SDK syncs partitions one at a time, so a first sync of thousands of
customers is bound by latency. Here worker threads only fetch; the caller's
thread receives each partition's result and writes its records and bookmarks,
so Singer output keeps a single writer. The shared pacer in the client keeps
every thread inside one request budget.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    max_workers: int,
    on_abort: Callable[[], None] | None = None,
) -> Generator[tuple[T, R], None, None]:
    """Yield `(item, work(item))` for every item, as each finishes.

    At most `2 * max_workers` items are in flight, so memory stays flat however
    many items there are. With `max_workers == 1` the work runs inline, in order.
    If `work` raises (or the run is interrupted), `on_abort` is called to stop
    in-flight requests; if the consumer just stops early (a dry run's record
    limit), queued work is cancelled and running work is let finish. Either way
    no worker outlives this generator.
    """
    if max_workers <= 1:
        for item in items:
            yield item, work(item)
        return

    source = iter(items)
    pending: dict[Future[R], T] = {}
    executor = ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="metronome"
    )
    try:
        for item in source:
            pending[executor.submit(work, item)] = item
            if len(pending) >= 2 * max_workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                yield item, future.result()
                for next_item in source:
                    pending[executor.submit(work, next_item)] = next_item
                    break
    except GeneratorExit:
        raise
    except BaseException:
        if on_abort is not None:
            on_abort()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
