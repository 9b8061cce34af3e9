"""The seed's module API (EOxServer ATP's ``tracker`` module) on a default :class:`Tracker`.

Code written against the seed runs after changing only its import line::

    from redis_atp import tracker
    tracker.registerTaskType("render", "myapp.tasks.render", timeout=600)
    task_id = tracker.enqueueTask("render", "job-17", {"scale": 2})

The default tracker comes from :func:`configure`, or, unconfigured, from the
environment: ``REDIS_ATP_URL`` (default ``redis://127.0.0.1:6379/0``) and
``REDIS_ATP_NAMESPACE`` (default ``atp``). Every function is a one-line
delegation to the :class:`Tracker` method of the same name in snake_case.
"""
# ruff: noqa: N802, N803
from __future__ import annotations

from datetime import datetime
from typing import Any

from .client import Tracker
from .defaults import configure, get_default_tracker
from .errors import (
    DuplicateTask,
    Fail,
    InvalidInput,
    InvalidTransition,
    QueueEmpty,
    QueueException,
    QueueFull,
    RedisATPError,
    Retry,
    StaleTask,
    TaskCancelled,
    TaskNotFound,
    TaskTypeInUse,
    TaskTypeNotFound,
)
from .keys import DEFAULT_QUEUE_LIMIT
from .models import LogRecord
from .status import STATUS2TEXT, TEXT2STATUS, Status
from .taskstatus import DummyLock, TaskStatus, dbLocker
from .validate import Handler

__all__ = [
    "configure", "get_default_tracker", "MAX_QUEUE_SIZE",
    "dummyHandler", "dbLocker", "DummyLock", "TaskStatus",
    "registerTaskType", "unregisterTaskType", "getQueueSize", "getMaxQueueSize",
    "getTaskInfo", "getTaskIdentifier", "getTaskStatus", "getTaskStatusByIdentifier",
    "deleteTask", "deleteTaskByIdentifier", "enqueueTask", "reenqueueTask", "dequeueTask",
    "startTask", "stopTaskSuccessIfNotFinished", "stopTaskSuccess", "stopTaskFailure",
    "pauseTask", "resumeTask", "setTaskResponse", "getTaskResponse", "getTaskLog",
    "reenqueueZombieTasks", "deleteRetiredTasks", "cancelTask",
    "Tracker", "Status", "STATUS2TEXT", "TEXT2STATUS",
    "RedisATPError", "QueueException", "QueueEmpty", "QueueFull", "TaskNotFound",
    "TaskTypeNotFound", "DuplicateTask", "InvalidInput", "InvalidTransition", "StaleTask",
    "TaskTypeInUse", "TaskCancelled", "Retry", "Fail",
]

#: The seed's default queue limit, which a namespace's first registration records; the
#: limit in force is the namespace's (``getMaxQueueSize()``).
MAX_QUEUE_SIZE = DEFAULT_QUEUE_LIMIT

def dummyHandler(taskStatus: TaskStatus, input: Any) -> None:
    """Dummy ATP handler: does nothing. The prototype of a handler, which receives
    the task's :class:`TaskStatus` and the input given at enqueue."""


def registerTaskType(identifier: str, handler: Handler, timeout: float = 3600,
                     timeret: float = -1, maxrestart: int = 2, *, retries: int = 0, retry_delay: float = 1.0,
                     retry_backoff: float = 2.0, retry_max_delay: float = 3600,
                     hard_timeout: float | None = None) -> None:
    """Register a new task type, or update an existing one (the keyword-only retry
    settings: see :meth:`Tracker.register_task_type`)."""
    get_default_tracker().register_task_type(identifier, handler, timeout, timeret, maxrestart, retries=retries,
                                             retry_delay=retry_delay, retry_backoff=retry_backoff,
                                             retry_max_delay=retry_max_delay, hard_timeout=hard_timeout)


def unregisterTaskType(identifier: str, force: bool = False) -> None:
    """Remove a task type; with ``force``, its tasks too."""
    get_default_tracker().unregister_task_type(identifier, force)


def getQueueSize() -> int:
    """Number of tasks waiting in the queue."""
    return get_default_tracker().get_queue_size()


def getMaxQueueSize() -> int:
    """The queue size limit."""
    return get_default_tracker().get_max_queue_size()


def getTaskInfo(task_id: int) -> tuple[str, str, Status, str]:
    """``(type, identifier, code, name)`` of a task."""
    return get_default_tracker().get_task_info(task_id)


def getTaskIdentifier(task_id: int) -> tuple[str, str]:
    """``(type, identifier)`` of a task."""
    return get_default_tracker().get_task_identifier(task_id)


def getTaskStatus(task_id: int) -> tuple[Status, str]:
    """``(code, name)`` of a task's status."""
    return get_default_tracker().get_task_status(task_id)


def getTaskStatusByIdentifier(type: str, identifier: str) -> tuple[Status, str]:
    """``(code, name)`` of the status of task ``(type, identifier)``."""
    return get_default_tracker().get_task_status_by_identifier(type, identifier)


def deleteTask(task_id: int) -> None:
    """Delete a task."""
    get_default_tracker().delete_task(task_id)


def deleteTaskByIdentifier(type: str, identifier: str) -> None:
    """Delete task ``(type, identifier)``."""
    get_default_tracker().delete_task_by_identifier(type, identifier)


def enqueueTask(type: str, identifier: str, input: Any, message: str = "", *, delay: float | None = None,
                eta: datetime | float | None = None, priority: int = 0) -> int:
    """Create and enqueue a task (ACCEPTED); returns its id. ``QueueFull`` when full.
    ``delay``/``eta``: hold it until then; ``priority``: see :meth:`Tracker.enqueue_task`."""
    return get_default_tracker().enqueue_task(type, identifier, input, message, delay=delay, eta=eta,
                                              priority=priority)


def reenqueueTask(task_id: int, message: str = "") -> None:
    """Put a task back in the queue (ACCEPTED), ignoring the size limit."""
    get_default_tracker().reenqueue_task(task_id, message)


def cancelTask(task_id: int, message: str = "") -> bool:
    """Cancel a task; True if it ended it, False if it had ended already."""
    return get_default_tracker().cancel_task(task_id, message)


def dequeueTask(serverID: str, message: str = "", *, count: int = 1,
                timeout: float | None = None) -> list[int]:
    """Take tasks from the queue (SCHEDULED); returns their ids. ``QueueEmpty`` when empty."""
    return get_default_tracker().dequeue_task(serverID, message, count=count, timeout=timeout)


def startTask(task_id: int, message: str = "") -> tuple[str, str, str, Any]:
    """Mark a task RUNNING; returns ``(type, identifier, handler, input)``."""
    return get_default_tracker().start_task(task_id, message)


def stopTaskSuccessIfNotFinished(task_id: int, message: str = "") -> bool:
    """Mark a task FINISHED unless it is FINISHED or FAILED already."""
    return get_default_tracker().stop_task_success_if_not_finished(task_id, message)


def stopTaskSuccess(task_id: int, message: str = "") -> None:
    """Mark a task FINISHED."""
    get_default_tracker().stop_task_success(task_id, message)


def stopTaskFailure(task_id: int, message: str = "") -> None:
    """Mark a task FAILED."""
    get_default_tracker().stop_task_failure(task_id, message)


def pauseTask(task_id: int, message: str = "") -> None:
    """Mark a task PAUSED."""
    get_default_tracker().pause_task(task_id, message)


def resumeTask(task_id: int, message: str = "") -> None:
    """Mark a task RUNNING again."""
    get_default_tracker().resume_task(task_id, message)


def setTaskResponse(task_id: int, response: str | bytes, mimeType: str = "text/xml") -> None:
    """Store (or replace) a task's response and MIME type."""
    get_default_tracker().set_task_response(task_id, response, mimeType)


def getTaskResponse(type: str, identifier: str) -> tuple[str | bytes | None, str | None]:
    """``(response, mimeType)`` of task ``(type, identifier)``."""
    return get_default_tracker().get_task_response(type, identifier)


def getTaskLog(type: str, identifier: str) -> list[LogRecord]:
    """The log of task ``(type, identifier)``, oldest first."""
    return get_default_tracker().get_task_log(type, identifier)


def reenqueueZombieTasks(message: str = "") -> list[tuple[int, str]]:
    """Re-enqueue (or fail) tasks past their deadline; returns ``(id, "type::identifier")``."""
    return get_default_tracker().reenqueue_zombie_tasks(message)


def deleteRetiredTasks() -> list[tuple[int, str]]:
    """Remove finished tasks past their retention time; returns ``(id, "type::identifier")``."""
    return get_default_tracker().delete_retired_tasks()
