"""Per-parent streams: one fan-out, one skip rule, one progress line, one summary.

Why the tap goes its own way here: the SDK syncs partitions one at a time, so a
first sync of thousands of customers is bound by latency. Here worker threads
only fetch (`fan_out`); the stream's thread receives each partition's result and
writes its records and bookmarks, so Singer output keeps a single writer, and the
client's pacer keeps every thread inside the run's one request budget. Every
per-customer or per-plan stream goes through `Partitions`, so adding one needs no
threading, skip rule or log format of its own.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from tap_metronome.archived import ARCHIVED_READ_ON
from tap_metronome.client import MetronomeAPIError, MetronomeClient
from tap_metronome.errors import one_line
from tap_metronome.paths import UnsafeIdError

if TYPE_CHECKING:
    from tap_metronome.streams.base import MetronomeStream

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")

#: The parents a stream can fan out over.
Parent = Literal["customers", "plans"]
#: What a parent's id is called in a child's path and records.
PARENT_KEYS: dict[str, str] = {"customers": "customer_id", "plans": "plan_id"}
#: One parent, for log lines ("Skipping plan <id> in plan_charges: ...").
PARENT_NOUNS: dict[str, str] = {"customers": "customer", "plans": "plan"}
#: Statuses that concern one partition only, by parent, unless a stream says
#: otherwise. A per-customer endpoint answers 404 for a customer deleted since
#: the listing and 400 for one it does not serve (costs: a plan with a
#: UNIQUE-type billable metric; contracts, balances, invoices: a customer of
#: the other billing model); a per-plan one, 404 for a plan deleted since.
#: Any other 4xx means the request itself is wrong and stops the run.
SKIPPABLE_STATUSES: dict[str, frozenset[int]] = {
    "customers": frozenset({HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND}),
    "plans": frozenset({HTTPStatus.NOT_FOUND}),
}

#: Why one partition is skipped: a skippable status, or an id never put in a path.
SkipReason = MetronomeAPIError | UnsafeIdError


def fan_out(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    max_workers: int,
    on_abort: Callable[[], None] | None = None,
    ordered: bool = False,
) -> Generator[tuple[T, R], None, None]:
    """Yield `(item, work(item))` for every item, as each finishes.

    At most `2 * max_workers` items are in flight, so memory stays flat however
    many items there are. With `max_workers == 1` the work runs inline, in order.
    With `ordered`, results are yielded in the order of `items` (a finished
    result waits for the earlier ones, still within the same bound). If `work`
    raises (or the run is interrupted), `on_abort` is called to stop in-flight
    requests; if the consumer just stops early (a dry run's record limit),
    queued work is cancelled and running work is let finish. Either way no
    worker outlives this generator.
    """
    if max_workers <= 1:
        for item in items:
            yield item, work(item)
        return

    source = iter(items)
    pending: dict[Future[R], T] = {}
    # Finished futures arrive on a queue (cheaper than `wait()` re-arming a
    # waiter on every pending future for each result).
    finished: queue.SimpleQueue[Future[R]] = queue.SimpleQueue()
    executor = ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="metronome"
    )

    def submit(item: T) -> None:
        future = executor.submit(work, item)
        pending[future] = item
        if not ordered:  # in order, the oldest is awaited directly
            future.add_done_callback(finished.put)

    try:
        for item in source:
            submit(item)
            if len(pending) >= 2 * max_workers:
                break
        while pending:
            # In order: the oldest submission (dicts keep insertion order).
            future = next(iter(pending)) if ordered else finished.get()
            item = pending.pop(future)
            result = future.result()
            # The next item starts before this result is consumed, so workers
            # fetch while the consumer writes.
            for next_item in source:
                submit(next_item)
                break
            yield item, result
    except GeneratorExit:
        raise
    except BaseException:
        if on_abort is not None:
            on_abort()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def cancel_on_error(
    results: Generator[Any, None, None],
    client: MetronomeClient,
    *,
    dry_run: bool,
    on_stop: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Cancel in-flight fetches of a fan-out when its consumer fails.

    `on_stop` then saves what is done (bookmarks covering exactly the rows
    already yielded); its own failure does not hide the first error.

    Without this, closing the fan-out waits for every running worker to finish
    its whole partition (retries included) before the error is reported. Only
    when the SDK merely stops reading in a dry run (GeneratorExit at the record
    limit) does the client stay usable for the streams that follow; a
    GeneratorExit in a real sync means the SDK failed after a record (a schema
    error, stdout gone), and the run is ending.
    """
    try:
        yield
    except BaseException as exc:
        if not (dry_run and isinstance(exc, GeneratorExit)):
            client.cancel()
        results.close()
        if on_stop is not None:
            with contextlib.suppress(Exception):
                on_stop()
        raise


@dataclass(frozen=True, slots=True)
class Piece(Generic[P, R]):
    """One piece of a partition (`part`, e.g. a day window) and what it fetched.

    `part` and `result` are None for a partition with nothing to read; `last`
    marks the partition's last piece.
    """

    parent_id: str
    part: P | None
    result: R | None
    last: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    """A partition that answered a status its stream skips."""

    error: SkipReason


class Progress:
    """One INFO line every `interval` seconds on long syncs, with an ETA."""

    def __init__(
        self,
        *,
        stream: str,
        noun: str,
        total: int,
        interval: float,
        client: MetronomeClient,
        logger: logging.Logger,
    ) -> None:
        self.stream = stream
        self.noun = noun
        self.total = total
        self.interval = interval
        self.client = client
        self.logger = logger
        self.started = self.last = time.monotonic()
        self.requests_before = client.requests_sent
        self.retries_before = client.retries

    @property
    def requests(self) -> int:
        """Requests sent since this stream started (by any stream's threads)."""
        return self.client.requests_sent - self.requests_before

    def update(self, done: int, records: int) -> None:
        """Log progress if `interval` has passed since the last line."""
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        remaining = elapsed / done * (self.total - done) if done else float("nan")
        self.logger.info(
            "%s progress: %d/%d %ss, %d requests, %d records, %d retries, "
            "%.0fs elapsed, about %.0fs left",
            self.stream,
            done,
            self.total,
            self.noun,
            self.requests,
            records,
            self.client.retries - self.retries_before,
            elapsed,
            remaining,
        )


class Partitions(Generic[R]):
    """One sync of a per-parent stream over `parent_ids` (customers or plans)."""

    def __init__(
        self,
        stream: MetronomeStream,
        parent_ids: list[str],
        *,
        parent: Parent,
        skippable: frozenset[int] | None = None,
        on_skip: Callable[[str, SkipReason], None] | None = None,
    ) -> None:
        self.stream = stream
        self.on_skip = on_skip
        self.skippable_statuses = (
            SKIPPABLE_STATUSES[parent] if skippable is None else skippable
        )
        self.services = stream.services
        # A dry run (`--test`) reads one partition: one request per stream.
        self.parent_ids = parent_ids[:1] if stream.dry_run else parent_ids
        self.noun = PARENT_NOUNS[parent]
        #: Archived customers read long enough after archiving (`archived`): not
        #: requested, unless ACTIVATE_VERSION would mark their rows deleted.
        self.archived_reads = stream.archived_reads() if parent == "customers" else None
        #: Customers whose last read is not final (an invoice still a DRAFT).
        self._unsettled: set[str] = set()
        self.settled = 0
        if self.archived_reads is not None and stream.skips_settled:
            reads = self.archived_reads
            kept = [pid for pid in self.parent_ids if not reads.settled(pid)]
            self.settled = len(self.parent_ids) - len(kept)
            self.parent_ids = kept
        self.skipped = 0
        self.finished = 0
        self.progress = Progress(
            stream=stream.name,
            noun=self.noun,
            total=len(self.parent_ids),
            interval=self.services.settings.progress_interval_seconds,
            client=self.services.client,
            logger=stream.logger,
        )

    def skippable(self, error: MetronomeAPIError) -> bool:
        """Whether `error` concerns this partition only (the run goes on)."""
        return error.status in self.skippable_statuses

    def fetch(self, work: Callable[[str], R]) -> Generator[tuple[str, R], None, None]:
        """`(parent id, work(parent id))` as partitions finish, on worker threads.

        A partition whose request answers a skippable status (`SKIPPABLE_STATUSES`),
        or whose id cannot go in a path (`paths.with_id`), is skipped (WARNING,
        counted); any other error cancels the rest and stops the stream.
        """

        def guarded(parent_id: str) -> R | Skipped:
            try:
                return work(parent_id)
            except UnsafeIdError as exc:
                return Skipped(exc)
            except MetronomeAPIError as exc:
                if not self.skippable(exc):
                    raise
                return Skipped(exc)

        client = self.services.client
        results = fan_out(
            self.parent_ids,
            guarded,
            max_workers=1 if self.stream.dry_run else self.services.max_concurrency,
            on_abort=client.cancel,
        )
        with cancel_on_error(results, client, dry_run=self.stream.dry_run):
            for parent_id, result in results:
                self.services.stop.check()
                if isinstance(result, Skipped):
                    self.skip(parent_id, result.error)
                    continue
                yield parent_id, result
                # The consumer asks for the next one: this one's records are out.
                self.read_completely(parent_id)
        self.save_archived_reads()

    def fetch_pieces(
        self,
        pieces: Callable[[str], Sequence[P]],
        work: Callable[[str, P], R],
    ) -> Generator[Piece[P, R], None, None]:
        """Each partition's pieces (a customer's day windows) in order, one by one.

        For a partition whose history is long: workers fetch single pieces, so
        memory holds at most `2 * max_concurrency` pieces however long the
        history, and a stop is seen between pieces, not only between
        partitions. Pieces come in order (a partition's pieces one after
        another, partitions in `parent_ids` order), so a bookmark can advance
        piece by piece. A partition with no piece yields one `Piece` whose
        `part` is None. The first skippable error of a partition skips it
        (WARNING, counted) after the pieces before it; its later pieces are not
        requested, or are dropped if already fetched.
        """
        failed: set[str] = set()  # partitions whose later pieces need no request

        def tasks() -> Iterator[tuple[str, P | None, int, bool, threading.Event]]:
            for parent_id in self.parent_ids:
                parts: Sequence[P | None] = pieces(parent_id) or [None]
                # A partition's later pieces wait for its first: a customer the
                # endpoint refuses (400, 404) says so on its first request, and
                # then costs one request, not one per piece in flight.
                first_done = threading.Event()
                for n, part in enumerate(parts, start=1):
                    yield parent_id, part, n, n == len(parts), first_done

        def guarded(
            task: tuple[str, P | None, int, bool, threading.Event],
        ) -> R | Skipped | None:
            parent_id, part, n, _, first_done = task
            if n > 1:
                # The pool starts work in submission order, so the first piece
                # is running or done: this wait ends.
                first_done.wait()
            try:
                if part is None or parent_id in failed:
                    return None
                return work(parent_id, part)
            except UnsafeIdError as exc:
                failed.add(parent_id)
                return Skipped(exc)
            except MetronomeAPIError as exc:
                if not self.skippable(exc):
                    raise
                failed.add(parent_id)
                return Skipped(exc)
            finally:
                if n == 1:
                    first_done.set()

        client = self.services.client
        results = fan_out(
            tasks(),
            guarded,
            max_workers=1 if self.stream.dry_run else self.services.max_concurrency,
            on_abort=client.cancel,
            ordered=True,
        )
        skipped: str | None = None
        with cancel_on_error(results, client, dry_run=self.stream.dry_run):
            for (parent_id, part, _, last, _), result in results:
                self.services.stop.check()
                if parent_id == skipped:
                    continue
                if isinstance(result, Skipped):
                    skipped = parent_id
                    self.skip(parent_id, result.error)
                    continue
                if part is not None and result is None:
                    continue  # listed twice, and skipped the first time
                yield Piece(parent_id, part, result, last=last)
                if last:  # the partition's last records are out
                    self.read_completely(parent_id)
        self.save_archived_reads()

    def unsettled(self, parent_id: str) -> None:
        """This partition's read is not final (a DRAFT invoice): read it next run too.

        Called before the next partition is asked for.
        """
        self._unsettled.add(parent_id)

    def read_completely(self, parent_id: str) -> None:
        """Every record of the partition is written: an archived customer's read counts."""
        if self.archived_reads is not None and parent_id not in self._unsettled:
            self.archived_reads.read(parent_id)

    def save_archived_reads(self) -> None:
        """Put the archived customers' last complete reads into the stream's state.

        At the end of the fan-out only: a run that stops keeps the previous
        reads (those read since are read again). Nothing is added to a state
        that had none while no archived customer was read.
        """
        if self.archived_reads is None:
            return
        reads = self.archived_reads.to_state()
        state = self.stream.stream_state
        if reads or ARCHIVED_READ_ON in state:
            state[ARCHIVED_READ_ON] = reads

    def skip(self, parent_id: str, error: SkipReason) -> None:
        """Log and count a partition skipped for `error`."""
        if self.on_skip is not None:
            self.on_skip(parent_id, error)
        self.skipped += 1
        self.finished += 1
        reason = (
            error.reason
            if isinstance(error, UnsafeIdError)
            else f"HTTP {error.status}: {error.api_message}"
        )
        self.stream.logger.warning(
            "Skipping %s %s in %s: %s",
            self.noun,
            one_line(parent_id, 80),
            self.stream.name,
            reason,
        )

    def done(self, records: int) -> None:
        """One partition's records are out: count it, and maybe log progress."""
        self.finished += 1
        self.progress.update(self.finished, records)

    def summary(self, *details: str) -> None:
        """The stream's last line: partitions synced and skipped, then `details`.

        With the archived customers' rule, it says how many were not re-read.
        """
        if self.archived_reads is not None:
            details = (f"{self.settled} archived customers not re-read", *details)
        self.stream.logger.info(
            "%s: %d %ss synced, %d skipped, %s%d requests",
            self.stream.name,
            len(self.parent_ids) - self.skipped,
            self.noun,
            self.skipped,
            "".join(f"{detail}, " for detail in details),
            self.progress.requests,
        )
