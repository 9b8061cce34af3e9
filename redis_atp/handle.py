"""A task handle: ``tracker.task(task_id)``, a thin view over the tracker's calls by id, in
the manner of RQ's ``Job`` and Celery's ``AsyncResult``. Nothing is cached: every
attribute is a call to Redis (awaited on the async face: ``await handle.status``)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from .models import LogRecord
from .protocol import reads
from .protocol import tasks as task_ops
from .status import Status

if TYPE_CHECKING:
    from .aio import AsyncTracker
    from .client import Tracker

__all__ = ["TaskHandle", "AsyncTaskHandle"]

Response = tuple[str | bytes | None, str | None]


class TaskHandle:
    """Task ``task_id`` of a :class:`~redis_atp.Tracker`."""

    __slots__ = ("tracker", "task_id")

    def __init__(self, tracker: Tracker, task_id: int) -> None:
        self.tracker = tracker
        self.task_id = task_id

    @property
    def status(self) -> tuple[Status, str]:
        """``(code, name)`` now. Raises :class:`~redis_atp.TaskNotFound`."""
        return self.tracker.get_task_status(self.task_id)

    @property
    def log(self) -> list[LogRecord]:
        """The task's log, oldest first."""
        return self.tracker.io.run(reads.get_task_log_by_id(self.tracker.ns, self.task_id))

    @property
    def response(self) -> Response:
        """``(response, mime_type)``, or ``(None, None)`` while it has none."""
        return self.tracker.io.run(reads.get_task_response_by_id(self.tracker.ns, self.task_id))

    def wait(self, timeout: float | None = None) -> tuple[Status, str]:
        """Block until the task ends (see :meth:`~redis_atp.Tracker.wait_task`)."""
        return self.tracker.wait_task(self.task_id, timeout)

    def cancel(self, message: str = "") -> bool:
        """Cancel the task (see :meth:`~redis_atp.Tracker.cancel_task`)."""
        return self.tracker.cancel_task(self.task_id, message)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_id} of {self.tracker!r}>"


class AsyncTaskHandle:
    """Task ``task_id`` of an :class:`~redis_atp.aio.AsyncTracker`: the same attributes,
    each awaited (``await handle.status``, ``await handle.wait(5)``)."""

    __slots__ = ("tracker", "task_id")

    def __init__(self, tracker: AsyncTracker, task_id: int) -> None:
        self.tracker = tracker
        self.task_id = task_id

    @property
    def status(self) -> Awaitable[tuple[Status, str]]:
        return self.tracker.get_task_status(self.task_id)

    @property
    def log(self) -> Awaitable[list[LogRecord]]:
        return self.tracker.io.run(reads.get_task_log_by_id(self.tracker.ns, self.task_id))

    @property
    def response(self) -> Awaitable[Response]:
        return self.tracker.io.run(reads.get_task_response_by_id(self.tracker.ns, self.task_id))

    def wait(self, timeout: float | None = None) -> Awaitable[tuple[Status, str]]:
        return self.tracker.io.run(task_ops.wait_task(self.tracker.ns, self.task_id, timeout))

    def cancel(self, message: str = "") -> Awaitable[bool]:
        return self.tracker.cancel_task(self.task_id, message)

    def __repr__(self) -> str:
        return f"<AsyncTaskHandle {self.task_id} of {self.tracker!r}>"
