"""``TaskStatus``: a handler's view of its task, with the seed's methods, its coroutine
twin ``AsyncTaskStatus`` for ``async def`` handlers, and the seed's lock helpers
(``DummyLock``, ``dbLocker``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .aio import AsyncTracker
from .client import Tracker
from .defaults import get_default_tracker
from .status import Status

__all__ = ["TaskStatus", "AsyncTaskStatus", "DummyLock", "dbLocker", "Lock"]

T = TypeVar("T")


class Lock(Protocol):
    """What ``dbLocker`` needs of a lock: ``acquire()`` and ``release()``."""

    def acquire(self) -> Any: ...

    def release(self) -> Any: ...


class DummyLock:
    """Dummy (default) lock class implementing the lock interface: does nothing.

    Every state change is one atomic script in Redis, so no lock is needed; the
    class is kept so that seed code passing locks runs unchanged.
    """

    def acquire(self) -> None:
        """Do nothing."""

    def release(self) -> None:
        """Do nothing."""


def dbLocker(dbLock: Lock | None, func: Callable[..., T], *prm: Any, **kprm: Any) -> T:  # noqa: N802, N803
    """Call ``func(*prm, **kprm)`` between ``dbLock.acquire()`` and ``dbLock.release()``;
    returns what ``func`` returns (seed function)."""
    lock = dbLock if dbLock is not None else DummyLock()
    lock.acquire()
    try:
        return func(*prm, **kprm)
    finally:
        lock.release()


class _Constants:
    UNDEFINED = Status.UNDEFINED
    ACCEPTED = Status.ACCEPTED
    SCHEDULED = Status.SCHEDULED
    RUNNING = Status.RUNNING
    PAUSED = Status.PAUSED
    FINISHED = Status.FINISHED
    FAILED = Status.FAILED


class TaskStatus(_Constants):
    """The interface a handler gets to its task: ``handler(task_status, input)``.

    Built by hand, ``TaskStatus(task_id)`` acts on the default tracker and unfenced,
    as in the seed. The worker hands each run one bound to that run
    (``tracker`` and ``token``): its status and response calls then fail with
    :class:`~redis_atp.StaleTask` once the run has lost the task.
    """

    def __init__(self, task_id: int, dbLock: Lock | None = None, *,  # noqa: N803
                 tracker: Tracker | None = None, token: int | None = None) -> None:
        self.task_id = task_id
        self.dbLock = dbLock if dbLock is not None else DummyLock()
        self.token = token
        self._tracker = tracker

    @property
    def tracker(self) -> Tracker:
        """The tracker this task lives in (the default tracker when built by hand)."""
        if self._tracker is None:
            self._tracker = get_default_tracker()
        return self._tracker

    def __repr__(self) -> str:
        return f"<TaskStatus task_id={self.task_id} token={self.token}>"

    @property
    def cancelled(self) -> bool:
        """Whether the task was cancelled (one read): a long handler may look between steps."""
        return self.tracker.is_cancelled(self.task_id)

    def getInfo(self) -> tuple[str, str, Status, str]:  # noqa: N802
        """``(type, identifier, code, name)`` of the task."""
        return dbLocker(self.dbLock, self.tracker.get_task_info, self.task_id)

    def getIdentifier(self) -> tuple[str, str]:  # noqa: N802
        """``(type, identifier)`` of the task."""
        return dbLocker(self.dbLock, self.tracker.get_task_identifier, self.task_id)

    def getStatus(self) -> tuple[Status, str]:  # noqa: N802
        """``(code, name)`` of the task's status."""
        return dbLocker(self.dbLock, self.tracker.get_task_status, self.task_id)

    def setSuccess(self, message: str = "") -> None:  # noqa: N802
        """Mark the task FINISHED."""
        dbLocker(self.dbLock, self.tracker.stop_task_success, self.task_id, message, token=self.token)

    def setFailure(self, message: str = "") -> None:  # noqa: N802
        """Mark the task FAILED."""
        dbLocker(self.dbLock, self.tracker.stop_task_failure, self.task_id, message, token=self.token)

    def setPaused(self, message: str = "") -> None:  # noqa: N802
        """Mark the task PAUSED (refreshes its deadline)."""
        dbLocker(self.dbLock, self.tracker.pause_task, self.task_id, message, token=self.token)

    def setRunning(self, message: str = "") -> None:  # noqa: N802
        """Mark the task RUNNING (refreshes its deadline: a long handler's progress report)."""
        dbLocker(self.dbLock, self.tracker.resume_task, self.task_id, message, token=self.token)

    def storeResponse(self, response: str | bytes, mimeType: str = "text/xml") -> None:  # noqa: N802, N803
        """Store (or replace) the task's response and its MIME type."""
        dbLocker(self.dbLock, self.tracker.set_task_response, self.task_id, response, mimeType,
                 token=self.token)


class AsyncTaskStatus(_Constants):
    """What an ``async def`` handler gets: :class:`TaskStatus`'s methods as coroutines
    (``await task_status.setRunning("half way")``), bound to its run on an
    :class:`~redis_atp.aio.AsyncTracker`. No lock: every state change is one script."""

    def __init__(self, task_id: int, *, tracker: AsyncTracker, token: int | None = None) -> None:
        self.task_id = task_id
        self.token = token
        self.tracker = tracker

    def __repr__(self) -> str:
        return f"<AsyncTaskStatus task_id={self.task_id} token={self.token}>"

    async def is_cancelled(self) -> bool:
        """Whether the task was cancelled (one read); ``TaskStatus.cancelled`` as a coroutine."""
        return await self.tracker.is_cancelled(self.task_id)

    async def getInfo(self) -> tuple[str, str, Status, str]:  # noqa: N802
        """``(type, identifier, code, name)`` of the task."""
        return await self.tracker.get_task_info(self.task_id)

    async def getIdentifier(self) -> tuple[str, str]:  # noqa: N802
        """``(type, identifier)`` of the task."""
        return await self.tracker.get_task_identifier(self.task_id)

    async def getStatus(self) -> tuple[Status, str]:  # noqa: N802
        """``(code, name)`` of the task's status."""
        return await self.tracker.get_task_status(self.task_id)

    async def setSuccess(self, message: str = "") -> None:  # noqa: N802
        """Mark the task FINISHED."""
        await self.tracker.stop_task_success(self.task_id, message, token=self.token)

    async def setFailure(self, message: str = "") -> None:  # noqa: N802
        """Mark the task FAILED."""
        await self.tracker.stop_task_failure(self.task_id, message, token=self.token)

    async def setPaused(self, message: str = "") -> None:  # noqa: N802
        """Mark the task PAUSED (refreshes its deadline)."""
        await self.tracker.pause_task(self.task_id, message, token=self.token)

    async def setRunning(self, message: str = "") -> None:  # noqa: N802
        """Mark the task RUNNING (refreshes its deadline: a long handler's progress report)."""
        await self.tracker.resume_task(self.task_id, message, token=self.token)

    async def storeResponse(self, response: str | bytes, mimeType: str = "text/xml") -> None:  # noqa: N802, N803
        """Store (or replace) the task's response and its MIME type."""
        await self.tracker.set_task_response(self.task_id, response, mimeType, token=self.token)
