"""What the tracker returns besides plain tuples: task types, claims, started tasks, log
records. Plain data: nothing here talks to Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .status import Status

__all__ = ["TaskType", "Claim", "StartedTask", "Schedule", "TaskInfo", "Event", "LogRecord", "parse_record",
           "epoch_ms", "utc_from_ms"]

#: ``(time, (code, name), message)``, as ``getTaskLog`` returns them.
LogRecord = tuple[datetime, tuple[Status, str], str]


@dataclass(frozen=True)
class TaskType:
    """A registered task type: its settings and live counters (summed over shards)."""

    name: str
    handler: str
    timeout: float
    timeret: float
    maxrestart: int
    #: Tasks now ACCEPTED, SCHEDULED, RUNNING, PAUSED (exact), and transitions ever
    #: made into FINISHED and FAILED (``finished_total``, ``failed_total``).
    counts: dict[str, int]
    #: A failing handler's task is retried this many times, after
    #: ``min(retry_max_delay, retry_delay * retry_backoff ** n)`` seconds with full jitter.
    retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 3600.0
    #: A run older than this (seconds) is killed by its worker and recovered as a
    #: time-out (against ``maxrestart``); None: no limit.
    hard_timeout: float | None = None


@dataclass(frozen=True)
class Claim:
    """A task claimed by one run (``Tracker.claim``): its id and the run's fencing token,
    to pass as ``token=`` (or to a ``TaskStatus``) so that calls fail with
    :class:`~redis_atp.StaleTask` once the run has lost the task."""

    task_id: int
    token: int


@dataclass(frozen=True)
class StartedTask:
    """A task claimed and started in one call (the worker's ``advance``): RUNNING under
    the run ``token``. ``raw_input`` is the stored input, decoded by whoever runs it, so
    a task whose input cannot be decoded still arrives, and fails on its own."""

    task_id: int
    token: int
    type: str
    identifier: str
    handler: str
    raw_input: bytes | None


@dataclass(frozen=True)
class Schedule:
    """A periodic task: each tick of ``cron`` (5 fields, in ``tz``) or ``every`` seconds
    creates the task ``(type, "<name>@<tick, ISO 8601 UTC>")`` with ``input``."""

    name: str
    type: str
    cron: str | None
    every: float | None
    input: Any
    tz: str
    #: ``"skip"``: no tick while the last tick's task is unfinished; ``"allow"``.
    overlap: str
    #: For ticks missed while no worker ran: ``"skip"`` them, or run the latest ``"once"``.
    misfire: str
    next_run: datetime | None
    #: Identifier of the last tick's task, if any.
    last_task: str | None


@dataclass(frozen=True)
class TaskInfo:
    """One task of a :meth:`~redis_atp.Tracker.list_tasks` page. Pass the last one of a
    page as ``before=`` for the next page."""

    task_id: int
    type: str
    identifier: str
    #: ``(code, name)``, as ``getTaskStatus`` reports it.
    status: tuple[Status, str]
    #: The time of its last status change (UTC, ms precision): the list's order.
    updated: datetime


@dataclass(frozen=True)
class Event:
    """One status change from the events stream (:meth:`~redis_atp.Tracker.events`).
    A deleted task's last event has status ``(0, "UNDEFINED")`` and message ``deleted``."""

    #: Resume after this event with ``events(since=event.id)``.
    id: str
    task_id: int
    type: str
    identifier: str
    status: tuple[Status, str]
    time: datetime
    #: The log record's message, cut to 200 bytes (the task's log has all of it).
    message: str


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (the scripts' time unit)."""
    return round(when.timestamp() * 1000)


def utc_from_ms(ms: int) -> datetime:
    """The UTC datetime of a time in milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def parse_record(raw: bytes) -> LogRecord:
    """A stored log record ``"<unix time>.<ms> <code> <message>"`` as a ``LogRecord``."""
    stamp, code, message = raw.split(b" ", 2)
    secs, _, ms = stamp.partition(b".")
    when = datetime.fromtimestamp(int(secs), timezone.utc) + timedelta(milliseconds=int(ms or 0))
    status = Status(int(code))
    return (when, (status, status.name), message.decode("utf-8", "replace"))
