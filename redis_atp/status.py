"""Task statuses: the seed's seven codes, as an ``IntEnum``.

``STATUS2TEXT`` and ``TEXT2STATUS`` are derived from :class:`Status`; the Lua
scripts receive the same codes from it (see ``scripts.py``), so there is one
definition of every code.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Status", "STATUS2TEXT", "TEXT2STATUS", "LIVE", "TERMINAL"]


class Status(IntEnum):
    """The status of a task instance (the seed's codes and names)."""

    #: Not a real state; never stored.
    UNDEFINED = 0
    #: Waiting in the queue.
    ACCEPTED = 1
    #: Taken from the queue by a worker (``dequeueTask``).
    SCHEDULED = 2
    #: Its handler is running (``startTask``, ``resumeTask``).
    RUNNING = 3
    #: Its handler paused it.
    PAUSED = 4
    #: Done, success (terminal).
    FINISHED = 5
    #: Done, failure (terminal).
    FAILED = 6

    @property
    def is_live(self) -> bool:
        """Owned by a run: SCHEDULED, RUNNING or PAUSED (the states that time out)."""
        return self in LIVE

    @property
    def is_terminal(self) -> bool:
        """FINISHED or FAILED: the retention clock runs."""
        return self in TERMINAL

    def pair(self) -> tuple[Status, str]:
        """The ``(code, name)`` pair every status call reports, e.g. ``(5, "FINISHED")``."""
        return (self, self.name)


LIVE = frozenset({Status.SCHEDULED, Status.RUNNING, Status.PAUSED})
TERMINAL = frozenset({Status.FINISHED, Status.FAILED})

STATUS2TEXT: dict[int, str] = {s.value: s.name for s in Status}
TEXT2STATUS: dict[str, int] = {s.name: s.value for s in Status}
