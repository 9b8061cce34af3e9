"""The event loop of a worker process, for ``async def`` handlers.

A slot that claims a task whose handler is a coroutine function hands the run to
this loop and goes on claiming; up to ``concurrency`` such runs are awaited at
once: while the loop is full, slots claim nothing (back-pressure, so no task
sits claimed waiting for room; sync tasks wait too). The run stays in its
slot's owned set, so recovery, reconciliation and shutdown treat it as the
slot's own: a warm shutdown lets it finish, a cold one puts it back, a killed
process has it recovered by the supervisor. The handler gets an
:class:`~redis_atp.AsyncTaskStatus` on a ``redis.asyncio`` client of the loop's
own; the run's end is recorded through the worker's sync connection, in a
thread, with the same retries as a slot's. The loop starts with the first such
run: a fleet of sync handlers never has one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..aio import AsyncTracker
from ..connection import client_from_url
from ..models import StartedTask
from ..protocol import tasks as task_ops
from ..status import Status
from ..taskstatus import AsyncTaskStatus
from .config import WorkerConfig, worker_client_options
from .retry import AsyncRetryingIO
from .runs import Ended, as_response

__all__ = ["AsyncHandlers", "Ender"]

log = logging.getLogger("redis_atp.worker")


class Ender(Protocol):
    """What the loop needs of its worker process: how a raised run ends, and recording
    an end (both block: the loop calls them in a thread)."""

    id: str

    def failed(self, task: StartedTask, exc: BaseException, started: float) -> Ended | None: ...

    def end(self, ended: Ended) -> None: ...


class AsyncHandlers:
    """The worker process's event loop thread and the async runs in flight on it, by slot."""

    def __init__(self, process: Ender, config: WorkerConfig) -> None:
        self.process = process
        self.config = config
        self.capacity = max(1, config.concurrency)
        self._lock = threading.Condition()
        self._runs: dict[str, set[int]] = {}
        self._count = 0
        self._futures: dict[int, tuple[str, StartedTask, Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tracker: AsyncTracker | None = None

    def in_flight(self, owner: str) -> list[int]:
        """Ids of ``owner``'s runs on the loop."""
        with self._lock:
            return sorted(self._runs.get(owner, ()))

    def wait_for_room(self, stop: threading.Event) -> None:
        """Return once the loop has room for one more run (at once if it has none yet),
        or ``stop`` is set."""
        if self._count < self.capacity:  # the common case, without the lock (submit checks again)
            return
        with self._lock:
            while self._count >= self.capacity and not stop.is_set():
                self._lock.wait(0.2)

    def submit(self, owner: str, task: StartedTask, handler: Callable[..., Any], data: Any, started: float,
               stop: threading.Event) -> None:
        """Start ``handler`` for ``task`` on the loop once there is room (slots racing for
        the last place). If ``stop`` ends the wait first, the task is left to the slot's
        release at shutdown, which puts it back."""
        with self._lock:
            while self._count >= self.capacity:
                if stop.is_set():
                    return
                self._lock.wait(0.2)
            self._count += 1
            self._runs.setdefault(owner, set()).add(task.task_id)
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._run(task, handler, data, started),
                                                                self._ensure_loop())
        with self._lock:
            self._futures[task.task_id] = (owner, task, future)
        future.add_done_callback(lambda f: self._done(owner, task, f))

    def running(self) -> list[tuple[str, StartedTask]]:
        """``(owner, task)`` of each run on the loop."""
        with self._lock:
            return [(owner, task) for owner, task, _ in self._futures.values()]

    def cancel(self, task_id: int) -> bool:
        """Cancel the coroutine of run ``task_id`` on the loop; False if it is not one."""
        with self._lock:
            entry = self._futures.get(task_id)
        return entry is not None and entry[2].cancel()

    def drain(self, owner: str, cold: threading.Event) -> None:
        """Wait until ``owner`` has no run on the loop, or a cold shutdown."""
        with self._lock:
            while self._runs.get(owner) and not cold.is_set():
                self._lock.wait(0.2)

    def close(self) -> None:
        """Stop the loop (after a warm shutdown drained it) and close its client."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._tracker is not None:
            asyncio.run_coroutine_threadsafe(self._tracker.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    # ------------------------------------------------------------------ on the loop
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.process.id}/aio",
                                                daemon=True)
                self._thread.start()
            return self._loop

    def _async_tracker(self) -> AsyncTracker:
        if self._tracker is None:
            c = self.config
            client = client_from_url(c.url, asyncio=True, retry=Retry(NoBackoff(), 0), **worker_client_options(c))
            self._tracker = AsyncTracker(client, c.namespace, shards=c.shards, serializer=c.serializer)
            self._tracker.io = AsyncRetryingIO(client)
            self._tracker._owns_client = True
        return self._tracker

    async def _run(self, task: StartedTask, handler: Callable[..., Any], data: Any, started: float) -> None:
        process = self.process
        tracker = self._async_tracker()
        ts = AsyncTaskStatus(task.task_id, tracker=tracker, token=task.token)
        try:
            result = await handler(ts, data)
            if result is not None:
                await tracker.io.run(task_ops.set_task_response(tracker.ns, task.task_id, *as_response(result),
                                                               task.token, if_absent=True))
        except BaseException as exc:  # noqa: BLE001 - a handler's failure is the task's, not the worker's
            ended = await asyncio.to_thread(process.failed, task, exc, started)
        else:
            ended = Ended(task, Status.FINISHED, "", started)
        if ended is not None:
            await asyncio.to_thread(process.end, ended)

    def _done(self, owner: str, task: StartedTask, future: Future[None]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None:  # a bug of ours, not the handler's (that one is the task's end)
            log.error("async run of task id=%d type=%s stopped unexpectedly", task.task_id, task.type,
                      exc_info=(type(exc), exc, exc.__traceback__))
        with self._lock:
            self._runs.get(owner, set()).discard(task.task_id)
            self._futures.pop(task.task_id, None)
            self._count -= 1
            self._lock.notify_all()
