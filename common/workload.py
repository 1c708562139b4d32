"""A live workload to run while something changes underneath it, and what it saw.

Migration, failover and recovery lessons ask one question: what did the application notice?
`Workload` answers it the same way everywhere. Each worker is a thread with its own
connection that repeats one operation and records every attempt: when it started, how long it
took, and the error if it failed. A write returns the key it wrote, so after the change the
lesson can ask which acknowledged writes are missing.

    with Workload() as load:
        load.spawn("write", insert_order, connect=lambda: psycopg.connect(url, autocommit=True))
        load.spawn("read", read_order, connect=lambda: psycopg.connect(url, autocommit=True))
        ...  # the migration, the failover
    report = load.report()                  # operations, failed, blocked, slowest
    lost = load.lost(keys_read_back)        # acknowledged writes that are not there

The words mean the same in every lesson:
- failed: the operation raised (a lock timeout, a dropped connection, a missing column);
- blocked: it succeeded or failed after more than `blocked_after_s` (100 ms by default);
- lost: a write the server acknowledged, whose key is not found afterwards.

An operation is `operation(connection, n) -> key`: `n` counts that worker's attempts from 0.
When an attempt fails the worker closes its connection and connects again before the next,
as a pooled application would, so a restarted server is picked up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

BLOCKED_AFTER_S = 0.1


@dataclass(frozen=True)
class Attempt:
    worker: str
    started_s: float  # since the workload started
    latency_s: float
    error: str | None  # the exception's class name and first line, None when it succeeded
    key: object = None  # what a successful write returned

    def covers(self, since_s: float, in_flight: bool = False) -> bool:
        """Started at or after `since_s`, or (with `in_flight`) was still running then."""
        return self.started_s >= since_s or (in_flight and self.started_s + self.latency_s >= since_s)


@dataclass(frozen=True)
class Report:
    operations: int
    failed: int
    blocked: int  # over the threshold, failed or not
    slowest_s: float
    errors: dict[str, int] = field(default_factory=dict)  # error class -> count

    def row(self) -> list[object]:
        """The figures as a table row: operations, failed, blocked, slowest (ms)."""
        return [self.operations, self.failed, self.blocked, f"{self.slowest_s * 1000:.0f}"]


class Workload:
    """Worker threads that repeat their operation until the block ends; see the module doc."""

    def __init__(self, blocked_after_s: float = BLOCKED_AFTER_S, pause_s: float = 0.005) -> None:
        self.blocked_after_s = blocked_after_s
        self.pause_s = pause_s  # between attempts, so the workload leaves the machine some air
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._began = time.perf_counter()

    def __enter__(self) -> Workload:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def spawn(
        self, worker: str, operation: Callable[[object, int], object], connect: Callable[[], object]
    ) -> None:
        """Start a thread named `worker` that repeats `operation` on a connection from `connect`."""
        thread = threading.Thread(target=self._loop, args=(worker, operation, connect), daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait_for(self, count: int, worker: str | None = None, timeout_s: float = 30.0) -> None:
        """Block until `count` attempts (of `worker`, or of all) succeeded: the load is warm."""
        deadline = time.monotonic() + timeout_s
        while len(self.succeeded(worker)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the workload made fewer than {count} successful attempts in {timeout_s:.0f} s"
                )
            time.sleep(0.01)

    def wait_for_failures(self, count: int = 1, worker: str | None = None, timeout_s: float = 30.0) -> None:
        """Block until `count` attempts (of `worker`, or of all) failed: the fault is seen."""
        deadline = time.monotonic() + timeout_s
        while self.report(worker).failed < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the workload saw fewer than {count} failed attempts in {timeout_s:.0f} s"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def succeeded(self, worker: str | None = None) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.error is None and worker in (None, a.worker)]

    def acknowledged(self, worker: str = "write") -> list[object]:
        """The keys `worker` wrote and the server acknowledged, in order."""
        return [attempt.key for attempt in self.succeeded(worker)]

    def lost(self, found: Iterable[object], worker: str = "write") -> list[object]:
        """Acknowledged keys of `worker` that are not among `found` (what is there afterwards)."""
        present = set(found)
        return [key for key in self.acknowledged(worker) if key not in present]

    def report(self, worker: str | None = None, since_s: float = 0.0, in_flight: bool = False) -> Report:
        """Counts over the attempts of `worker` (or all) that started at or after `since_s`.

        With `in_flight`, also those still running at `since_s`: a statement sent a moment before
        a DDL took its lock can wait behind it like the ones sent after.
        """
        with self._lock:
            chosen = [a for a in self.attempts if worker in (None, a.worker) and a.covers(since_s, in_flight)]
        return Report(
            operations=len(chosen),
            failed=sum(a.error is not None for a in chosen),
            blocked=sum(a.latency_s > self.blocked_after_s for a in chosen),
            slowest_s=max((a.latency_s for a in chosen), default=0.0),
            errors=dict(Counter(a.error.split(":")[0] for a in chosen if a.error)),
        )

    def now_s(self) -> float:
        """Seconds since the workload started: mark a phase with it, then `report(since_s=...)`."""
        return time.perf_counter() - self._began

    def _loop(
        self, worker: str, operation: Callable[[object, int], object], connect: Callable[[], object]
    ) -> None:
        connection = None
        n = 0
        while not self._stop.is_set():
            started = time.perf_counter()
            key, error = None, None
            try:
                if connection is None:
                    connection = connect()
                key = operation(connection, n)
            except Exception as failure:  # every failure is data here: it is what the lesson counts
                first_line = str(failure).strip().splitlines()[0] if str(failure).strip() else ""
                error = f"{type(failure).__name__}: {first_line}"
                connection = _closed(connection)
            finished = time.perf_counter()
            with self._lock:
                self.attempts.append(Attempt(worker, started - self._began, finished - started, error, key))
            n += 1
            time.sleep(self.pause_s)
        _closed(connection)


def _closed(connection: object) -> None:
    """Close a connection, whatever state it is in, and return None to forget it."""
    if connection is not None:
        with contextlib.suppress(Exception):
            connection.close()
    return None
