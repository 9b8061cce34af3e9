"""A task handle: ``tracker.task(task_id)``, a thin view over the tracker's calls by id, in
the manner of RQ's ``Job`` and Celery's ``AsyncResult``. Nothing is cached: every
attribute is a call to Redis (awaited on the async face: ``await handle.status``)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from .models import LogRecord
from .protocol import reads
from .protocol import tasks as task_ops
from .protocol.namespace import Namespace
from .protocol.requests import Op
from .status import Status

__all__ = ["TaskHandle", "AsyncTaskHandle"]

Response = tuple[str | bytes | None, str | None]


class _Runs(Protocol):
    """What a handle needs of its tracker: the namespace and the face's executor."""

    ns: Namespace
    io: Any


class _Handle:
    """Task ``task_id`` of a tracker, and the operation behind each attribute."""

    __slots__ = ("tracker", "task_id")

    def __init__(self, tracker: _Runs, task_id: int) -> None:
        self.tracker = tracker
        self.task_id = task_id

    def _status(self) -> Op[tuple[Status, str]]:
        return reads.get_task_status(self.tracker.ns, self.task_id)

    def _log(self) -> Op[list[LogRecord]]:
        return reads.get_task_log_by_id(self.tracker.ns, self.task_id)

    def _response(self) -> Op[Response]:
        return reads.get_task_response_by_id(self.tracker.ns, self.task_id)

    def _wait(self, timeout: float | None) -> Op[tuple[Status, str]]:
        return task_ops.wait_task(self.tracker.ns, self.task_id, timeout)

    def _cancel(self, message: str) -> Op[bool]:
        return task_ops.cancel_task(self.tracker.ns, self.task_id, message)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id} of {self.tracker!r}>"


class TaskHandle(_Handle):
    """Task ``task_id`` of a :class:`~redis_atp.Tracker`."""

    __slots__ = ()

    @property
    def status(self) -> tuple[Status, str]:
        """``(code, name)`` now. Raises :class:`~redis_atp.TaskNotFound`."""
        result: tuple[Status, str] = self.tracker.io.run(self._status())
        return result

    @property
    def log(self) -> list[LogRecord]:
        """The task's log, oldest first."""
        result: list[LogRecord] = self.tracker.io.run(self._log())
        return result

    @property
    def response(self) -> Response:
        """``(response, mime_type)``, or ``(None, None)`` while it has none."""
        result: Response = self.tracker.io.run(self._response())
        return result

    def wait(self, timeout: float | None = None) -> tuple[Status, str]:
        """Block until the task ends (see :meth:`~redis_atp.Tracker.wait_task`)."""
        result: tuple[Status, str] = self.tracker.io.run(self._wait(timeout))
        return result

    def cancel(self, message: str = "") -> bool:
        """Cancel the task (see :meth:`~redis_atp.Tracker.cancel_task`)."""
        result: bool = self.tracker.io.run(self._cancel(message))
        return result


class AsyncTaskHandle(_Handle):
    """Task ``task_id`` of an :class:`~redis_atp.aio.AsyncTracker`: the same attributes,
    each awaited (``await handle.status``, ``await handle.wait(5)``)."""

    __slots__ = ()

    @property
    def status(self) -> Awaitable[tuple[Status, str]]:
        result: Awaitable[tuple[Status, str]] = self.tracker.io.run(self._status())
        return result

    @property
    def log(self) -> Awaitable[list[LogRecord]]:
        result: Awaitable[list[LogRecord]] = self.tracker.io.run(self._log())
        return result

    @property
    def response(self) -> Awaitable[Response]:
        result: Awaitable[Response] = self.tracker.io.run(self._response())
        return result

    def wait(self, timeout: float | None = None) -> Awaitable[tuple[Status, str]]:
        result: Awaitable[tuple[Status, str]] = self.tracker.io.run(self._wait(timeout))
        return result

    def cancel(self, message: str = "") -> Awaitable[bool]:
        result: Awaitable[bool] = self.tracker.io.run(self._cancel(message))
        return result
