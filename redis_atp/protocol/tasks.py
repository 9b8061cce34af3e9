"""Operations that create, move and end tasks: one script call each (the dequeue may
wait, and a sharded dequeue tries each shard). Arguments are checked before the
first request, so a refused call sends nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from .. import validate
from ..errors import Code, InvalidInput, QueueEmpty, QueueFull, RedisATPError, error_for_code
from ..keys import Keys, check_text
from ..models import Claim
from ..serialization import pack_response
from ..status import Status
from .namespace import Namespace, text, token_base
from .requests import TRANSIENT, Batch, Command, Op, Reconnect, ScriptCall

__all__ = ["call", "checked", "enqueue_task", "enqueue_many", "reenqueue_task", "dequeue", "dequeue_task", "claim",
           "start_task", "finish", "wait_for_work", "wait_task",
           "cancel_task", "cancels", "cancelled_flags", "progress", "set_task_response", "delete_task",
           "delete_task_by_identifier", "CLUSTER_WAIT_SLICE"]

#: On a Redis Cluster an idle consumer of a sharded namespace blocks on one shard at a time.
CLUSTER_WAIT_SLICE = 0.25


def call(ns: Namespace, request: ScriptCall | Batch | Command) -> Op[Any]:
    """Send one request once the server check is done; its reply as it is."""
    if not ns.checked:
        yield from ns.check()
    return (yield request)


def checked(ns: Namespace, subject: str, call: ScriptCall) -> Op[Any]:
    """Run a script; a refusal (a negative code, optionally with details) raises."""
    if not ns.checked:
        yield from ns.check()
    result = yield call
    if isinstance(result, int) and result < 0:
        raise error_for_code(result, subject)
    if isinstance(result, list) and result and isinstance(result[0], int) and result[0] < 0:
        raise error_for_code(result[0], subject, result[1:])
    return result


def _task_args(ns: Namespace, type: str, identifier: str, input: Any, message: str = "") -> list[Any]:
    tname = check_text("task type", type)
    ident = check_text("identifier", identifier)
    return [tname, ident, Keys.task_digest(tname, ident), ns.serializer.pack(input, ns.max_input_bytes),
            validate.message(message)]


def _refusal(ns: Namespace, code: int, subject: str, limit: int, size: int) -> RedisATPError:
    if code == Code.QUEUE_FULL:
        where = "" if ns.shards == 1 else f" on this task's shard (of {ns.shards})"
        return QueueFull(f"{subject}: the queue is full: {size} tasks waiting{where}, limit {limit}")
    return error_for_code(code, subject)


def enqueue_task(ns: Namespace, type: str, identifier: str, input: Any, message: str = "",
                 delay: float | None = None, eta: datetime | float | None = None, priority: int = 0) -> Op[int]:
    args = _task_args(ns, type, identifier, input, message)
    when = (*validate.due(delay, eta), validate.priority(priority))
    shard = Keys.shard_of(args[2], ns.shards)
    if not ns.checked:
        yield from ns.check()
    result, limit, size = yield ns.call("enqueue", 1, *when, *args, shard=shard)
    if result < 0:
        raise _refusal(ns, result, f"task {type!r}::{identifier!r}", limit, size)
    return int(result)


#: Tasks per enqueue script call: the default, and the most (a call of 500 stays near 5 ms of Redis time).
ENQUEUE_CHUNK, MAX_ENQUEUE_CHUNK = 200, 500
#: The first call of a stream is smaller, so Redis starts sooner; each next one is half
#: as large again (up to the chunk), which the client encodes in about the time Redis
#: stores the one before (doubling left Redis waiting for the client).
FIRST_CHUNK = 32


def enqueue_many(ns: Namespace, tasks: Iterable[Sequence[Any]], chunk: int = ENQUEUE_CHUNK, delay: float | None = None,
                 eta: datetime | float | None = None, priority: int = 0) -> Op[list[int | RedisATPError]]:
    """Enqueue up to ``chunk`` tasks per script call, streamed: each call is sent as soon as
    its tasks are checked and encoded, so Redis stores one chunk while the next is
    encoded (the first calls are smaller, so Redis does not wait for a whole chunk).
    A task that cannot be encoded gets its error as its result and is not sent; a
    malformed item (not a 3- or 4-tuple) refuses the whole call first."""
    items = list(tasks)
    when = (*validate.due(delay, eta), validate.priority(priority))
    for item in items:
        if not isinstance(item, (tuple, list)) or not 3 <= len(item) <= 4:
            raise InvalidInput(f"each task is (type, identifier, input[, message]), not {item!r:.80}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InvalidInput(f"chunk must be a positive int, not {chunk!r:.80}")
    step = min(chunk, MAX_ENQUEUE_CHUNK)
    results: list[int | RedisATPError] = [0] * len(items)
    order: list[list[int]] = []  # the item indices of each call, in the order they are sent

    def calls() -> Iterator[ScriptCall]:
        start, size = 0, min(step, FIRST_CHUNK)
        while start < len(items):
            end = min(start + size, len(items))
            by_shard: dict[int, tuple[list[int], list[Any]]] = {}
            for i in range(start, end):
                try:
                    args = _task_args(ns, *items[i])
                except InvalidInput as exc:
                    results[i] = exc
                    continue
                indices, flat = by_shard.setdefault(Keys.shard_of(args[2], ns.shards), ([], []))
                indices.append(i)
                flat += args
            for shard, (indices, flat) in by_shard.items():
                order.append(indices)
                yield ns.call("enqueue", len(indices), *when, *flat, shard=shard)
            start, size = end, min(size + size // 2, step)

    if not ns.checked:
        yield from ns.check()
    replies = (yield Batch(calls())) if items else []
    for indices, reply in zip(order, replies, strict=True):
        limit, size = reply[-2:]
        for i, r in zip(indices, reply, strict=False):
            results[i] = r if r > 0 else _refusal(ns, r, f"task {items[i][0]!r}::{items[i][1]!r}", limit, size)
    return results


def reenqueue_task(ns: Namespace, task_id: int, message: str = "", token: int | None = None) -> Op[None]:
    tid = validate.task_id(task_id)
    yield from checked(ns, f"task {tid}", ns.call("reenqueue", tid, validate.token(token), validate.message(message),
                                                  shard=ns.shard_of_id(tid)))


def dequeue(ns: Namespace, server_id: str, message: str, count: int, timeout: float | None,
            start_message: str | None) -> Op[list[Any]]:
    """Claim up to ``count`` tasks from one shard, waiting up to ``timeout`` seconds for
    one (``BZPOPMIN`` on the wake keys, never past the next delayed task's due time);
    with ``start_message`` they are started too. The reply holds 2 fields per task
    (id, token), or 6 when started (then type, identifier, handler, raw input)."""
    owner = check_text("server id", server_id)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInput(f"count must be a positive int, not {count!r:.80}")
    head = (owner, Keys.owner_digest(owner))
    tail = (validate.message(message), "0" if start_message is None else "1", start_message or "")
    per_task = 2 if start_message is None else 6  # reply fields
    deadline = None if not timeout or timeout <= 0 else time.monotonic() + timeout
    if not ns.checked:
        yield from ns.check()
    while True:
        due_in = float("inf")
        for shard in ns.next_shards():
            got: list[Any] = []
            while len(got) < count * per_task:  # a script call claims a bounded number of tasks
                reply = yield ns.call("dequeue", *head, count - len(got) // per_task, *tail, token_base(), shard=shard)
                got += reply[2:]
                if int(reply[1]) >= 0:
                    due_in = min(due_in, int(reply[1]) / 1000)
                if int(reply[0]) == 0:  # no ready task left on the shard
                    break
            if got:
                return got
        remaining = 0.0 if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise QueueEmpty("the task queue is empty")
        yield wait_for_work(ns, min(remaining, due_in))


def wait_for_work(ns: Namespace, timeout: float) -> Command:
    """Block up to ``timeout`` seconds until an enqueue signals work (``BZPOPMIN`` on the
    wake keys; no polling); the reply is None if not woken, and another waiter may
    still win. On a Redis Cluster with shards, one shard's key at a time, in slices."""
    keys = [k.wake for k in ns.shard_keys]
    if ns.cluster and ns.shards > 1:
        keys = [keys[ns.next_shards()[0]]]
        timeout = min(timeout, CLUSTER_WAIT_SLICE)
    return Command("BZPOPMIN", *keys, f"{max(timeout, 0.001):.3f}")


def claim(ns: Namespace, server_id: str, message: str = "", count: int = 1,
          timeout: float | None = None) -> Op[list[Claim]]:
    reply = yield from dequeue(ns, server_id, message, count, timeout, None)
    return [Claim(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]


def dequeue_task(ns: Namespace, server_id: str, message: str = "", count: int = 1,
                 timeout: float | None = None) -> Op[list[int]]:
    return [c.task_id for c in (yield from claim(ns, server_id, message, count, timeout))]


def start_task(ns: Namespace, task_id: int, message: str = "",
               token: int | None = None) -> Op[tuple[str, str, str, Any]]:
    tid = validate.task_id(task_id)
    t, ident, handler, raw = yield from checked(ns, f"task {tid}", ns.call(
        "start", tid, validate.token(token), validate.message(message), shard=ns.shard_of_id(tid)))
    return (text(t), text(ident), text(handler), ns.decode_input(raw))


def finish(ns: Namespace, task_id: int, status: Status, message: str, token: int | None,
           if_unfinished: bool = False) -> Op[bool]:
    """End a task FINISHED or FAILED (script ``finish``); ``if_unfinished``: unless it
    ended already. Returns whether it changed."""
    tid = validate.task_id(task_id)
    changed = yield from checked(ns, f"task {tid}", ns.call(
        "finish", tid, validate.token(token), int(status), validate.message(message),
        "1" if if_unfinished else "0", "", "", shard=ns.shard_of_id(tid)))
    return bool(changed)


def progress(ns: Namespace, task_id: int, status: Status, message: str, token: int | None) -> Op[None]:
    tid = validate.task_id(task_id)
    yield from checked(ns, f"task {tid}", ns.call("progress", tid, validate.token(token), int(status),
                                                  validate.message(message), shard=ns.shard_of_id(tid)))


def set_task_response(ns: Namespace, task_id: int, response: str | bytes, mime_type: str = "text/xml",
                      token: int | None = None, if_absent: bool = False) -> Op[bool]:
    """Store a response (script ``set_response``); ``if_absent``: only if the task has
    none yet. Returns whether it was stored."""
    tid = validate.task_id(task_id)
    raw, kind = pack_response(response, ns.max_response_bytes)
    if not isinstance(mime_type, str):
        raise InvalidInput(f"mime_type must be str, not {type(mime_type).__name__}")
    return bool((yield from checked(ns, f"task {tid}", ns.call(
        "set_response", tid, validate.token(token), raw, kind, mime_type, "1" if if_absent else "0",
        shard=ns.shard_of_id(tid)))))


#: Seconds one blocking wait of wait_task lasts at most before it looks at the task again
#: (a deleted task, whose signal a failover lost, or a client's socket timeout).
WAIT_SLICE = 5.0


def wait_task(ns: Namespace, task_id: int, timeout: float | None = None) -> Op[tuple[Status, str]]:
    """Block until task ``task_id`` is FINISHED or FAILED (script ``watch``, then ``BLMOVE``
    on its end signal; no polling); returns its ``(code, name)``.

    Raises:
        TimeoutError: ``timeout`` seconds passed first.
        TaskNotFound: no such task (or it was deleted while waited for).
    """
    tid = validate.task_id(task_id)
    if timeout is not None:
        validate.seconds("timeout", timeout)
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    reconnect = Reconnect()
    while True:
        try:  # the look and the wait are safe to repeat: a connection blip is ridden out
            reply = yield from checked(ns, f"task {tid}", ns.call("watch", tid, shard=ns.shard_of_id(tid)))
            if int(reply[1]):
                return Status(int(reply[0])).pair()
            remaining = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"task {tid} did not end within {timeout} s (it is {Status(int(reply[0])).name})")
            done = reply[2]
            yield Command("BLMOVE", done, done, "RIGHT", "LEFT", f"{max(0.001, min(remaining, WAIT_SLICE)):.3f}")
            reconnect.ok()
        except TRANSIENT as exc:
            yield reconnect.after(exc)


def cancel_task(ns: Namespace, task_id: int, message: str = "") -> Op[bool]:
    tid = validate.task_id(task_id)
    return bool((yield from checked(ns, f"task {tid}", ns.call("cancel", tid, validate.message(message),
                                                               shard=ns.shard_of_id(tid)))))


def cancels(ns: Namespace) -> Op[int]:
    """How many live tasks were ever cancelled in the namespace (the shards' ``cancels``
    counters): a worker looks at its runs' flags only when this moved."""
    return sum(int(n or 0) for n in (yield ns.each_shard("HGET", "cancels", key="config")))


def cancelled_flags(ns: Namespace, started: Sequence[Any]) -> Op[list[bool]]:
    """Whether each started task (with ``type`` and ``identifier``) was cancelled: one
    pipelined ``HGET`` per task, for a worker's periodic look at what it runs."""
    keys = [ns.shard_keys[Keys.shard_of(d, ns.shards)].task(d) for d in
            (Keys.task_digest(t.type.encode(), t.identifier.encode()) for t in started)]
    return [bool(v) for v in (yield Batch([Command("HGET", k, "cancelled") for k in keys]))]


def delete_task(ns: Namespace, task_id: int) -> Op[None]:
    tid = validate.task_id(task_id)
    yield from checked(ns, f"task {tid}", ns.call("delete", tid, "", "", "", shard=ns.shard_of_id(tid)))


def delete_task_by_identifier(ns: Namespace, type: str, identifier: str) -> Op[None]:
    tname, ident = check_text("task type", type), check_text("identifier", identifier)
    digest = Keys.task_digest(tname, ident)
    yield from checked(ns, f"task {type!r}::{identifier!r}", ns.call(
        "delete", "", digest, tname, ident, shard=Keys.shard_of(digest, ns.shards)))
