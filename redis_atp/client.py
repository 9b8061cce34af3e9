"""``Tracker``: the object API, bound to one redis-py client and one namespace.

Every method builds its operation in the sans-IO core (:mod:`redis_atp.protocol`:
arguments checked, script calls built, replies read) and runs it on the client
(:mod:`redis_atp.io_sync`); :class:`redis_atp.aio.AsyncTracker` runs the same
operations on ``redis.asyncio``. Every state change is exactly one Lua script call
(named in each method's docstring). The seed's camelCase module API in
:mod:`redis_atp.tracker` delegates here.

A namespace may be sharded over S hash tags (``shards=S``) so that it spreads
over the slots of a Redis Cluster. A task lives on the shard its ``(type,
identifier)`` digest names, and its id (``seq * S + shard``) names the same
shard, so every call about one task is still one round trip to one slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from .connection import clients_of
from .errors import RedisATPError
from .face import TrackerBase
from .handle import TaskHandle
from .io_sync import SyncIO
from .models import Claim, Event, LogRecord, Schedule, TaskInfo, TaskType
from .protocol import admin, control, reads
from .protocol import schedules as schedule_ops
from .protocol import tasks as task_ops
from .protocol.admin import Recovered
from .status import Status
from .validate import Handler

__all__ = ["Tracker"]


class Tracker(TrackerBase):
    """The process tracker on one Redis namespace.

    Args:
        redis_client: a synchronous redis-py client (``redis.Redis``, a Sentinel
            ``master_for`` client, ``redis.cluster.RedisCluster``) with
            ``decode_responses=False``; for ``redis.asyncio``, see :mod:`redis_atp.aio`.
        namespace: keys live under ``atp:{namespace}:`` (see :mod:`redis_atp.keys`).
        max_queue_size: the namespace's queue limit, kept in Redis and enforced by the
            enqueue script for every producer alike (``<= 0``: no limit). ``None``: leave
            it as it is (the seed's 64 from the first registration on); a number sets
            it for everyone on this tracker's first call. Sharded, each shard holds at
            most ``ceil(max_queue_size / shards)``.
        shards: hash tags the namespace spreads over (1: one slot). Every client of a
            namespace must use the same number; the namespace records it.
        serializer: ``"msgpack"`` (default: reading a task never runs code) or
            ``"pickle"`` (trusted deployments whose inputs are arbitrary Python
            objects). The namespace records it at its first registration; a tracker
            with another one is refused.
        max_input_bytes: largest encoded input accepted.
        max_response_bytes: largest response accepted.
        max_log_records: log records kept per task; older ones are dropped.
    """

    io_class = SyncIO
    io: SyncIO

    def close(self) -> None:
        """Close the client's connections if this tracker created the client."""
        if self._owns_client:
            for client in clients_of(self.client):
                client.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ task types
    def register_task_type(self, identifier: str, handler: Handler, timeout: float = 3600,
                           timeret: float = -1, maxrestart: int = 2, *, retries: int = 0, retry_delay: float = 1.0,
                           retry_backoff: float = 2.0, retry_max_delay: float = 3600,
                           hard_timeout: float | None = None) -> None:
        """Create a task type, or update its settings (script ``register_type``, once per shard).

        ``timeout``: seconds after a task's last status change at which an unfinished
        task is abandoned (``<= 0``: never). ``timeret``: seconds a finished task is
        kept (``<= 0``: forever). ``maxrestart`` (clamped at 0): re-enqueues of a
        timed-out or orphaned task before it is marked FAILED. ``retries``: times a
        task whose handler raised is run again, after ``min(retry_max_delay,
        retry_delay * retry_backoff ** n)`` seconds with full jitter (n: retries so
        far), counted apart from ``maxrestart``. ``hard_timeout``: seconds after which a
        run is killed by its worker (not only abandoned, as ``timeout`` does) and
        recovered as a time-out, against ``maxrestart``.

        Raises:
            InvalidInput: bad name, handler path, or settings.
        """
        self.io.run(admin.register_task_type(self.ns, identifier, handler, timeout, timeret, maxrestart, retries,
                                             retry_delay, retry_backoff, retry_max_delay, hard_timeout))

    def unregister_task_type(self, identifier: str, force: bool = False) -> None:
        """Remove a task type (script ``unregister_type``, in steps over the id buckets).

        Without ``force`` it refuses while any task of the type exists; with ``force``
        every task of the type goes first (all its keys, queue entries, deadlines).
        The walk costs O(task ids ever issued / 100) bucket reads. Sharded, every
        shard is checked before the type is removed from any.

        Raises:
            TaskTypeNotFound: no such type.
            TaskTypeInUse: tasks of the type exist and ``force`` is false.
        """
        self.io.run(admin.unregister_task_type(self.ns, identifier, force))

    def get_task_type(self, identifier: str) -> TaskType:
        """The settings and counters (summed over shards) of one task type.

        Raises:
            TaskTypeNotFound: no such type.
        """
        return self.io.run(reads.get_task_type(self.ns, identifier))

    def list_task_types(self) -> list[TaskType]:
        """Every registered task type, sorted by name."""
        return self.io.run(reads.list_task_types(self.ns))

    # ------------------------------------------------------------------ queue
    def get_queue_size(self) -> int:
        """Tasks waiting in the queue (the ``queued`` counter, summed over shards)."""
        return self.io.run(reads.get_queue_size(self.ns))

    def get_queue_counts(self) -> dict[str, int]:
        """The queue's tasks apart: ``{"ready": ..., "delayed": ..., "parked": ...}`` (they
        sum to :meth:`get_queue_size`; parked: set aside while their type is paused)."""
        return self.io.run(reads.get_queue_counts(self.ns))

    def get_max_queue_size(self) -> int:
        """The namespace's queue limit, which the enqueue script enforces (``<= 0``: none)."""
        return self.io.run(reads.get_max_queue_size(self.ns))

    def set_max_queue_size(self, limit: int) -> None:
        """Set the namespace's queue limit for every producer (``<= 0``: no limit)."""
        self.io.run(admin.set_max_queue_size(self.ns, limit))

    def enqueue_task(self, type: str, identifier: str, input: Any, message: str = "", *,
                     delay: float | None = None, eta: datetime | float | None = None, priority: int = 0) -> int:
        """Create a task (ACCEPTED) at the tail of the queue; returns its new id (script ``enqueue``).

        The size check against the namespace's limit, the task, its first log record
        and its queue entry are one atomic step, so the limit holds under any number of
        producers. With ``delay`` (seconds) or ``eta`` (a datetime, naive meaning UTC,
        or seconds since the epoch) the task is held apart until it is due, then joins
        the tail of the queue; it counts in the queue size meanwhile. ``priority``
        (-9 to 9, larger first): claims take the highest level with work, FIFO within one.

        Raises:
            QueueFull: the queue holds ``get_max_queue_size()`` tasks (the error says both).
            TaskTypeNotFound: the type is not registered.
            DuplicateTask: a task with this ``(type, identifier)`` exists.
            InvalidInput: bad identifier, or an input the serializer cannot store, or too large.
        """
        return self.io.run(task_ops.enqueue_task(self.ns, type, identifier, input, message, delay, eta, priority))

    def enqueue_many(self, tasks: Iterable[Sequence[Any]], *, chunk: int = 200, delay: float | None = None,
                     eta: datetime | float | None = None, priority: int = 0) -> list[int | RedisATPError]:
        """Enqueue many tasks, up to ``chunk`` per script call (script ``enqueue``,
        streamed; at most 500, so no call holds Redis for long; the first calls are
        smaller, so Redis starts while the client encodes the rest);
        ``delay``, ``eta`` and ``priority`` (see :meth:`enqueue_task`) apply to the whole batch.

        ``tasks`` holds ``(type, identifier, input)`` or ``(type, identifier, input,
        message)``. Each task is checked and created on its own, with the same
        guarantees as :meth:`enqueue_task`; the result has, per task in order, its
        new id or the error that refused it (:class:`QueueFull`, :class:`DuplicateTask`,
        :class:`TaskTypeNotFound`, :class:`InvalidInput` for a bad identifier or an input
        that cannot be stored: nothing of that task is written): check them. The calls
        are streamed on one connection: Redis stores chunk n while the client encodes
        chunk n+1. An item that is not a 3- or 4-tuple raises :class:`InvalidInput`
        before anything is sent.
        """
        return self.io.run(task_ops.enqueue_many(self.ns, tasks, chunk, delay, eta, priority))

    def reenqueue_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Put a task back to ACCEPTED at the tail of the queue, ignoring the size limit
        (script ``reenqueue``); a queued task keeps its place. A finished task is
        re-run: its retention TTL is cleared and its restart count reset.

        Raises:
            TaskNotFound: no such task.
            StaleTask: ``token`` is given and that run no longer owns the task.
        """
        self.io.run(task_ops.reenqueue_task(self.ns, task_id, message, token))

    def dequeue_task(self, server_id: str, message: str = "", *, count: int = 1,
                     timeout: float | None = None) -> list[int]:
        """Take up to ``count`` tasks from the head of the queue for ``server_id``
        (script ``dequeue``): SCHEDULED, owned, with a deadline. Returns their ids.

        With ``timeout`` > 0, waits up to that many seconds for a task, woken by
        enqueue (``BZPOPMIN`` on the wake key), not by polling. Sharded, the tasks
        come from one shard, tried in a rotating order. Use :meth:`claim` to get
        each run's fencing token as well.

        Raises:
            QueueEmpty: nothing to take (or the wait ran out).
        """
        return self.io.run(task_ops.dequeue_task(self.ns, server_id, message, count, timeout))

    def claim(self, server_id: str, message: str = "", *, count: int = 1,
              timeout: float | None = None) -> list[Claim]:
        """Like :meth:`dequeue_task`, but returns each task's :class:`Claim`: its id and
        the run's fencing token, for ``token=`` (or ``TaskStatus(..., token=)``)."""
        return self.io.run(task_ops.claim(self.ns, server_id, message, count, timeout))

    # ------------------------------------------------------------------ schedules
    def add_schedule(self, name: str, type: str, *, cron: str | None = None, every: float | None = None,
                     input: Any = None, tz: str = "UTC", overlap: str = "skip", misfire: str = "skip") -> Schedule:
        """Create or replace the schedule ``name`` (script ``schedule_set``): each tick of
        ``cron`` (5 fields, in time zone ``tz``; needs ``cronsim``) or of ``every``
        seconds (on multiples of it since the epoch) creates the task ``(type,
        "<name>@<tick, ISO 8601 UTC>")`` with ``input``, once per tick: workers'
        housekeeping creates it. ``overlap="skip"``: no tick while the last tick's task
        is unfinished (``"allow"``: every tick). ``misfire``: ticks missed while no
        worker ran (later than a minute) are dropped (``"skip"``) or the latest of them
        runs (``"once"``).

        Raises:
            InvalidInput: bad name, expression, interval, time zone, policy or input.
            TaskTypeNotFound: the type is not registered.
        """
        return self.io.run(schedule_ops.add_schedule(self.ns, name, type, cron, every, input, tz, overlap, misfire))

    def remove_schedule(self, name: str) -> bool:
        """Remove a schedule (script ``schedule_set``); returns whether it existed. Tasks
        it created stay."""
        return self.io.run(schedule_ops.remove_schedule(self.ns, name))

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name, with its next tick and its last tick's task."""
        return self.io.run(schedule_ops.list_schedules(self.ns))

    # ------------------------------------------------------------------ status changes
    def start_task(self, task_id: int, message: str = "", *,
                   token: int | None = None) -> tuple[str, str, str, Any]:
        """Mark a dequeued task RUNNING; returns ``(type, identifier, handler, input)``
        (script ``start``).

        Raises:
            TaskNotFound, StaleTask, InvalidTransition: the task is not SCHEDULED,
            RUNNING or PAUSED.
        """
        return self.io.run(task_ops.start_task(self.ns, task_id, message, token))

    def stop_task_success(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a task FINISHED (script ``finish``). Unfenced, any task may be ended; a
        queued one leaves the queue.

        Raises:
            TaskNotFound, StaleTask.
        """
        self.io.run(task_ops.finish(self.ns, task_id, Status.FINISHED, message, token))

    def stop_task_failure(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a task FAILED (script ``finish``); see :meth:`stop_task_success`."""
        self.io.run(task_ops.finish(self.ns, task_id, Status.FAILED, message, token))

    def stop_task_success_if_not_finished(self, task_id: int, message: str = "", *,
                                          token: int | None = None) -> bool:
        """Mark a task FINISHED unless it is FINISHED or FAILED already (script ``finish``);
        returns whether it changed."""
        return self.io.run(task_ops.finish(self.ns, task_id, Status.FINISHED, message, token, if_unfinished=True))

    def pause_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a live task PAUSED (script ``progress``); refreshes its deadline.

        Raises:
            TaskNotFound, StaleTask, InvalidTransition: the task is not SCHEDULED,
            RUNNING or PAUSED.
        """
        self.io.run(task_ops.progress(self.ns, task_id, Status.PAUSED, message, token))

    def resume_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a live task RUNNING (script ``progress``); see :meth:`pause_task`."""
        self.io.run(task_ops.progress(self.ns, task_id, Status.RUNNING, message, token))

    def set_task_response(self, task_id: int, response: str | bytes, mime_type: str = "text/xml", *,
                          token: int | None = None) -> None:
        """Store (or replace) a task's response and its MIME type (script ``set_response``).

        Raises:
            TaskNotFound, StaleTask, InvalidInput: not str/bytes, or too large.
        """
        self.io.run(task_ops.set_task_response(self.ns, task_id, response, mime_type, token))

    def cancel_task(self, task_id: int, message: str = "") -> bool:
        """Cancel a task (script ``cancel``): a queued or delayed one never runs, a live
        one's run is fenced out and its next ``TaskStatus`` call raises
        :class:`~redis_atp.TaskCancelled`; both end FAILED with "cancelled" in the log.
        Returns True if it ended the task, False if the task had ended already.

        Raises:
            TaskNotFound: no such task.
        """
        return self.io.run(task_ops.cancel_task(self.ns, task_id, message))

    def is_cancelled(self, task_id: int) -> bool:
        """Whether the task was cancelled (and not re-run since). Raises :class:`TaskNotFound`."""
        return self.io.run(reads.is_cancelled(self.ns, task_id))

    def wait_task(self, task_id: int, timeout: float | None = None) -> tuple[Status, str]:
        """Block until the task is FINISHED or FAILED and return its ``(code, name)``,
        without polling: a look at the task (script ``watch``) and a wait on the signal
        the script that ends it writes; an end before or during the call is never
        missed. Then ``get_task_response`` has its result.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            TaskNotFound: no such task, or it was deleted meanwhile.
        """
        return self.io.run(task_ops.wait_task(self.ns, task_id, timeout))

    def task(self, task_id: int) -> TaskHandle:
        """A handle on task ``task_id``: ``.status``, ``.log``, ``.response``, ``.wait()``,
        ``.cancel()``, each a call to Redis (nothing is cached)."""
        return TaskHandle(self, task_id)

    # ------------------------------------------------------------------ many tasks at once
    def list_tasks(self, type: str | None = None, status: Status | int | None = None, *, limit: int = 100,
                   before: int | TaskInfo | None = None) -> list[TaskInfo]:
        """Tasks newest first by the time of their last status change, of one type and/or
        status (script ``list``): at most ``limit`` (1-1000); ``before``, the last
        :class:`TaskInfo` (or its task id) of the previous page, for the next one. Read
        from indexes the scripts keep, never ``SCAN``: O(limit + types) Redis work for
        started and ended tasks; ACCEPTED tasks are read from the queue's newest end.

        Raises:
            TaskTypeNotFound: ``type`` is not registered.
            TaskNotFound: ``before`` is a task id whose task is gone (pass its TaskInfo).
            InvalidInput: a bad status or limit.
        """
        return self.io.run(control.list_tasks(self.ns, type, status, limit, before))

    def requeue_failed(self, type: str | None = None, message: str = "") -> int:
        """Re-run every task that is FAILED now, of one type or all (script
        ``requeue_failed``, 100 per call, oldest failure first), as :meth:`reenqueue_task`
        re-runs a finished task; returns how many. Raises :class:`TaskTypeNotFound`."""
        return self.io.run(control.requeue_failed(self.ns, type, message))

    def pause_queue(self, type: str | None = None) -> None:
        """Workers and dequeues take nothing from the namespace (``type=None``) or of one
        type until :meth:`resume_queue` (script ``pause``); enqueueing goes on, and
        running tasks are not touched. Raises :class:`TaskTypeNotFound`."""
        self.io.run(control.pause_queue(self.ns, type))

    def resume_queue(self, type: str | None = None) -> None:
        """Undo :meth:`pause_queue`: a type's tasks set aside meanwhile go back to the head
        of the queue, and idle workers are woken (script ``pause``)."""
        self.io.run(control.resume_queue(self.ns, type))

    def get_pause_state(self) -> dict[str, Any]:
        """``{"namespace": bool, "types": [paused type names], "parked": tasks set aside}``."""
        return self.io.run(control.paused(self.ns))

    def get_max_events(self) -> int:
        """The cap of the namespace's events stream (0: no events are written)."""
        return self.io.run(control.get_max_events(self.ns))

    def set_max_events(self, cap: int) -> None:
        """Set the events stream's cap for every client of the namespace (0 turns it off)."""
        self.io.run(control.set_max_events(self.ns, cap))

    def minute_stats(self, minutes: int = 60) -> list[tuple[datetime, dict[str, int]]]:
        """Per minute of the last ``minutes`` (at most 48 hours), oldest first: runs that
        ended ``finished`` and ``failed`` in it (counted by the scripts) and, while workers
        ran, housekeeping's last ``ready``, ``delayed`` and ``live`` sample of it."""
        return self.io.run(control.minutes(self.ns, minutes))

    def events(self, since: str | None = None, block: float | None = None) -> Iterator[Event]:
        """Every status change, oldest first, from the namespace's capped events stream
        (``XREAD``): ``since=None``, those after the call; ``"0"``, from the oldest kept;
        an :attr:`Event.id`, those after it (resume there after a disconnect). ``block``:
        seconds to wait for more before the iterator ends (None: end when none is left).
        The starting point is fixed by this call, not by the first ``next()``."""
        cursor = self.io.run(control.event_cursor(self.ns, since))
        return self._read_events(cursor, block)

    def _read_events(self, cursor: list[tuple[int, int]], block: float | None) -> Iterator[Event]:
        while batch := self.io.run(control.read_events(self.ns, cursor, block)):
            yield from batch

    # ------------------------------------------------------------------ reads
    def get_task_info(self, task_id: int) -> tuple[str, str, Status, str]:
        """``(type, identifier, code, name)`` of a task. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_info(self.ns, task_id))

    def get_task_identifier(self, task_id: int) -> tuple[str, str]:
        """``(type, identifier)`` of a task. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_identifier(self.ns, task_id))

    def get_task_status(self, task_id: int) -> tuple[Status, str]:
        """``(code, name)`` of a task's status. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_status(self.ns, task_id))

    def get_task_status_by_identifier(self, type: str, identifier: str) -> tuple[Status, str]:
        """``(code, name)`` of the status of task ``(type, identifier)``. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_status_by_identifier(self.ns, type, identifier))

    def get_task_id(self, type: str, identifier: str) -> int:
        """The id of task ``(type, identifier)``. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_id(self.ns, type, identifier))

    def get_task_response(self, type: str, identifier: str) -> tuple[str | bytes | None, str | None]:
        """``(response, mime_type)``, the response as stored (``str`` or ``bytes``), or
        ``(None, None)`` if none was stored. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_response(self.ns, type, identifier))

    def get_task_log(self, type: str, identifier: str) -> list[LogRecord]:
        """The task's log, oldest first: ``(datetime UTC, (code, name), message)`` records.
        Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_log(self.ns, type, identifier))

    def get_task_input(self, task_id: int) -> Any:
        """The decoded input of a task. Raises :class:`TaskNotFound`."""
        return self.io.run(reads.get_task_input(self.ns, task_id))

    def describe_task(self, task_id: int) -> dict[str, Any]:
        """Everything about one task, for operators (``redis-atp show``)."""
        return self.io.run(reads.describe_task(self.ns, task_id))

    # ------------------------------------------------------------------ deletion, housekeeping
    def delete_task(self, task_id: int) -> None:
        """Delete a task and every key and index entry of it (script ``delete``).
        Raises :class:`TaskNotFound`."""
        self.io.run(task_ops.delete_task(self.ns, task_id))

    def delete_task_by_identifier(self, type: str, identifier: str) -> None:
        """Delete task ``(type, identifier)`` (script ``delete``). Raises :class:`TaskNotFound`."""
        self.io.run(task_ops.delete_task_by_identifier(self.ns, type, identifier))

    def reenqueue_zombie_tasks(self, message: str = "") -> list[tuple[int, str]]:
        """Tasks past their deadline go back to the queue, or to FAILED once they used
        up ``maxrestart`` (script ``reap_zombies``, 100 tasks per call). Safe to run
        from many workers at once. Returns ``(task_id, "type::identifier")`` of each."""
        return self.io.run(admin.reenqueue_zombie_tasks(self.ns, message))

    def reap_zombies(self, message: str = "", limit: int | None = None) -> list[Recovered]:
        """Like :meth:`reenqueue_zombie_tasks`, returning ``(id, type, identifier, new status)``;
        ``limit``: stop after about that many tasks per shard (housekeeping's bound)."""
        return self.io.run(admin.reap_zombies(self.ns, message, limit))

    def delete_retired_tasks(self) -> list[tuple[int, str]]:
        """Remove FINISHED/FAILED tasks whose retention, by their type's current ``timeret``,
        has passed (script ``retire``, in steps over the id buckets). TTLs already free
        every task that ended under a positive ``timeret``, so nothing needs to call
        this for memory to be freed; it catches tasks kept by an older setting."""
        return self.io.run(admin.delete_retired_tasks(self.ns))

    # ------------------------------------------------------------------ inspection
    def count_overdue(self) -> int:
        """Live tasks past their type's timeout (what the next zombie sweep would act on)."""
        return self.io.run(reads.count_overdue(self.ns))

    def last_task_id(self) -> int:
        """The last task id handed out (0 if none)."""
        return self.io.run(reads.last_task_id(self.ns))

    def shard_stats(self) -> list[dict[str, Any]]:
        """Per-shard figures for operators: key prefix, queue size, live and overdue tasks."""
        return self.io.run(reads.shard_stats(self.ns))
