"""``redis_atp.aio``: the tracker on ``redis.asyncio``, for asyncio producers and handlers.

:class:`AsyncTracker` has every public method of :class:`~redis_atp.Tracker` as a
coroutine with the same signature, running the same operations of the core
(:mod:`redis_atp.protocol`) with the same scripts and results; each method's
documentation is its ``Tracker`` twin's. ``dequeue_task`` with a ``timeout``
blocks on Redis (``BZPOPMIN``) without polling, as the sync one does.

    tracker = AsyncTracker.from_url("redis://127.0.0.1:6379/0", namespace="atp")
    task_id = await tracker.enqueue_task("render", "tile-42", {"z": 3})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from .connection import clients_of
from .errors import RedisATPError
from .face import TrackerBase
from .handle import AsyncTaskHandle
from .io_async import AsyncIO
from .models import Claim, Event, LogRecord, Schedule, TaskInfo, TaskType
from .protocol import admin, control, reads
from .protocol import schedules as schedule_ops
from .protocol import tasks as task_ops
from .protocol.admin import Recovered
from .status import Status
from .validate import Handler

__all__ = ["AsyncTracker"]


class AsyncTracker(TrackerBase):
    """The process tracker on one Redis namespace, on a ``redis.asyncio`` client
    (``redis.asyncio.Redis``, a Sentinel ``master_for`` client,
    ``redis.asyncio.cluster.RedisCluster``); arguments as :class:`~redis_atp.Tracker`'s."""

    asynchronous = True
    io_class = AsyncIO
    io: AsyncIO

    async def close(self) -> None:
        """Close the client's connections if this tracker created the client."""
        if self._owns_client:
            for client in clients_of(self.client):
                await client.aclose()

    async def __aenter__(self) -> AsyncTracker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register_task_type(self, identifier: str, handler: Handler, timeout: float = 3600,
                                 timeret: float = -1, maxrestart: int = 2, *, retries: int = 0,
                                 retry_delay: float = 1.0, retry_backoff: float = 2.0,
                                 retry_max_delay: float = 3600, hard_timeout: float | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.register_task_type`."""
        await self.io.run(admin.register_task_type(self.ns, identifier, handler, timeout, timeret, maxrestart,
                                                   retries, retry_delay, retry_backoff, retry_max_delay, hard_timeout))

    async def unregister_task_type(self, identifier: str, force: bool = False) -> None:
        """Coroutine twin of :meth:`Tracker.unregister_task_type`."""
        await self.io.run(admin.unregister_task_type(self.ns, identifier, force))

    async def get_task_type(self, identifier: str) -> TaskType:
        """Coroutine twin of :meth:`Tracker.get_task_type`."""
        return await self.io.run(reads.get_task_type(self.ns, identifier))

    async def list_task_types(self) -> list[TaskType]:
        """Coroutine twin of :meth:`Tracker.list_task_types`."""
        return await self.io.run(reads.list_task_types(self.ns))

    async def get_queue_size(self) -> int:
        """Coroutine twin of :meth:`Tracker.get_queue_size`."""
        return await self.io.run(reads.get_queue_size(self.ns))

    async def get_queue_counts(self) -> dict[str, int]:
        """Coroutine twin of :meth:`Tracker.get_queue_counts`."""
        return await self.io.run(reads.get_queue_counts(self.ns))

    async def get_max_queue_size(self) -> int:
        """Coroutine twin of :meth:`Tracker.get_max_queue_size`."""
        return await self.io.run(reads.get_max_queue_size(self.ns))

    async def set_max_queue_size(self, limit: int) -> None:
        """Coroutine twin of :meth:`Tracker.set_max_queue_size`."""
        await self.io.run(admin.set_max_queue_size(self.ns, limit))

    async def enqueue_task(self, type: str, identifier: str, input: Any, message: str = "", *,
                           delay: float | None = None, eta: datetime | float | None = None, priority: int = 0) -> int:
        """Coroutine twin of :meth:`Tracker.enqueue_task`."""
        return await self.io.run(task_ops.enqueue_task(self.ns, type, identifier, input, message, delay, eta,
                                                       priority))

    async def enqueue_many(self, tasks: Iterable[Sequence[Any]], *, chunk: int = 200, delay: float | None = None,
                           eta: datetime | float | None = None, priority: int = 0) -> list[int | RedisATPError]:
        """Coroutine twin of :meth:`Tracker.enqueue_many`."""
        return await self.io.run(task_ops.enqueue_many(self.ns, tasks, chunk, delay, eta, priority))

    async def reenqueue_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.reenqueue_task`."""
        await self.io.run(task_ops.reenqueue_task(self.ns, task_id, message, token))

    async def dequeue_task(self, server_id: str, message: str = "", *, count: int = 1,
                           timeout: float | None = None) -> list[int]:
        """Coroutine twin of :meth:`Tracker.dequeue_task`."""
        return await self.io.run(task_ops.dequeue_task(self.ns, server_id, message, count, timeout))

    async def claim(self, server_id: str, message: str = "", *, count: int = 1,
                    timeout: float | None = None) -> list[Claim]:
        """Coroutine twin of :meth:`Tracker.claim`."""
        return await self.io.run(task_ops.claim(self.ns, server_id, message, count, timeout))

    async def add_schedule(self, name: str, type: str, *, cron: str | None = None, every: float | None = None,
                           input: Any = None, tz: str = "UTC", overlap: str = "skip",
                           misfire: str = "skip") -> Schedule:
        """Coroutine twin of :meth:`Tracker.add_schedule`."""
        return await self.io.run(schedule_ops.add_schedule(self.ns, name, type, cron, every, input, tz, overlap,
                                                           misfire))

    async def remove_schedule(self, name: str) -> bool:
        """Coroutine twin of :meth:`Tracker.remove_schedule`."""
        return await self.io.run(schedule_ops.remove_schedule(self.ns, name))

    async def list_schedules(self) -> list[Schedule]:
        """Coroutine twin of :meth:`Tracker.list_schedules`."""
        return await self.io.run(schedule_ops.list_schedules(self.ns))

    async def start_task(self, task_id: int, message: str = "", *,
                         token: int | None = None) -> tuple[str, str, str, Any]:
        """Coroutine twin of :meth:`Tracker.start_task`."""
        return await self.io.run(task_ops.start_task(self.ns, task_id, message, token))

    async def stop_task_success(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.stop_task_success`."""
        await self.io.run(task_ops.finish(self.ns, task_id, Status.FINISHED, message, token))

    async def stop_task_failure(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.stop_task_failure`."""
        await self.io.run(task_ops.finish(self.ns, task_id, Status.FAILED, message, token))

    async def stop_task_success_if_not_finished(self, task_id: int, message: str = "", *,
                                                token: int | None = None) -> bool:
        """Coroutine twin of :meth:`Tracker.stop_task_success_if_not_finished`."""
        return await self.io.run(task_ops.finish(self.ns, task_id, Status.FINISHED, message, token, if_unfinished=True))

    async def pause_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.pause_task`."""
        await self.io.run(task_ops.progress(self.ns, task_id, Status.PAUSED, message, token))

    async def resume_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.resume_task`."""
        await self.io.run(task_ops.progress(self.ns, task_id, Status.RUNNING, message, token))

    async def set_task_response(self, task_id: int, response: str | bytes, mime_type: str = "text/xml", *,
                                token: int | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.set_task_response`."""
        await self.io.run(task_ops.set_task_response(self.ns, task_id, response, mime_type, token))

    async def cancel_task(self, task_id: int, message: str = "") -> bool:
        """Coroutine twin of :meth:`Tracker.cancel_task`."""
        return await self.io.run(task_ops.cancel_task(self.ns, task_id, message))

    async def is_cancelled(self, task_id: int) -> bool:
        """Coroutine twin of :meth:`Tracker.is_cancelled`."""
        return await self.io.run(reads.is_cancelled(self.ns, task_id))

    async def wait_task(self, task_id: int, timeout: float | None = None) -> tuple[Status, str]:
        """Coroutine twin of :meth:`Tracker.wait_task`."""
        return await self.io.run(task_ops.wait_task(self.ns, task_id, timeout))

    def task(self, task_id: int) -> AsyncTaskHandle:
        """Twin of :meth:`Tracker.task`: each attribute of the handle is awaited."""
        return AsyncTaskHandle(self, task_id)

    async def list_tasks(self, type: str | None = None, status: Status | int | None = None, *, limit: int = 100,
                         before: int | TaskInfo | None = None) -> list[TaskInfo]:
        """Coroutine twin of :meth:`Tracker.list_tasks`."""
        return await self.io.run(control.list_tasks(self.ns, type, status, limit, before))

    async def requeue_failed(self, type: str | None = None, message: str = "") -> int:
        """Coroutine twin of :meth:`Tracker.requeue_failed`."""
        return await self.io.run(control.requeue_failed(self.ns, type, message))

    async def pause_queue(self, type: str | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.pause_queue`."""
        await self.io.run(control.pause_queue(self.ns, type))

    async def resume_queue(self, type: str | None = None) -> None:
        """Coroutine twin of :meth:`Tracker.resume_queue`."""
        await self.io.run(control.resume_queue(self.ns, type))

    async def get_pause_state(self) -> dict[str, Any]:
        """Coroutine twin of :meth:`Tracker.get_pause_state`."""
        return await self.io.run(control.paused(self.ns))

    async def get_max_events(self) -> int:
        """Coroutine twin of :meth:`Tracker.get_max_events`."""
        return await self.io.run(control.get_max_events(self.ns))

    async def set_max_events(self, cap: int) -> None:
        """Coroutine twin of :meth:`Tracker.set_max_events`."""
        await self.io.run(control.set_max_events(self.ns, cap))

    async def minute_stats(self, minutes: int = 60) -> list[tuple[datetime, dict[str, int]]]:
        """Coroutine twin of :meth:`Tracker.minute_stats`."""
        return await self.io.run(control.minutes(self.ns, minutes))

    async def events(self, since: str | None = None, block: float | None = None) -> AsyncIterator[Event]:
        """Async-iterator twin of :meth:`Tracker.events` (``async for event in tracker.events()``)."""
        cursor = await self.io.run(control.event_cursor(self.ns, since))
        while batch := await self.io.run(control.read_events(self.ns, cursor, block)):
            for event in batch:
                yield event

    async def get_task_info(self, task_id: int) -> tuple[str, str, Status, str]:
        """Coroutine twin of :meth:`Tracker.get_task_info`."""
        return await self.io.run(reads.get_task_info(self.ns, task_id))

    async def get_task_identifier(self, task_id: int) -> tuple[str, str]:
        """Coroutine twin of :meth:`Tracker.get_task_identifier`."""
        return await self.io.run(reads.get_task_identifier(self.ns, task_id))

    async def get_task_status(self, task_id: int) -> tuple[Status, str]:
        """Coroutine twin of :meth:`Tracker.get_task_status`."""
        return await self.io.run(reads.get_task_status(self.ns, task_id))

    async def get_task_status_by_identifier(self, type: str, identifier: str) -> tuple[Status, str]:
        """Coroutine twin of :meth:`Tracker.get_task_status_by_identifier`."""
        return await self.io.run(reads.get_task_status_by_identifier(self.ns, type, identifier))

    async def get_task_id(self, type: str, identifier: str) -> int:
        """Coroutine twin of :meth:`Tracker.get_task_id`."""
        return await self.io.run(reads.get_task_id(self.ns, type, identifier))

    async def get_task_response(self, type: str, identifier: str) -> tuple[str | bytes | None, str | None]:
        """Coroutine twin of :meth:`Tracker.get_task_response`."""
        return await self.io.run(reads.get_task_response(self.ns, type, identifier))

    async def get_task_log(self, type: str, identifier: str) -> list[LogRecord]:
        """Coroutine twin of :meth:`Tracker.get_task_log`."""
        return await self.io.run(reads.get_task_log(self.ns, type, identifier))

    async def get_task_input(self, task_id: int) -> Any:
        """Coroutine twin of :meth:`Tracker.get_task_input`."""
        return await self.io.run(reads.get_task_input(self.ns, task_id))

    async def describe_task(self, task_id: int) -> dict[str, Any]:
        """Coroutine twin of :meth:`Tracker.describe_task`."""
        return await self.io.run(reads.describe_task(self.ns, task_id))

    async def delete_task(self, task_id: int) -> None:
        """Coroutine twin of :meth:`Tracker.delete_task`."""
        await self.io.run(task_ops.delete_task(self.ns, task_id))

    async def delete_task_by_identifier(self, type: str, identifier: str) -> None:
        """Coroutine twin of :meth:`Tracker.delete_task_by_identifier`."""
        await self.io.run(task_ops.delete_task_by_identifier(self.ns, type, identifier))

    async def reenqueue_zombie_tasks(self, message: str = "") -> list[tuple[int, str]]:
        """Coroutine twin of :meth:`Tracker.reenqueue_zombie_tasks`."""
        return await self.io.run(admin.reenqueue_zombie_tasks(self.ns, message))

    async def reap_zombies(self, message: str = "", limit: int | None = None) -> list[Recovered]:
        """Coroutine twin of :meth:`Tracker.reap_zombies`."""
        return await self.io.run(admin.reap_zombies(self.ns, message, limit))

    async def delete_retired_tasks(self) -> list[tuple[int, str]]:
        """Coroutine twin of :meth:`Tracker.delete_retired_tasks`."""
        return await self.io.run(admin.delete_retired_tasks(self.ns))

    async def count_overdue(self) -> int:
        """Coroutine twin of :meth:`Tracker.count_overdue`."""
        return await self.io.run(reads.count_overdue(self.ns))

    async def last_task_id(self) -> int:
        """Coroutine twin of :meth:`Tracker.last_task_id`."""
        return await self.io.run(reads.last_task_id(self.ns))

    async def shard_stats(self) -> list[dict[str, Any]]:
        """Coroutine twin of :meth:`Tracker.shard_stats`."""
        return await self.io.run(reads.shard_stats(self.ns))
