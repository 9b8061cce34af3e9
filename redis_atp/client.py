"""``Tracker``: the object API, bound to one redis-py client and one namespace.

Every state change is exactly one Lua script call (named in each method's
docstring); reads are single commands or the ``read_task`` script. The seed's
camelCase module API in :mod:`redis_atp.tracker` delegates here.

A namespace may be sharded over S hash tags (``shards=S``) so that it spreads
over the slots of a Redis Cluster. A task lives on the shard its ``(type,
identifier)`` digest names, and its id (``seq * S + shard``) names the same
shard, so every call about one task is still one round trip to one slot.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from typing import Any

from redis.cluster import RedisCluster

from . import validate
from .connection import client_from_url, warn_if_evicting
from .errors import Code, InvalidInput, QueueEmpty, QueueFull, RedisATPError, error_for_code
from .keys import DEFAULT_QUEUE_LIMIT, Keys, check_text
from .models import LogRecord, StartedTask, TaskType, parse_record
from .scripts import Call, ScriptRunner, run_many
from .serialization import pack_response, serializer_named, unpack_response
from .status import Status
from .taskstatus import TaskStatus
from .validate import Handler

__all__ = ["Tracker"]

#: Tasks and id buckets (100 ids each) per call of the batched scripts: each call
#: stays well under 10 ms of Redis time at any scale.
_REAP_BATCH = 100
BUCKETS_PER_CALL = 2
_COUNTS = ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")
#: On a Redis Cluster an idle consumer of a sharded namespace blocks on one shard at a time.
_CLUSTER_WAIT_SLICE = 0.25


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _is_async(client: Any) -> bool:
    return type(client).__module__.startswith("redis.asyncio")


def _token_base() -> int:
    """Random fencing tokens for a claim: 50 bits, so base + count stays exact in Lua."""
    return secrets.randbits(50)


class Tracker:
    """The process tracker on one Redis namespace.

    Args:
        redis_client: a redis-py client (``redis.Redis``, a Sentinel ``master_for``
            client, ``redis.cluster.RedisCluster``) with ``decode_responses=False``;
            for asyncio, see ``redis_atp.aio``.
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

    def __init__(
        self,
        redis_client: Any,
        namespace: str = "atp",
        max_queue_size: int | None = None,
        *,
        shards: int = 1,
        serializer: str = "msgpack",
        max_input_bytes: int = 1 << 20,
        max_response_bytes: int = 16 << 20,
        max_log_records: int = 100,
    ) -> None:
        kwargs: dict[str, Any] = getattr(redis_client, "get_connection_kwargs", dict)()
        if kwargs.get("decode_responses"):
            raise InvalidInput("redis-atp needs a client with decode_responses=False (inputs are binary)")
        for name, value in (("max_input_bytes", max_input_bytes), ("max_response_bytes", max_response_bytes),
                            ("max_log_records", max_log_records), ("shards", shards),
                            ("max_queue_size", 0 if max_queue_size is None else max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an int, not {value!r:.80}")
        if max_log_records < 1 or max_input_bytes < 1 or max_response_bytes < 1 or not 1 <= shards <= 1024:
            raise InvalidInput("max_log_records, max_input_bytes and max_response_bytes must be positive, "
                               "and shards 1-1024")
        if _is_async(redis_client):
            raise InvalidInput("Tracker needs a synchronous redis-py client; this one is from redis.asyncio")
        self.client = redis_client
        self.namespace = namespace
        self.shards = shards
        self.shard_keys = [Keys(namespace, i) for i in range(shards)]
        self.keys = self.shard_keys[0]
        self.serializer = serializer_named(serializer)
        self._limit_to_set = max_queue_size
        self.max_input_bytes = max_input_bytes
        self.max_response_bytes = max_response_bytes
        self.max_log_records = max_log_records
        self._runs = [ScriptRunner(redis_client, k, max_log_records, shards) for k in self.shard_keys]
        self._cluster = isinstance(redis_client, RedisCluster)
        self._rotation = 0
        self._owns_client = False
        self._checked = False

    @classmethod
    def from_url(cls, url: str = "redis://127.0.0.1:6379/0", namespace: str = "atp",
                 max_queue_size: int | None = None, **options: Any) -> Tracker:
        """A tracker on a new client for ``url``: ``redis://``, ``rediss://``, ``unix://``,
        ``redis+cluster://host:port[,…]`` or ``redis+sentinel://host:port[,…]/service``
        (see :mod:`redis_atp.connection`)."""
        tracker = cls(client_from_url(url), namespace, max_queue_size, **options)
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
        shards = f" shards={self.shards}" if self.shards > 1 else ""
        return f"<Tracker namespace={self.namespace!r}{shards}>"

    # ------------------------------------------------------------------ plumbing
    def _check_server(self, registering: bool = False) -> None:
        """Once per tracker: the eviction warning, that the namespace has this tracker's
        shard count and serializer, and the queue limit it was given. The namespace
        records them at its first registration; one without the record has one shard
        and msgpack (registered before these were recorded)."""
        if self._checked:
            return
        warn_if_evicting(self.client)
        config = self.keys.config
        shards, serializer = self.client.hmget(config, "shards", "serializer")
        if registering and serializer is None:
            legacy = bool(self.client.hlen(self.keys.types))  # registered before these were recorded
            if shards is None and self.shards > 1 and legacy:
                raise InvalidInput(f"namespace {self.namespace!r} already has task types with shards=1")
            pipe = self.client.pipeline(transaction=False)
            for keys in self.shard_keys:
                pipe.hsetnx(keys.config, "serializer", "msgpack" if legacy else self.serializer.name)
                pipe.hsetnx(keys.config, "max_queue_size", DEFAULT_QUEUE_LIMIT)
            if self.shards > 1:
                pipe.hsetnx(config, "shards", self.shards)
            pipe.execute()
            shards, serializer = self.client.hmget(config, "shards", "serializer")
        elif shards is None and serializer is None and not self.client.hlen(self.keys.types):
            return  # nothing registered yet: check again on the next call
        if int(shards or 1) != self.shards:
            raise InvalidInput(f"namespace {self.namespace!r} has {int(shards or 1)} shards; this tracker "
                               f"was created with shards={self.shards}")
        stored = serializer.decode() if serializer else "msgpack"
        if stored != self.serializer.name:
            raise InvalidInput(f"namespace {self.namespace!r} stores inputs with {stored}; this tracker was "
                               f"created with serializer={self.serializer.name!r} (workers: --serializer {stored})")
        self._checked = True
        if self._limit_to_set is not None:
            self.set_max_queue_size(self._limit_to_set)

    def _call(self, name: str, *args: Any, shard: int = 0, extra_keys: tuple[str, ...] = ()) -> Any:
        self._check_server()
        return self._runs[shard](name, *args, extra_keys=extra_keys)

    def _checked_call(self, subject: str, name: str, *args: Any, shard: int = 0) -> Any:
        """Run a script; a refusal (negative code, optionally with details) raises."""
        result = self._call(name, *args, shard=shard)
        if isinstance(result, int) and result < 0:
            raise error_for_code(result, subject)
        if isinstance(result, list) and result and isinstance(result[0], int) and result[0] < 0:
            raise error_for_code(result[0], subject, result[1:])
        return result

    def _many(self, calls: Sequence[Call]) -> list[Any]:
        self._check_server()
        return run_many(self.client, calls)

    def _shard_of_id(self, task_id: int) -> int:
        return task_id % self.shards

    def _next_shards(self) -> list[int]:
        """Every shard once, starting from a rotating one (fair dequeues)."""
        start = self._rotation = (self._rotation + 1) % self.shards
        return [(start + k) % self.shards for k in range(self.shards)]

    def _pipeline_each_shard(self, command: str, *args: Any, key: str) -> list[Any]:
        """Run a plain command once per shard (``key``: the attribute of :class:`Keys`)."""
        self._check_server()
        pipe = self.client.pipeline(transaction=False)
        for keys in self.shard_keys:
            pipe.execute_command(command, getattr(keys, key), *args)
        return list(pipe.execute())

    # ------------------------------------------------------------------ task types
    def register_task_type(self, identifier: str, handler: Handler, timeout: float = 3600,
                           timeret: float = -1, maxrestart: int = 2) -> None:
        """Create a task type, or update its settings (script ``register_type``, once per shard).

        ``timeout``: seconds after a task's last status change at which an unfinished
        task is abandoned (``<= 0``: never). ``timeret``: seconds a finished task is
        kept (``<= 0``: forever). ``maxrestart`` (clamped at 0): re-enqueues of a
        timed-out or orphaned task before it is marked FAILED.

        Raises:
            InvalidInput: bad name, handler path, or settings.
        """
        check_text("task type", identifier)
        path = validate.handler_path(handler)
        if isinstance(maxrestart, bool) or not isinstance(maxrestart, int):
            raise InvalidInput(f"maxrestart must be an int, not {maxrestart!r:.80}")
        args = (identifier, path, validate.seconds("timeout", timeout), validate.seconds("timeret", timeret),
                max(0, maxrestart))
        self._check_server(registering=True)
        for shard, keys in enumerate(self.shard_keys):
            self._call("register_type", *args, shard=shard, extra_keys=(keys.typeseq,))

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
        check_text("task type", identifier)
        passes = [True, False] if self.shards > 1 and not force else [False]
        for check_only in passes:
            for shard in range(self.shards):
                bucket, done = 0, 0
                while not done:
                    done, bucket, _ = self._checked_call(
                        f"task type {identifier!r}", "unregister_type", identifier, "1" if force else "0",
                        bucket, BUCKETS_PER_CALL, "1" if check_only else "0", shard=shard)

    def get_task_type(self, identifier: str) -> TaskType:
        """The settings and counters (summed over shards) of one task type.

        Raises:
            TaskTypeNotFound: no such type.
        """
        check_text("task type", identifier)
        numbers = self._pipeline_each_shard("HGET", identifier, key="types")
        if numbers[0] is None:
            raise error_for_code(Code.TYPE_NOT_FOUND, f"task type {identifier!r}")
        pipe = self.client.pipeline(transaction=False)
        for keys, number in zip(self.shard_keys, numbers, strict=True):
            pipe.hgetall(keys.type(number.decode()) if number else keys.type("missing"))
        hashes = [h for h in pipe.execute() if h]
        first = hashes[0]
        counts = {c: sum(int(h.get(c.encode(), 0)) for h in hashes) for c in _COUNTS}
        return TaskType(name=_text(first[b"name"]), handler=_text(first[b"handler"]),
                        timeout=float(first[b"timeout"]), timeret=float(first[b"timeret"]),
                        maxrestart=int(first[b"maxrestart"]), counts=counts)

    def list_task_types(self) -> list[TaskType]:
        """Every registered task type, sorted by name."""
        self._check_server()
        return [self.get_task_type(_text(n)) for n in sorted(self.client.hkeys(self.keys.types))]

    # ------------------------------------------------------------------ queue
    def get_queue_size(self) -> int:
        """Tasks waiting in the queue (the ``queued`` counter, summed over shards)."""
        return sum(int(n or 0) for n in self._pipeline_each_shard("GET", key="queued"))

    def get_max_queue_size(self) -> int:
        """The namespace's queue limit, which the enqueue script enforces (``<= 0``: none)."""
        self._check_server()
        stored = self.client.hget(self.keys.config, "max_queue_size")
        return DEFAULT_QUEUE_LIMIT if stored is None else int(stored)

    def set_max_queue_size(self, limit: int) -> None:
        """Set the namespace's queue limit for every producer (``<= 0``: no limit)."""
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidInput(f"max_queue_size must be an int, not {limit!r:.80}")
        pipe = self.client.pipeline(transaction=False)
        for keys in self.shard_keys:
            pipe.hset(keys.config, "max_queue_size", limit)
        pipe.execute()

    def _refusal(self, code: int, subject: str, limit: int, size: int) -> RedisATPError:
        if code == Code.QUEUE_FULL:
            where = "" if self.shards == 1 else f" on this task's shard (of {self.shards})"
            return QueueFull(f"{subject}: the queue is full: {size} tasks waiting{where}, limit {limit}")
        return error_for_code(code, subject)

    def enqueue_task(self, type: str, identifier: str, input: Any, message: str = "") -> int:
        """Create a task (ACCEPTED) at the tail of the queue; returns its new id (script ``enqueue``).

        The size check against the namespace's limit, the task, its first log record
        and its queue entry are one atomic step, so the limit holds under any number of
        producers.

        Raises:
            QueueFull: the queue holds ``get_max_queue_size()`` tasks (the error says both).
            TaskTypeNotFound: the type is not registered.
            DuplicateTask: a task with this ``(type, identifier)`` exists.
            InvalidInput: bad identifier, or an input the serializer cannot store, or too large.
        """
        args = self._task_args(type, identifier, input, message)
        shard = Keys.shard_of(args[2], self.shards)
        result, limit, size = self._call("enqueue", 1, *args, shard=shard,
                                         extra_keys=(self.shard_keys[shard].config,))
        if result < 0:
            raise self._refusal(result, f"task {type!r}::{identifier!r}", limit, size)
        return int(result)

    def enqueue_many(self, tasks: Iterable[Sequence[Any]], *, chunk: int = 1000) -> list[int | RedisATPError]:
        """Enqueue many tasks, ``chunk`` per script call (script ``enqueue``, pipelined).

        ``tasks`` holds ``(type, identifier, input)`` or ``(type, identifier, input,
        message)``. Each task is checked and created on its own, with the same
        guarantees as :meth:`enqueue_task`; the result has, per task in order, its
        new id or the error that refused it (:class:`QueueFull`, :class:`DuplicateTask`,
        :class:`TaskTypeNotFound`): check them. Every input is validated before anything
        is sent: one bad input raises :class:`InvalidInput` and nothing is written.
        """
        items = list(tasks)
        by_shard: dict[int, list[tuple[int, list[Any]]]] = {}
        for i, item in enumerate(items):
            if not 3 <= len(item) <= 4:
                raise InvalidInput("each task is (type, identifier, input[, message])")
            args = self._task_args(*item)
            by_shard.setdefault(Keys.shard_of(args[2], self.shards), []).append((i, args))
        step = max(1, chunk)
        calls: list[Call] = []
        order: list[list[int]] = []
        for shard, entries in by_shard.items():
            for start in range(0, len(entries), step):
                part = entries[start:start + step]
                calls.append((self._runs[shard], "enqueue", (len(part), *(a for _, args in part for a in args)),
                              (self.shard_keys[shard].config,)))
                order.append([i for i, _ in part])
        results: list[int | RedisATPError] = [0] * len(items)
        for indices, reply in zip(order, self._many(calls), strict=True):
            limit, size = reply[-2:]
            for i, r in zip(indices, reply, strict=False):
                results[i] = r if r > 0 else self._refusal(r, f"task {items[i][0]!r}::{items[i][1]!r}", limit, size)
        return results

    def _task_args(self, type: str, identifier: str, input: Any, message: str = "") -> list[Any]:
        tname = check_text("task type", type)
        ident = check_text("identifier", identifier)
        return [tname, ident, Keys.task_digest(tname, ident), self.serializer.pack(input, self.max_input_bytes),
                validate.message(message)]

    def reenqueue_task(self, task_id: int, message: str = "", *, token: int | None = None) -> None:
        """Put a task back to ACCEPTED at the tail of the queue, ignoring the size limit
        (script ``reenqueue``); a queued task keeps its place. A finished task is
        re-run: its retention TTL is cleared and its restart count reset.

        Raises:
            TaskNotFound: no such task.
            StaleTask: ``token`` is given and that run no longer owns the task.
        """
        tid = validate.task_id(task_id)
        self._checked_call(f"task {tid}", "reenqueue", tid, validate.token(token), validate.message(message),
                           shard=self._shard_of_id(tid))

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
        return self._started(self._dequeue(server_id, message, count, timeout, validate.message(start_message)))

    def advance(self, server_id: str, ended: tuple[TaskStatus, Status, str] | None = None,
                start_message: str = "", count: int = 1, wait: bool = False,
                maybe_waiting: bool = True) -> tuple[int, int, list[StartedTask]]:
        """The worker's step in one round trip (script ``advance``).

        Ends the run ``ended`` = ``(task_status, FINISHED or FAILED, message)`` unless
        its handler already ended it; then starts the task handed to ``server_id``
        (see :meth:`take_handoff`) or claims and starts up to ``count`` from the queue.
        A returned task is RUNNING under this claim: its handler may start. With
        ``wait`` (unsharded), finding nothing, ``server_id`` waits for a hand-off:
        the next task that becomes ACCEPTED is claimed for it, to be started with
        :meth:`take_handoff`; otherwise wait with :meth:`wait_for_work`. Stop waiting
        with :meth:`Fleet.release <redis_atp.fleet.Fleet.release>`. ``maybe_waiting=False``
        (the owner has not registered as a waiter since it last started a task: a busy
        worker thread) skips the look at its mailbox.

        Returns the ending's code (1 done, 0 nothing to do, or a negative
        :class:`~redis_atp.errors.Code` such as ``STALE``), the queue size left on the
        shard asked (no task and a size above 0: call again), and the started tasks.
        """
        owner = check_text("server id", server_id)
        odig = Keys.owner_digest(owner)
        msg = validate.message(start_message)
        end_args: tuple[Any, ...] = ("", "", "", "")
        shards = self._next_shards()
        if ended is not None:
            ts, outcome, message = ended
            tid = validate.task_id(ts.task_id)
            end_args = (tid, validate.token(ts.token), int(outcome), validate.message(message))
            shards = [self._shard_of_id(tid)] + [s for s in shards if s != self._shard_of_id(tid)]
        handoff = str(_token_base()) if wait and self.shards == 1 else ""
        reply = self._call("advance", owner, odig, *end_args, msg, count, _token_base(), handoff,
                           "1" if maybe_waiting else "0", shard=shards[0])
        tasks = self._started(reply[2:])
        for shard in shards[1:] if not tasks and count else []:  # sharded: the other shards
            tasks = self._started(self._call("dequeue", owner, odig, count, "", "1", msg, _token_base(),
                                             shard=shard)[1:])
            if tasks:
                break
        return int(reply[0]), int(reply[1]), tasks

    def wait_for_work(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an enqueue signals work (``BZPOPMIN``
        on the wake keys; no polling). True if woken; another waiter may still win.
        On a Redis Cluster with shards, one shard's key at a time, in slices."""
        keys = [k.wake for k in self.shard_keys]
        if self._cluster and self.shards > 1:
            keys = [keys[self._next_shards()[0]]]
            timeout = min(timeout, _CLUSTER_WAIT_SLICE)
        return self.client.execute_command("BZPOPMIN", *keys, f"{max(timeout, 0.001):.3f}") is not None

    def take_handoff(self, server_id: str, timeout: float, start_message: str = "") -> list[StartedTask]:
        """Block up to ``timeout`` seconds for a task handed to ``server_id`` while it
        waits (see :meth:`advance`) and start it (script ``take_handoff``), if its
        claim is still current. The wait (``BLMOVE`` of the mailbox onto itself, so the
        entry stays in Redis until the script takes it) and the script go in one write."""
        owner = check_text("server id", server_id)
        odig = Keys.owner_digest(owner)
        mailbox = self.keys.mailbox(odig)
        wait = ("BLMOVE", mailbox, mailbox, "LEFT", "LEFT", f"{max(timeout, 0.001):.3f}")
        self._check_server()
        return self._started(self._runs[0]("take_handoff", odig, validate.message(start_message), after=wait))

    def _started(self, reply: list[Any]) -> list[StartedTask]:
        return [StartedTask(TaskStatus(int(reply[i]), tracker=self, token=int(reply[i + 1])),
                            _text(reply[i + 2]), _text(reply[i + 3]), _text(reply[i + 4]), reply[i + 5])
                for i in range(0, len(reply), 6)]

    def _dequeue(self, server_id: str, message: str, count: int, timeout: float | None,
                 start_message: str | None) -> list[Any]:
        owner = check_text("server id", server_id)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"count must be a positive int, not {count!r:.80}")
        head = (owner, Keys.owner_digest(owner))
        tail = (validate.message(message), "0" if start_message is None else "1", start_message or "")
        per_task = 2 if start_message is None else 6  # reply fields
        deadline = None if not timeout or timeout <= 0 else time.monotonic() + timeout
        while True:
            for shard in self._next_shards():
                got: list[Any] = []
                while len(got) < count * per_task:  # a script call claims a bounded number of tasks
                    reply = self._call("dequeue", *head, count - len(got) // per_task, *tail, _token_base(),
                                       shard=shard)
                    got += reply[1:]
                    if int(reply[0]) == 0:  # the shard's queue is empty
                        break
                if got:
                    return got
            remaining = 0.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise QueueEmpty("the task queue is empty")
            self.wait_for_work(remaining)

    def _decode_input(self, raw: bytes | None, fallback: bool = False) -> Any:
        """A stored input, decoded; one that cannot be (written by hand, or by another
        version) is :class:`InvalidInput`, or with ``fallback`` its raw bytes."""
        try:
            return self.serializer.unpack(raw)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the same
            if fallback:
                return raw
            raise InvalidInput(f"the stored input cannot be decoded with {self.serializer.name}: "
                               f"{type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------------ status changes
    def start_task(self, task_id: int, message: str = "", *,
                   token: int | None = None) -> tuple[str, str, str, Any]:
        """Mark a dequeued task RUNNING; returns ``(type, identifier, handler, input)``
        (script ``start``).

        Raises:
            TaskNotFound, StaleTask, InvalidTransition: the task is not SCHEDULED,
            RUNNING or PAUSED.
        """
        tid = validate.task_id(task_id)
        t, ident, handler, raw = self._checked_call(
            f"task {tid}", "start", tid, validate.token(token), validate.message(message),
            shard=self._shard_of_id(tid))
        return (_text(t), _text(ident), _text(handler), self._decode_input(raw))

    def _finish(self, task_id: int, status: Status, message: str, token: int | None,
                if_unfinished: bool = False) -> bool:
        tid = validate.task_id(task_id)
        return bool(self._checked_call(f"task {tid}", "finish", tid, validate.token(token), int(status),
                                       validate.message(message), "1" if if_unfinished else "0",
                                       shard=self._shard_of_id(tid)))

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
        tid = validate.task_id(task_id)
        self._checked_call(f"task {tid}", "progress", tid, validate.token(token), int(status),
                           validate.message(message), shard=self._shard_of_id(tid))

    def set_task_response(self, task_id: int, response: str | bytes, mime_type: str = "text/xml", *,
                          token: int | None = None) -> None:
        """Store (or replace) a task's response and its MIME type (script ``set_response``).

        Raises:
            TaskNotFound, StaleTask, InvalidInput: not str/bytes, or too large.
        """
        tid = validate.task_id(task_id)
        raw, kind = pack_response(response, self.max_response_bytes)
        if not isinstance(mime_type, str):
            raise InvalidInput(f"mime_type must be str, not {type(mime_type).__name__}")
        self._checked_call(f"task {tid}", "set_response", tid, validate.token(token), raw, kind, mime_type,
                           shard=self._shard_of_id(tid))

    # ------------------------------------------------------------------ reads
    def _read(self, task_id: int, what: str) -> list[Any]:
        tid = validate.task_id(task_id)
        return self._checked_call(f"task {tid}", "read_task", tid, "", "", "", what,  # type: ignore[no-any-return]
                                  shard=self._shard_of_id(tid))

    def _read_by_identifier(self, type: str, identifier: str, what: str) -> list[Any]:
        tname, ident = check_text("task type", type), check_text("identifier", identifier)
        digest = Keys.task_digest(tname, ident)
        return self._checked_call(f"task {type!r}::{identifier!r}", "read_task", "",  # type: ignore[no-any-return]
                                  digest, tname, ident, what, shard=Keys.shard_of(digest, self.shards))

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
        return [parse_record(r) for r in self._read_by_identifier(type, identifier, "log") if r]

    def get_task_input(self, task_id: int) -> Any:
        """The decoded input of a task. Raises :class:`TaskNotFound`."""
        return self._decode_input(self._read(task_id, "input")[0])

    def describe_task(self, task_id: int) -> dict[str, Any]:
        """Everything about one task, for operators (``redis-atp show``)."""
        v = self._read(task_id, "show")
        status = Status(int(v[3]))
        return {
            "id": int(v[0]), "type": _text(v[1]), "identifier": _text(v[2]),
            "status": status.name, "code": int(status),
            "owner": _text(v[4]) if v[4] is not None and v[13] else None,
            "last_owner": None if v[4] is None else _text(v[4]),
            "run": int(v[5] or 0), "restarts": int(v[6] or 0), "handler": _text(v[7]),
            "ttl_ms": int(v[8]) if int(v[8]) >= 0 else None,
            "deadline_ms": int(v[9]) if v[9] else None,
            "response_bytes": int(v[10]), "mime_type": _text(v[11]) or None,
            "input": self._decode_input(v[12], fallback=True),
            "log": [parse_record(r) for r in v[14:] if r],
            "key": self.shard_keys[self._shard_of_id(int(v[0]))].task(Keys.task_digest(v[1], v[2])),
        }

    # ------------------------------------------------------------------ deletion, housekeeping
    def delete_task(self, task_id: int) -> None:
        """Delete a task and every key and index entry of it (script ``delete``).
        Raises :class:`TaskNotFound`."""
        tid = validate.task_id(task_id)
        self._checked_call(f"task {tid}", "delete", tid, "", "", "", shard=self._shard_of_id(tid))

    def delete_task_by_identifier(self, type: str, identifier: str) -> None:
        """Delete task ``(type, identifier)`` (script ``delete``). Raises :class:`TaskNotFound`."""
        tname, ident = check_text("task type", type), check_text("identifier", identifier)
        digest = Keys.task_digest(tname, ident)
        self._checked_call(f"task {type!r}::{identifier!r}", "delete", "", digest, tname, ident,
                           shard=Keys.shard_of(digest, self.shards))

    def reenqueue_zombie_tasks(self, message: str = "") -> list[tuple[int, str]]:
        """Tasks past their deadline go back to the queue, or to FAILED once they used
        up ``maxrestart`` (script ``reap_zombies``, 500 tasks per call). Safe to run
        from many workers at once. Returns ``(task_id, "type::identifier")`` of each."""
        return [(tid, f"{t}::{i}") for tid, t, i, _ in self.reap_zombies(message)]

    def reap_zombies(self, message: str = "", limit: int | None = None) -> list[tuple[int, str, str, Status]]:
        """Like :meth:`reenqueue_zombie_tasks`, returning ``(id, type, identifier, new status)``;
        ``limit``: stop after about that many tasks per shard (housekeeping's bound)."""
        msg = validate.message(message)
        acted: list[tuple[int, str, str, Status]] = []
        for shard in range(self.shards):
            done = 0
            while limit is None or done < limit:
                done += _REAP_BATCH
                reply = self._call("reap_zombies", _REAP_BATCH, msg, shard=shard)
                for i in range(0, len(reply), 4):
                    tid, kind, ident, status = reply[i:i + 4]
                    acted.append((int(tid), _text(kind), _text(ident), Status(int(status))))
                if len(reply) < _REAP_BATCH * 4:
                    break
        return acted

    def delete_retired_tasks(self) -> list[tuple[int, str]]:
        """Remove FINISHED/FAILED tasks whose retention, by their type's current ``timeret``,
        has passed (script ``retire``, in steps over the id buckets). TTLs already free
        every task that ended under a positive ``timeret``, so nothing needs to call
        this for memory to be freed; it catches tasks kept by an older setting."""
        removed: list[tuple[int, str]] = []
        for shard in range(self.shards):
            bucket = 0
            while True:
                bucket, step = self.retire_step(shard, bucket, BUCKETS_PER_CALL)
                removed += step
                if not bucket:
                    break
        return removed

    def retire_step(self, shard: int, first_bucket: int, buckets: int) -> tuple[int, list[tuple[int, str]]]:
        """One step of :meth:`delete_retired_tasks` on one shard over ``buckets`` id buckets
        from ``first_bucket``; returns the next bucket (0 after the last) and what it removed."""
        reply = self._call("retire", first_bucket, buckets, shard=shard)
        removed = [(int(reply[i]), f"{_text(reply[i + 1])}::{_text(reply[i + 2])}")
                   for i in range(1, len(reply), 3)]
        return int(reply[0]), removed

    # ------------------------------------------------------------------ inspection
    def _live_by_shard(self) -> list[tuple[int, int]]:
        """``(live, overdue)`` tasks per shard, from each type's live set and current timeout."""
        self._check_server()
        pipe = self.client.pipeline(transaction=False)
        for keys in self.shard_keys:
            pipe.hvals(keys.types)
        numbers = [[n.decode() for n in nums] for nums in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for keys, nums in zip(self.shard_keys, numbers, strict=True):
            for n in nums:
                pipe.hget(keys.type(n), "timeout")
        timeouts = iter(pipe.execute())
        now_ms = time.time() * 1000
        pipe = self.client.pipeline(transaction=False)
        for keys, nums in zip(self.shard_keys, numbers, strict=True):
            for n in nums:
                timeout = float(next(timeouts) or 0)
                pipe.zcard(keys.live(n))
                pipe.zcount(keys.live(n), "-inf", int(now_ms - timeout * 1000) if timeout > 0 else "(-inf")
        replies = iter(pipe.execute())
        out = []
        for nums in numbers:
            pairs = [(int(next(replies)), int(next(replies))) for _ in nums]
            out.append((sum(p[0] for p in pairs), sum(p[1] for p in pairs)))
        return out

    def count_overdue(self) -> int:
        """Live tasks past their type's timeout (what the next zombie sweep would act on)."""
        return sum(overdue for _, overdue in self._live_by_shard())

    def last_task_id(self) -> int:
        """The last task id handed out (0 if none)."""
        seqs = self._pipeline_each_shard("GET", key="seq")
        return max(int(seq or 0) * self.shards + shard if seq else 0 for shard, seq in enumerate(seqs))

    def shard_stats(self) -> list[dict[str, Any]]:
        """Per-shard figures for operators: key prefix, queue size, live and overdue tasks."""
        queues = self._pipeline_each_shard("GET", key="queued")
        return [{"shard": i, "prefix": k.prefix, "queue": int(q or 0), "live": lv, "overdue": o}
                for i, (k, q, (lv, o)) in enumerate(zip(self.shard_keys, queues, self._live_by_shard(), strict=True))]
