"""Handlers of the chaos run (``benchmarks.chaos``), imported by ``redis-atp worker``
as ``benchmarks.chaos_handlers.<name>``.

Every execution is recorded outside Redis, in a file of its own under ``$CHAOS_DIR``:
``<task id>-<pid>-<monotonic ns>.run``, one JSON object per line, each line one
``write`` on an ``O_APPEND`` descriptor, so a process killed at any point leaves
whole lines:

* ``{"ev": "start", "tid", "token", "pid", "t"}``: the handler started (wall time, s);
* ``{"ev": "call", "what", "t0", "t1", "ok", "error"}``: one fenced call through the
  run's ``task_status`` (``ok`` false: it raised ``error``, which is re-raised);
* ``{"ev": "end", "t", "outcome"}``: ``returned``, ``stale`` (a call raised
  ``StaleTask``: the run lost its task), ``raised`` (the ``boom`` type, or a call
  failed otherwise).

The handlers never fail on their own: a FAILED task of a normal type is the
infrastructure's doing. ``boom`` always raises ``ValueError``; its FAILED tasks are
expected.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis_atp import AsyncTaskStatus, TaskStatus
from redis_atp.errors import StaleTask

#: Environment variable naming the directory of the run files.
DIR_ENV = "CHAOS_DIR"


class Run:
    """The record of one execution: a run file, appended to line by line."""

    def __init__(self, ts: TaskStatus | AsyncTaskStatus) -> None:
        self.ts = ts
        name = f"{ts.task_id}-{os.getpid()}-{time.monotonic_ns()}.run"
        self.fd = os.open(os.path.join(os.environ[DIR_ENV], name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.write(ev="start", tid=ts.task_id, token=ts.token, pid=os.getpid(), t=time.time())

    def write(self, **fields: Any) -> None:
        os.write(self.fd, (json.dumps(fields) + "\n").encode())

    def call(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        """One fenced call, timed; its error, if any, is recorded and re-raised."""
        with self.recording(what):
            fn(*args)

    async def acall(self, what: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """:meth:`call` for an ``AsyncTaskStatus`` coroutine."""
        with self.recording(what):
            await fn(*args)

    @contextmanager
    def recording(self, what: str) -> Iterator[None]:
        t0 = time.time()
        try:
            yield
        except BaseException as exc:
            self.write(ev="call", what=what, t0=t0, t1=time.time(), ok=False, error=f"{type(exc).__name__}: {exc}")
            raise
        self.write(ev="call", what=what, t0=t0, t1=time.time(), ok=True, error="")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """The run's end: ``stale`` (a call raised ``StaleTask``), ``raised`` or ``returned``."""
        outcome = "returned" if kind is None else "stale" if issubclass(kind, StaleTask) else "raised"
        self.write(ev="end", t=time.time(), outcome=outcome)
        os.close(self.fd)


def _work() -> None:
    time.sleep(random.uniform(0.0, 0.025))


def quick(task_status: TaskStatus, input: Any) -> None:
    """Sleeps 0-50 ms; no call."""
    with Run(task_status):
        _work()
        _work()


def progress(task_status: TaskStatus, input: Any) -> None:
    """Reports progress twice, sleeping around the calls."""
    with Run(task_status) as run:
        _work()
        run.call("setRunning", task_status.setRunning, "progress 1 of 2")
        _work()
        run.call("setRunning", task_status.setRunning, "progress 2 of 2")


def respond(task_status: TaskStatus, input: Any) -> None:
    """Reports progress once and stores a response."""
    with Run(task_status) as run:
        _work()
        run.call("setRunning", task_status.setRunning, "working")
        _work()
        run.call("storeResponse", task_status.storeResponse, f"<r>{task_status.task_id}</r>", "application/xml")


async def arespond(task_status: AsyncTaskStatus, input: Any) -> None:
    """``respond`` as an ``async def`` handler, on the worker's event loop."""
    with Run(task_status) as run:
        await asyncio.sleep(random.uniform(0.0, 0.025))
        await run.acall("setRunning", task_status.setRunning, "working")
        await asyncio.sleep(random.uniform(0.0, 0.025))
        await run.acall("storeResponse", task_status.storeResponse, f"<r>{task_status.task_id}</r>",
                        "application/xml")


def boom(task_status: TaskStatus, input: Any) -> None:
    """Always raises ``ValueError`` (its FAILED tasks are expected)."""
    with Run(task_status):
        _work()
        raise ValueError(f"chaos boom {task_status.task_id}")
