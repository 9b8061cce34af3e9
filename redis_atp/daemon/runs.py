"""A run that is over, until Redis acknowledged its end, and how it is logged."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from ..errors import Code
from ..models import StartedTask
from ..status import Status
from ..validate import clean_text

__all__ = ["Ended", "MAX_ERROR_CHARS", "as_response"]

log = logging.getLogger("redis_atp.worker")

#: Longest error message written to a task's log.
MAX_ERROR_CHARS = 2000


def as_response(value: Any) -> tuple[str | bytes, str]:
    """A handler's return value as ``(response, MIME type)`` (SPEC §8): ``str`` as
    text/plain, bytes as application/octet-stream, anything else as JSON (a value
    JSON cannot encode raises ``TypeError``: the run fails with it)."""
    if isinstance(value, str):
        return value, "text/plain"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    return json.dumps(value, allow_nan=False), "application/json"


@dataclass
class Ended:
    """A run that is over; its end is recorded by the next ``advance`` (idempotent if retried)."""

    task: StartedTask
    outcome: Status
    message: str
    started: float
    #: A failure's retry: "" none (``Fail``, or not a handler's error), "auto" (the
    #: type's backoff), or the seconds a handler's ``Retry(delay=)`` asked for.
    retry: str = ""
    duration: float = 0.0

    def __post_init__(self) -> None:
        self.duration = time.monotonic() - self.started
        self.message = clean_text(self.message, MAX_ERROR_CHARS)

    def args(self) -> tuple[StartedTask, Status, str, str]:
        return (self.task, self.outcome, self.message, self.retry)

    def report(self, ending: int) -> None:
        t = self.task
        if ending < 0:
            log.warning("task lost id=%d type=%s identifier=%s: the run no longer owns it (%s)",
                        t.task_id, t.type, t.identifier, Code(ending).name)
            return
        name = "failed, retry scheduled" if ending == 2 else self.outcome.name.lower() if ending else "ended by handler"
        level = logging.WARNING if ending == 1 and self.outcome is Status.FAILED else logging.INFO
        log.log(level, "task %s id=%d type=%s identifier=%s duration=%.3fs%s", name, t.task_id, t.type,
                t.identifier, self.duration, f" error={self.message!r}" if self.message else "")
