"""What the worker does when Redis cannot serve: which errors are transient, backoff,
and executors that retry a handler's calls across them."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import redis

from ..io_async import AsyncIO
from ..io_sync import SyncIO
from ..protocol.requests import Request

__all__ = ["TRANSIENT", "Backoff", "retry_transient", "log_redis_error", "RetryingIO", "AsyncRetryingIO",
           "HANDLER_RETRY_FOR"]

log = logging.getLogger("redis_atp.worker")

#: Errors that mean "Redis cannot serve for now" and did nothing: unreachable, a
#: read-only replica after a failover, loading its data, or refusing writes under
#: ``maxmemory`` (a script refused that way stops at its first write): back off and
#: retry. None of them is ever the reason a task ends FAILED.
TRANSIENT: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
    redis.exceptions.OutOfMemoryError, redis.exceptions.BusyLoadingError,
)
#: Seconds a handler's status or response call is retried across connection failures.
HANDLER_RETRY_FOR = 30.0


class Backoff:
    """Exponential backoff with jitter: 50 ms doubling up to 5 s."""

    def __init__(self) -> None:
        self.delay = 0.05

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 5.0)
        return delay * random.uniform(0.5, 1.5)

    def reset(self) -> None:
        self.delay = 0.05


class Deadline:
    """Backoff delays until ``seconds`` have passed: :meth:`delay_after` gives the next
    one, or raises the error when waiting it would pass the deadline."""

    def __init__(self, seconds: float, what: str) -> None:
        self.backoff, self.give_up, self.what = Backoff(), time.monotonic() + seconds, what

    def delay_after(self, exc: BaseException) -> float:
        delay = self.backoff.next()
        if time.monotonic() + delay > self.give_up:
            raise exc
        log_redis_error(self.what, exc, delay)
        return delay


def retry_transient(action: Callable[[], Any], seconds: float, what: str) -> Any:
    """``action()``, retried with :class:`Backoff` across ``TRANSIENT`` errors for up to
    ``seconds``; then the last error is raised."""
    deadline = Deadline(seconds, what)
    while True:
        try:
            return action()
        except TRANSIENT as exc:
            time.sleep(deadline.delay_after(exc))


def log_redis_error(what: str, exc: BaseException, delay: float) -> None:
    """A connection failure is routine (a warning); any other Redis error (OOM refusal,
    READONLY, a script error) is logged with its traceback."""
    if isinstance(exc, TRANSIENT):
        log.warning("%s: redis unavailable (%s: %s); retrying in %.2fs", what, type(exc).__name__, exc, delay)
    else:
        log.error("%s: %s: %s; retrying in %.2fs", what, type(exc).__name__, exc, delay,
                  exc_info=not isinstance(exc, redis.RedisError))


def _gave_up(exc: BaseException) -> BaseException:
    """Mark an error the handler's calls could not get past: its task is handed back
    uncharged (see ``WorkerProcess``), never failed over a connection error."""
    exc.redis_atp_gave_up = True  # type: ignore[attr-defined]
    return exc


class RetryingIO(SyncIO):
    """The executor behind a handler's ``TaskStatus``: each request retried across
    ``TRANSIENT`` errors for up to ``HANDLER_RETRY_FOR`` seconds. What a ``TaskStatus``
    sends is safe to repeat: a read, a progress record, a response, or the run ending
    the task it already ended (a no-op under the run's token)."""

    __slots__ = ()

    def execute(self, request: Request) -> Any:
        deadline = Deadline(HANDLER_RETRY_FOR, f"handler call {request!r:.60}")
        while True:
            try:
                return super().execute(request)
            except TRANSIENT as exc:
                time.sleep(deadline.delay_after(_gave_up(exc)))


class AsyncRetryingIO(AsyncIO):
    """:class:`RetryingIO` for an ``async def`` handler's ``AsyncTaskStatus``."""

    __slots__ = ()

    async def execute(self, request: Request) -> Any:
        deadline = Deadline(HANDLER_RETRY_FOR, f"handler call {request!r:.60}")
        while True:
            try:
                return await super().execute(request)
            except TRANSIENT as exc:
                await asyncio.sleep(deadline.delay_after(_gave_up(exc)))
