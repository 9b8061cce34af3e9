"""The exception tree, and the one place where script refusal codes become exceptions.

::

    RedisATPError
     ├── QueueException                 (the seed's queue errors)
     │    ├── QueueEmpty                nothing to dequeue (or a blocking wait ran out)
     │    └── QueueFull                 the queue holds max_queue_size tasks
     ├── TaskNotFound      (LookupError) no task with that id / (type, identifier)
     ├── TaskTypeNotFound  (LookupError) no task type of that name
     ├── DuplicateTask     (ValueError)  the (type, identifier) pair already exists
     ├── InvalidInput      (ValueError)  bad name, identifier, input or response; too large
     ├── InvalidTransition               the task's current status does not allow the change
     ├── StaleTask                       a run that lost its task tries to change it (fencing)
     │    └── TaskCancelled              ... because the task was cancelled
     └── TaskTypeInUse                   unregistering a type whose tasks still exist

Lua scripts refuse with a negative integer (:class:`Code`), optionally followed
by details; :func:`raise_for_code` turns it into one of the exceptions above.

A handler may raise :class:`Retry` (run again after a delay, from the type's
``retries`` budget) or :class:`Fail` (FAILED at once, no retry); they are
signals to the worker, not errors of this library.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn

from .status import Status

__all__ = [
    "RedisATPError",
    "QueueException",
    "QueueEmpty",
    "QueueFull",
    "TaskNotFound",
    "TaskTypeNotFound",
    "DuplicateTask",
    "InvalidInput",
    "InvalidTransition",
    "StaleTask",
    "TaskTypeInUse",
    "Code",
    "raise_for_code",
]


class RedisATPError(Exception):
    """Base class of every error this package raises."""


class QueueException(RedisATPError):
    """Task queue base exception (seed name)."""


class QueueEmpty(QueueException):
    """No task can be taken from the queue (also when a blocking wait runs out)."""


class QueueFull(QueueException):
    """The queue holds ``max_queue_size`` tasks; nothing was enqueued."""


class TaskNotFound(RedisATPError, LookupError):
    """No task has that id, or that ``(type, identifier)`` pair."""


class TaskTypeNotFound(RedisATPError, LookupError):
    """No task type is registered under that name."""


class DuplicateTask(RedisATPError, ValueError):
    """A task with that ``(type, identifier)`` pair already exists; nothing was written."""


class InvalidInput(RedisATPError, ValueError):
    """A name, identifier, input or response is malformed or too large; nothing was written."""


class InvalidTransition(RedisATPError):
    """The task's current status does not allow this change (e.g. pausing a queued task)."""


class StaleTask(RedisATPError):
    """This run no longer owns its task: zombie recovery, an operator or a newer run took it.

    Raised by status and response calls made through a run's fenced
    :class:`~redis_atp.TaskStatus`; the task's new run is left untouched.
    """


class TaskCancelled(StaleTask):
    """This run's task was cancelled (``cancel_task``): raised by the run's next status or
    response call, so a handler that calls back stops there. A :class:`StaleTask`."""


class TaskTypeInUse(RedisATPError):
    """``unregister_task_type`` without ``force`` while tasks of the type exist."""


class Retry(Exception):  # noqa: N818 - a handler's request, named as RQ's, Dramatiq's and Celery's
    """Raised by a handler: run the task again after ``delay`` seconds (``None``: the
    type's backoff), if the type's ``retries`` budget has one left; else it ends FAILED."""

    def __init__(self, delay: float | None = None, message: str = "") -> None:
        super().__init__(message or (f"retry asked in {delay} s" if delay is not None else "retry asked"))
        self.delay = delay


class Fail(Exception):  # noqa: N818 - a handler's request
    """Raised by a handler: the task ends FAILED with this message, without a retry."""


class Code(IntEnum):
    """Refusal codes returned by the Lua scripts (as ``E_<NAME>`` in Lua)."""

    TASK_NOT_FOUND = -1
    TYPE_NOT_FOUND = -2
    DUPLICATE = -3
    QUEUE_FULL = -4
    STALE = -5
    INVALID_TRANSITION = -6
    TYPE_IN_USE = -7
    COLLISION = -8


def _status_name(raw: object) -> str:
    try:
        return Status(int(str(raw))).name
    except ValueError:
        return "UNKNOWN"


def error_for_code(code: int, subject: str, details: list[object] | None = None) -> RedisATPError:
    """The exception for script refusal ``code`` about ``subject`` (e.g. ``"task 42"``)."""
    d = details or []
    c = Code(code)
    if c is Code.TASK_NOT_FOUND:
        return TaskNotFound(f"{subject} does not exist")
    if c is Code.TYPE_NOT_FOUND:
        return TaskTypeNotFound(f"{subject}: task type is not registered")
    if c is Code.DUPLICATE:
        return DuplicateTask(f"{subject} already exists")
    if c is Code.COLLISION:
        return DuplicateTask(f"{subject}: its key digest collides with another task's; nothing written")
    if c is Code.QUEUE_FULL:
        return QueueFull(f"{subject}: the queue is full")
    if c is Code.STALE:
        run, status, cancelled = (d + [None, None, None])[:3]
        if cancelled == 1:
            return TaskCancelled(f"{subject}: the task was cancelled")
        return StaleTask(
            f"{subject}: this run no longer owns the task "
            f"(the task is at run {run}, status {_status_name(status)})"
        )
    if c is Code.INVALID_TRANSITION:
        status = d[0] if d else None
        return InvalidTransition(f"{subject}: not allowed while the task is {_status_name(status)}")
    return TaskTypeInUse(f"{subject}: tasks of this type still exist (force=True or --force deletes them)")


def raise_for_code(code: int, subject: str, details: list[object] | None = None) -> NoReturn:
    """Raise the exception for script refusal ``code`` (see :func:`error_for_code`)."""
    raise error_for_code(code, subject, details)
