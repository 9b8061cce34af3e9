"""The benchmark's task handler, imported by ``redis-atp worker`` as ``benchmarks.handlers.noop``."""

from __future__ import annotations

import time
from typing import Any

from redis_atp import TaskStatus

#: W3/W3i: the handler RPUSHes its start time (``time.time()``) here.
LAT_KEY = "bench:lat"


def noop(task_status: TaskStatus, input: Any) -> None:
    """Does nothing, except for a latency probe (input with ``stamp``): then it pushes
    its first-line ``time.time()`` to ``bench:lat`` over the worker's own client."""
    started = time.time()
    if isinstance(input, dict) and input.get("stamp"):
        task_status.tracker.client.rpush(LAT_KEY, repr(started))


async def anoop(task_status: Any, input: Any) -> None:
    """Does nothing, as an ``async def`` handler (the worker's event loop runs it)."""


_client: Any = None


def roundtrip(task_status: TaskStatus, input: Any) -> None:
    """The peers' task body: one ``INCR bench:done`` on a client of its own."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(input["url"])
    _client.incr("bench:done")
