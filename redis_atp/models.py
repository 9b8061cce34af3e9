"""What the tracker returns besides plain tuples: task types, started tasks, log records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .status import Status

if TYPE_CHECKING:
    from .taskstatus import TaskStatus

__all__ = ["TaskType", "StartedTask", "LogRecord", "parse_record"]

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


@dataclass(frozen=True)
class StartedTask:
    """A task claimed and started in one call (``Tracker.claim_started``, ``Tracker.advance``).

    ``input`` decodes ``raw_input`` with the tracker's serializer on each access, so a
    task whose stored input cannot be decoded still arrives, and fails on its own.
    """

    status: TaskStatus
    type: str
    identifier: str
    handler: str
    raw_input: bytes | None

    @property
    def input(self) -> Any:
        return self.status.tracker.serializer.unpack(self.raw_input)


def parse_record(raw: bytes) -> LogRecord:
    """A stored log record ``"<unix time>.<ms> <code> <message>"`` as a ``LogRecord``."""
    stamp, code, message = raw.split(b" ", 2)
    secs, _, ms = stamp.partition(b".")
    when = datetime.fromtimestamp(int(secs), timezone.utc) + timedelta(milliseconds=int(ms or 0))
    status = Status(int(code))
    return (when, (status, status.name), message.decode("utf-8", "replace"))
