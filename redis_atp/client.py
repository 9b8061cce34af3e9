"""``Tracker``: the object API, bound to one redis-py client and one namespace.

Every state change is exactly one Lua script call (named in each method's
docstring); reads are single commands or the ``read_task`` script. The seed's
camelCase module API in :mod:`redis_atp.tracker` delegates here.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from .errors import Code, InvalidInput, QueueEmpty, RedisATPError, TaskNotFound, error_for_code
from .keys import IDS_PER_BUCKET, Keys, check_text
from .scripts import ScriptRunner
from .serialization import pack_input, pack_response, unpack_input, unpack_response
from .status import Status
from .taskstatus import TaskStatus

__all__ = ["Tracker", "TaskType", "StartedTask", "EvictionPolicyWarning", "LogRecord"]

#: ``(time, (code, name), message)``, as ``getTaskLog`` returns them.
LogRecord = tuple[datetime, tuple[Status, str], str]
Handler = str | Callable[..., Any]

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
#: Tasks handled per script call by the batched housekeeping scripts.
_REAP_BATCH = 500
_BUCKETS_PER_STEP = 50


class EvictionPolicyWarning(RuntimeWarning):
    """Redis may evict keys (``maxmemory-policy`` is not ``noeviction``): queue state could vanish."""


@dataclass(frozen=True)
class TaskType:
    """A registered task type: its settings and live counters."""

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
    """A task claimed and started in one call (``Tracker.claim(..., start=True)``)."""

    status: TaskStatus
    type: str
    identifier: str
    handler: str
    input: Any


def _task_id(task_id: object) -> int:
    """The task id as an int; anything that is not a positive integer names no task."""
    if isinstance(task_id, int) and not isinstance(task_id, bool) and task_id > 0:
        return task_id
    raise TaskNotFound(f"task {task_id!r:.80} does not exist (task ids are positive integers)")


def _seconds(what: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidInput(f"{what} must be a number of seconds, not {value!r:.80}")
    return repr(value) if isinstance(value, float) else str(value)


def _message(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"a log message must be str, not {type(value).__name__}")
    return value


def _handler_path(handler: Handler) -> str:
    if callable(handler) and not isinstance(handler, str):
        module = getattr(handler, "__module__", None)
        qualname = getattr(handler, "__qualname__", "")
        path = f"{module}.{qualname}"
        if not module or not _DOTTED.fullmatch(path):
            raise InvalidInput(f"handler {handler!r} has no importable dotted path")
        return path
    if not isinstance(handler, str) or not _DOTTED.fullmatch(handler):
        raise InvalidInput(f"handler must be a dotted path 'package.module.function', not {handler!r:.80}")
    return handler


def _parse_record(raw: bytes) -> LogRecord:
    stamp, code, message = raw.split(b" ", 2)
    secs, _, ms = stamp.partition(b".")
    when = datetime.fromtimestamp(int(secs), timezone.utc) + timedelta(milliseconds=int(ms or 0))
    status = Status(int(code))
    return (when, (status, status.name), message.decode("utf-8"))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


_warned: set[str] = set()


def _warn_if_evicting(client: Any) -> None:
    """Warn once per server if its ``maxmemory-policy`` lets Redis evict our keys."""
    try:
        where = repr(client.get_connection_kwargs())
    except Exception:
        where = repr(client)
    if where in _warned:
        return
    _warned.add(where)
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except Exception:  # CONFIG may be renamed or refused (managed Redis); nothing to check
        return
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy and policy != "noeviction":
        warnings.warn(
            f"Redis maxmemory-policy is {policy!r}: Redis may evict task and queue keys "
            "silently; set it to 'noeviction' for redis-atp",
            EvictionPolicyWarning,
            stacklevel=3,
        )


class Tracker:
    """The process tracker on one Redis namespace.

    Args:
        redis_client: any redis-py client (``redis.Redis``, a Sentinel ``master_for``
            client, ``redis.cluster.RedisCluster``) with ``decode_responses=False``.
        namespace: keys live under ``atp:{namespace}:`` (see :mod:`redis_atp.keys`).
        max_queue_size: ``enqueue_task`` raises :class:`QueueFull` once the queue holds
            this many tasks (``<= 0``: no limit). It is this producer's setting: give
            every producer of a namespace the same.
        max_input_bytes: largest msgpack-encoded input accepted.
        max_response_bytes: largest response accepted.
        max_log_records: log records kept per task; older ones are dropped.
    """

    def __init__(
        self,
        redis_client: Any,
        namespace: str = "atp",
        max_queue_size: int = 64,
        *,
        max_input_bytes: int = 1 << 20,
        max_response_bytes: int = 16 << 20,
        max_log_records: int = 100,
    ) -> None:
        kwargs: dict[str, Any] = getattr(redis_client, "get_connection_kwargs", dict)()
        if kwargs.get("decode_responses"):
            raise InvalidInput("redis-atp needs a client with decode_responses=False (inputs are binary)")
        for name, value in (("max_input_bytes", max_input_bytes), ("max_response_bytes", max_response_bytes),
                            ("max_log_records", max_log_records), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an int, not {value!r:.80}")
        if max_log_records < 1 or max_input_bytes < 1 or max_response_bytes < 1:
            raise InvalidInput("max_log_records, max_input_bytes and max_response_bytes must be positive")
        self.client = redis_client
        self.keys = Keys(namespace)
        self.namespace = namespace
        self.max_queue_size = max_queue_size
        self.max_input_bytes = max_input_bytes
        self.max_response_bytes = max_response_bytes
        self.max_log_records = max_log_records
        self._run = ScriptRunner(redis_client, self.keys, max_log_records)
        self._owns_client = False
        self._checked = False

    @classmethod
    def from_url(cls, url: str = "redis://127.0.0.1:6379/0", namespace: str = "atp",
                 max_queue_size: int = 64, **options: Any) -> Tracker:
        """A tracker on a new client for ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
        tracker = cls(redis.Redis.from_url(url), namespace, max_queue_size, **options)
        tracker._owns_client = True
        return tracker

    def close(self) -> None:
        """Close the client's connections if this tracker created the client."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Tracker namespace={self.namespace!r} max_queue_size={self.max_queue_size}>"

    def _check_server(self) -> None:
        if not self._checked:
            self._checked = True
            _warn_if_evicting(self.client)

    def _call(self, name: str, *args: Any, extra_keys: tuple[str, ...] = ()) -> Any:
        self._check_server()
        return self._run(name, *args, extra_keys=extra_keys)

    def _checked_call(self, subject: str, name: str, *args: Any) -> Any:
        """Run a script; a refusal (negative code, optionally with details) raises."""
        result = self._call(name, *args)
        if isinstance(result, int) and result < 0:
            raise error_for_code(result, subject)
        if isinstance(result, list) and result and isinstance(result[0], int) and result[0] < 0:
            raise error_for_code(result[0], subject, result[1:])
        return result

    # ------------------------------------------------------------------ task types
    def register_task_type(self, identifier: str, handler: Handler, timeout: float = 3600,
                           timeret: float = -1, maxrestart: int = 2) -> None:
        """Create a task type, or update its settings (script ``register_type``).

        ``timeout``: seconds after a task's last status change at which an unfinished
        task is abandoned (``<= 0``: never). ``timeret``: seconds a finished task is
        kept (``<= 0``: forever). ``maxrestart`` (clamped at 0): re-enqueues of a
        timed-out or orphaned task before it is marked FAILED.

        Raises:
            InvalidInput: bad name, handler path, or settings.
        """
        check_text("task type", identifier)
        path = _handler_path(handler)
        if isinstance(maxrestart, bool) or not isinstance(maxrestart, int):
            raise InvalidInput(f"maxrestart must be an int, not {maxrestart!r:.80}")
        self._call("register_type", identifier, path, _seconds("timeout", timeout),
                   _seconds("timeret", timeret), max(0, maxrestart), extra_keys=(self.keys.typeseq,))

    def unregister_task_type(self, identifier: str, force: bool = False) -> None:
        """Remove a task type (script ``unregister_type``, in steps over the id buckets).

        Without ``force`` it refuses while any task of the type exists; with ``force``
        every task of the type goes first (all its keys, queue entries, deadlines).
        The walk costs O(task ids ever issued / 100) bucket reads.

        Raises:
            TaskTypeNotFound: no such type.
            TaskTypeInUse: tasks of the type exist and ``force`` is false.
        """
        check_text("task type", identifier)
        bucket = 0
        while True:
            done, bucket, _ = self._checked_call(
                f"task type {identifier!r}", "unregister_type", identifier,
                "1" if force else "0", bucket, _BUCKETS_PER_STEP)
            if done:
                return

    def get_task_type(self, identifier: str) -> TaskType:
        """The settings and counters of one task type.

        Raises:
            TaskTypeNotFound: no such type.
        """
        check_text("task type", identifier)
        number = self.client.hget(self.keys.types, identifier)
        if number is None:
            raise error_for_code(Code.TYPE_NOT_FOUND, f"task type {identifier!r}")
        return self._task_type(self.client.hgetall(self.keys.type(number.decode())))

    def list_task_types(self) -> list[TaskType]:
        """Every registered task type, sorted by name."""
        numbers = self.client.hvals(self.keys.types)
        pipe = self.client.pipeline(transaction=False)
        for n in numbers:
            pipe.hgetall(self.keys.type(n.decode()))
        return sorted((self._task_type(h) for h in pipe.execute() if h), key=lambda t: t.name)

    @staticmethod
    def _task_type(h: dict[bytes, bytes]) -> TaskType:
        counts = {f: int(h.get(f.encode(), 0)) for f in
                  ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")}
        return TaskType(name=_text(h[b"name"]), handler=_text(h[b"handler"]),
                        timeout=float(h[b"timeout"]), timeret=float(h[b"timeret"]),
                        maxrestart=int(h[b"maxrestart"]), counts=counts)

    # ------------------------------------------------------------------ queue
    def get_queue_size(self) -> int:
        """Tasks waiting in the queue (``LLEN``)."""
        return int(self.client.llen(self.keys.queue))

    def get_max_queue_size(self) -> int:
        """The queue limit ``enqueue_task`` enforces (``<= 0``: none)."""
        return self.max_queue_size

    def enqueue_task(self, type: str, identifier: str, input: Any, message: str = "") -> int:
        """Create a task (ACCEPTED) at the tail of the queue; returns its new id (script ``enqueue``).

        The size check, the task, its first log record and its queue entry are one
        atomic step, so the limit holds under any number of producers.

        Raises:
            QueueFull: the queue holds ``max_queue_size`` tasks.
            TaskTypeNotFound: the type is not registered.
            DuplicateTask: a task with this ``(type, identifier)`` exists.
            InvalidInput: bad identifier, or an input msgpack cannot encode or too large.
        """
        args = self._task_args(type, identifier, input, message)
        result = self._call("enqueue", self.max_queue_size, 1, *args)[0]
        if result < 0:
            raise error_for_code(result, f"task {type!r}::{identifier!r}")
        return int(result)

    def enqueue_many(self, tasks: Iterable[Sequence[Any]], *, chunk: int = 1000) -> list[int | RedisATPError]:
        """Enqueue many tasks, ``chunk`` per script call (script ``enqueue``).

        ``tasks`` holds ``(type, identifier, input)`` or ``(type, identifier, input,
        message)``. Each task is checked and created on its own, with the same
        guarantees as :meth:`enqueue_task`; the result has, per task in order, its
        new id or the error that refused it (:class:`QueueFull`, :class:`DuplicateTask`,
        :class:`TaskTypeNotFound`). Every input is validated before anything is
        sent: one bad input raises :class:`InvalidInput` and nothing is written.
        """
        items = list(tasks)
        args: list[Any] = []
        for item in items:
            if not 3 <= len(item) <= 4:
                raise InvalidInput("each task is (type, identifier, input[, message])")
            args.extend(self._task_args(*item))
        step = max(1, chunk)
        calls = [("enqueue", (self.max_queue_size, len(part) // 5, *part))
                 for part in (args[i * 5:(i + step) * 5] for i in range(0, len(items), step))]
        self._check_server()
        results = [r for reply in self._run.many(calls) for r in reply]
        return [r if r > 0 else error_for_code(r, f"task {items[i][0]!r}::{items[i][1]!r}")
                for i, r in enumerate(results)]

    def _task_args(self, type: str, identifier: str, input: Any, message: str = "") -> list[Any]:
        tname = check_text("task type", type)
        ident = check_text("identifier", identifier)
        return [tname, ident, Keys.task_digest(tname, ident), pack_input(input, self.max_input_bytes),
                _message(message)]

    def reenqueue_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Put a task back to ACCEPTED at the tail of the queue, ignoring the size limit
        (script ``reenqueue``). A finished task is re-run: its retention TTL is cleared.

        Raises:
            TaskNotFound: no such task.
            StaleTask: ``token`` is given and that run no longer owns the task.
        """
        tid = _task_id(task_id)
        self._checked_call(f"task {tid}", "reenqueue", tid, _token(token), _message(message))

    def dequeue_task(self, server_id: str, message: str = "", *, count: int = 1,
                     timeout: float | None = None) -> list[int]:
        """Take up to ``count`` tasks from the head of the queue for ``server_id``
        (script ``dequeue``): SCHEDULED, owned, with a deadline. Returns their ids.

        With ``timeout`` > 0, waits up to that many seconds for a task, woken by
        enqueue (``BZPOPMIN`` on the wake key), not by polling. Use :meth:`claim`
        to get each run's fencing token as well.

        Raises:
            QueueEmpty: nothing to take (or the wait ran out).
        """
        return [ts.task_id for ts in self.claim(server_id, message, count=count, timeout=timeout)]

    def claim(self, server_id: str, message: str = "", *, count: int = 1,
              timeout: float | None = None) -> list[TaskStatus]:
        """Like :meth:`dequeue_task`, but returns a :class:`TaskStatus` per task bound to
        its run: its status and response calls carry the run's token (fencing)."""
        reply = self._dequeue(server_id, message, count, timeout, None)
        return [TaskStatus(int(reply[i]), tracker=self, token=int(reply[i + 1]))
                for i in range(0, len(reply), 2)]

    def claim_started(self, server_id: str, message: str = "", start_message: str = "", *,
                      count: int = 1, timeout: float | None = None) -> list[StartedTask]:
        """Claim up to ``count`` tasks and start them (SCHEDULED, then RUNNING) in one
        script call: the worker's way to take work in one round trip."""
        return self._started(self._dequeue(server_id, message, count, timeout, _message(start_message)))

    def advance(self, server_id: str, ended: tuple[TaskStatus, Status, str] | None = None,
                start_message: str = "", count: int = 1) -> tuple[int, list[StartedTask]]:
        """The worker's step in one round trip (script ``advance``): end the run
        ``ended`` = ``(task_status, FINISHED or FAILED, message)`` unless its handler
        already ended it, then claim up to ``count`` tasks and start them.

        Returns the ending's code (1 ended, 0 nothing to do, or a negative
        :class:`~redis_atp.errors.Code` such as ``STALE``) and the started tasks;
        an empty list means the queue is empty (see :meth:`wait_for_work`).
        """
        owner = check_text("server id", server_id)
        if ended is None:
            end_args: tuple[Any, ...] = ("", "", "", "")
        else:
            ts, outcome, message = ended
            end_args = (_task_id(ts.task_id), _token(ts.token), int(outcome), _message(message))
        reply = self._call("advance", owner, Keys.owner_digest(owner), *end_args, count, _message(start_message))
        return int(reply[0]), self._started(reply[1:])

    def wait_for_work(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an enqueue signals work (``BZPOPMIN``
        on the wake key; no polling). True if woken; another waiter may still win."""
        return self.client.execute_command("BZPOPMIN", self.keys.wake, f"{max(timeout, 0.001):.3f}") is not None

    def _started(self, reply: list[Any]) -> list[StartedTask]:
        return [StartedTask(TaskStatus(int(reply[i]), tracker=self, token=int(reply[i + 1])),
                            _text(reply[i + 2]), _text(reply[i + 3]), _text(reply[i + 4]),
                            unpack_input(reply[i + 5]))
                for i in range(0, len(reply), 6)]

    def _dequeue(self, server_id: str, message: str, count: int, timeout: float | None,
                 start_message: str | None) -> list[Any]:
        owner = check_text("server id", server_id)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"count must be a positive int, not {count!r:.80}")
        args = (owner, Keys.owner_digest(owner), count, _message(message),
                "0" if start_message is None else "1", start_message or "")
        deadline = None if not timeout or timeout <= 0 else time.monotonic() + timeout
        while True:
            reply = self._call("dequeue", *args)
            if reply:
                return list(reply)
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise QueueEmpty("the task queue is empty")
            self.wait_for_work(remaining)

    # ------------------------------------------------------------------ status changes
    def start_task(self, task_id: int, message: str = "", *,
                   token: int | None = None) -> tuple[str, str, str, Any]:
        """Mark a dequeued task RUNNING; returns ``(type, identifier, handler, input)``
        (script ``start``).

        Raises:
            TaskNotFound, StaleTask, InvalidTransition: the task is not SCHEDULED,
            RUNNING or PAUSED.
        """
        tid = _task_id(task_id)
        t, ident, handler, raw = self._checked_call(
            f"task {tid}", "start", tid, _token(token), _message(message))
        return (_text(t), _text(ident), _text(handler), unpack_input(raw))

    def _finish(self, task_id: int, status: Status, message: str, token: int | None,
                if_unfinished: bool = False) -> bool:
        tid = _task_id(task_id)
        return bool(self._checked_call(f"task {tid}", "finish", tid, _token(token), int(status),
                                       _message(message), "1" if if_unfinished else "0"))

    def stop_task_success(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a task FINISHED (script ``finish``). Unfenced, any task may be ended; a
        queued one leaves the queue.

        Raises:
            TaskNotFound, StaleTask.
        """
        self._finish(task_id, Status.FINISHED, message, token)

    def stop_task_failure(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a task FAILED (script ``finish``); see :meth:`stop_task_success`."""
        self._finish(task_id, Status.FAILED, message, token)

    def stop_task_success_if_not_finished(self, task_id: int, message: str = "", *,
                                          token: int | None = None) -> bool:
        """Mark a task FINISHED unless it is FINISHED or FAILED already (script ``finish``);
        returns whether it changed."""
        return self._finish(task_id, Status.FINISHED, message, token, if_unfinished=True)

    def pause_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a live task PAUSED (script ``progress``); refreshes its deadline.

        Raises:
            TaskNotFound, StaleTask, InvalidTransition: the task is not SCHEDULED,
            RUNNING or PAUSED.
        """
        self._progress(task_id, Status.PAUSED, message, token)

    def resume_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Mark a live task RUNNING (script ``progress``); see :meth:`pause_task`."""
        self._progress(task_id, Status.RUNNING, message, token)

    def _progress(self, task_id: int, status: Status, message: str, token: int | None) -> None:
        tid = _task_id(task_id)
        self._checked_call(f"task {tid}", "progress", tid, _token(token), int(status), _message(message))

    def set_task_response(self, task_id: int, response: str | bytes, mime_type: str = "text/xml", *,
                          token: int | None = None) -> None:
        """Store (or replace) a task's response and its MIME type (script ``set_response``).

        Raises:
            TaskNotFound, StaleTask, InvalidInput: not str/bytes, or too large.
        """
        tid = _task_id(task_id)
        raw, kind = pack_response(response, self.max_response_bytes)
        if not isinstance(mime_type, str):
            raise InvalidInput(f"mime_type must be str, not {type(mime_type).__name__}")
        self._checked_call(f"task {tid}", "set_response", tid, _token(token), raw, kind, mime_type)

    # ------------------------------------------------------------------ reads
    def _read(self, task_id: int, what: str) -> list[Any]:
        tid = _task_id(task_id)
        return self._checked_call(f"task {tid}", "read_task", tid, "", "", "", what)  # type: ignore[no-any-return]

    def _read_by_identifier(self, type: str, identifier: str, what: str) -> list[Any]:
        tname, ident = check_text("task type", type), check_text("identifier", identifier)
        return self._checked_call(f"task {type!r}::{identifier!r}", "read_task", "",  # type: ignore[no-any-return]
                                  Keys.task_digest(tname, ident), tname, ident, what)

    def get_task_info(self, task_id: int) -> tuple[str, str, Status, str]:
        """``(type, identifier, code, name)`` of a task. Raises :class:`TaskNotFound`."""
        _, t, ident, status = self._read(task_id, "info")[:4]
        s = Status(int(status))
        return (_text(t), _text(ident), s, s.name)

    def get_task_identifier(self, task_id: int) -> tuple[str, str]:
        """``(type, identifier)`` of a task. Raises :class:`TaskNotFound`."""
        _, t, ident = self._read(task_id, "info")[:3]
        return (_text(t), _text(ident))

    def get_task_status(self, task_id: int) -> tuple[Status, str]:
        """``(code, name)`` of a task's status. Raises :class:`TaskNotFound`."""
        return Status(int(self._read(task_id, "info")[3])).pair()

    def get_task_status_by_identifier(self, type: str, identifier: str) -> tuple[Status, str]:
        """``(code, name)`` of the status of task ``(type, identifier)``. Raises :class:`TaskNotFound`."""
        return Status(int(self._read_by_identifier(type, identifier, "info")[3])).pair()

    def get_task_id(self, type: str, identifier: str) -> int:
        """The id of task ``(type, identifier)``. Raises :class:`TaskNotFound`."""
        return int(self._read_by_identifier(type, identifier, "info")[0])

    def get_task_response(self, type: str, identifier: str) -> tuple[str | bytes | None, str | None]:
        """``(response, mime_type)``, the response as stored (``str`` or ``bytes``), or
        ``(None, None)`` if none was stored. Raises :class:`TaskNotFound`."""
        raw, kind, mime = self._read_by_identifier(type, identifier, "response")
        return (unpack_response(raw, kind), None if mime is None else _text(mime))

    def get_task_log(self, type: str, identifier: str) -> list[LogRecord]:
        """The task's log, oldest first: ``(datetime UTC, (code, name), message)`` records.
        Raises :class:`TaskNotFound`."""
        return [_parse_record(r) for r in self._read_by_identifier(type, identifier, "log") if r]

    def get_task_input(self, task_id: int) -> Any:
        """The decoded input of a task. Raises :class:`TaskNotFound`."""
        return unpack_input(self._read(task_id, "input")[0])

    def describe_task(self, task_id: int) -> dict[str, Any]:
        """Everything about one task, for operators (``redis-atp show``)."""
        v = self._read(task_id, "show")
        status = Status(int(v[3]))
        return {
            "id": int(v[0]), "type": _text(v[1]), "identifier": _text(v[2]),
            "status": status.name, "code": int(status),
            "owner": None if v[4] is None else _text(v[4]),
            "run": int(v[5] or 0), "restarts": int(v[6] or 0), "handler": _text(v[7]),
            "ttl_ms": int(v[8]) if int(v[8]) >= 0 else None,
            "deadline_ms": int(v[9]) if v[9] else None,
            "response_bytes": int(v[10]), "mime_type": _text(v[11]) or None,
            "input": unpack_input(v[12]),
            "log": [_parse_record(r) for r in v[13:] if r],
            "key": self.keys.task(Keys.task_digest(v[1], v[2])),
        }

    # ------------------------------------------------------------------ deletion, housekeeping
    def delete_task(self, task_id: int) -> None:
        """Delete a task and every key and index entry of it (script ``delete``).
        Raises :class:`TaskNotFound`."""
        tid = _task_id(task_id)
        self._checked_call(f"task {tid}", "delete", tid, "", "", "")

    def delete_task_by_identifier(self, type: str, identifier: str) -> None:
        """Delete task ``(type, identifier)`` (script ``delete``). Raises :class:`TaskNotFound`."""
        tname, ident = check_text("task type", type), check_text("identifier", identifier)
        self._checked_call(f"task {type!r}::{identifier!r}", "delete", "",
                           Keys.task_digest(tname, ident), tname, ident)

    def reenqueue_zombie_tasks(self, message: str = "") -> list[tuple[int, str]]:
        """Tasks past their deadline go back to the queue, or to FAILED once they used
        up ``maxrestart`` (script ``reap_zombies``, 500 tasks per call). Safe to run
        from many workers at once. Returns ``(task_id, "type::identifier")`` of each."""
        return [(tid, f"{t}::{i}") for tid, t, i, _ in self.reap_zombies(message)]

    def reap_zombies(self, message: str = "") -> list[tuple[int, str, str, Status]]:
        """Like :meth:`reenqueue_zombie_tasks`, returning ``(id, type, identifier, new status)``."""
        msg = _message(message)
        acted: list[tuple[int, str, str, Status]] = []
        while True:
            reply = self._call("reap_zombies", _REAP_BATCH, msg)
            for i in range(0, len(reply), 4):
                tid, kind, ident, status = reply[i:i + 4]
                acted.append((int(tid), _text(kind), _text(ident), Status(int(status))))
            if len(reply) < _REAP_BATCH * 4:
                return acted

    def delete_retired_tasks(self) -> list[tuple[int, str]]:
        """Remove FINISHED/FAILED tasks whose retention, by their type's current ``timeret``,
        has passed (script ``retire``, in steps over the id buckets). TTLs already free
        every task that ended under a positive ``timeret``, so nothing needs to call
        this for memory to be freed; it catches tasks kept by an older setting."""
        removed: list[tuple[int, str]] = []
        bucket = 0
        while True:
            bucket, step = self.retire_step(bucket, _BUCKETS_PER_STEP)
            removed += step
            if not bucket:
                return removed

    def retire_step(self, first_bucket: int, buckets: int) -> tuple[int, list[tuple[int, str]]]:
        """One step of :meth:`delete_retired_tasks` over ``buckets`` id buckets from
        ``first_bucket``; returns the next bucket (0 after the last) and what it removed."""
        reply = self._call("retire", first_bucket, buckets)
        removed = [(int(reply[i]), f"{_text(reply[i + 1])}::{_text(reply[i + 2])}")
                   for i in range(1, len(reply), 3)]
        return int(reply[0]), removed

    # ------------------------------------------------------------------ inspection
    def count_overdue(self) -> int:
        """Live tasks past their deadline (what the next zombie sweep would act on)."""
        return int(self.client.zcount(self.keys.deadlines, "-inf", int(time.time() * 1000)))

    def last_task_id(self) -> int:
        """The last task id handed out (0 if none)."""
        return int(self.client.get(self.keys.seq) or 0)

    def id_buckets(self) -> int:
        """How many id buckets the namespace spans (``last_task_id() // 100 + 1``)."""
        return self.last_task_id() // IDS_PER_BUCKET + 1


def _token(token: int | None) -> str:
    if token is None:
        return ""
    if isinstance(token, bool) or not isinstance(token, int):
        raise InvalidInput(f"token must be an int run number, not {token!r:.80}")
    return str(token)
