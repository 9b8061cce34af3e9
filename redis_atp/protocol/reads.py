"""Operations that only read: a task, a type, the queue, and the figures operators see.
Reads are single commands, pipelines of them, or the ``read_task`` script."""

from __future__ import annotations

import time
from typing import Any

from .. import validate
from ..errors import Code, error_for_code
from ..keys import DEFAULT_QUEUE_LIMIT, Keys, check_text
from ..models import LogRecord, TaskType, parse_record
from ..serialization import unpack_response
from ..status import Status
from .namespace import Namespace, text
from .requests import Batch, Command, Op
from .tasks import checked

__all__ = ["COUNTS", "read", "read_by_identifier", "get_task_info", "get_task_identifier", "get_task_status",
           "get_task_status_by_identifier", "get_task_id",
           "is_cancelled", "get_task_input", "get_task_type", "list_task_types",
           "get_queue_size", "get_queue_counts", "get_max_queue_size", "get_task_response", "get_task_log",
           "get_task_response_by_id", "get_task_log_by_id",
           "describe_task", "count_overdue", "last_task_id", "shard_stats"]

COUNTS = ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")


def read(ns: Namespace, task_id: int, what: str) -> Op[list[Any]]:
    """Script ``read_task`` by id; ``what``: ``info``, ``input``, ``response``, ``log`` or ``show``."""
    tid = validate.task_id(task_id)
    reply: list[Any] = yield from checked(ns, f"task {tid}", ns.call("read_task", tid, "", "", "", what,
                                                                     shard=ns.shard_of_id(tid)))
    return reply


def read_by_identifier(ns: Namespace, type: str, identifier: str, what: str) -> Op[list[Any]]:
    tname, ident = check_text("task type", type), check_text("identifier", identifier)
    digest = Keys.task_digest(tname, ident)
    reply: list[Any] = yield from checked(ns, f"task {type!r}::{identifier!r}", ns.call(
        "read_task", "", digest, tname, ident, what, shard=Keys.shard_of(digest, ns.shards)))
    return reply


def get_task_info(ns: Namespace, task_id: int) -> Op[tuple[str, str, Status, str]]:
    _, t, ident, status = (yield from read(ns, task_id, "info"))[:4]
    s = Status(int(status))
    return (text(t), text(ident), s, s.name)


def get_task_identifier(ns: Namespace, task_id: int) -> Op[tuple[str, str]]:
    _, t, ident = (yield from read(ns, task_id, "info"))[:3]
    return (text(t), text(ident))


def get_task_status(ns: Namespace, task_id: int) -> Op[tuple[Status, str]]:
    return Status(int((yield from read(ns, task_id, "info"))[3])).pair()


def get_task_status_by_identifier(ns: Namespace, type: str, identifier: str) -> Op[tuple[Status, str]]:
    return Status(int((yield from read_by_identifier(ns, type, identifier, "info"))[3])).pair()


def get_task_id(ns: Namespace, type: str, identifier: str) -> Op[int]:
    return int((yield from read_by_identifier(ns, type, identifier, "info"))[0])


def is_cancelled(ns: Namespace, task_id: int) -> Op[bool]:
    return bool((yield from read(ns, task_id, "info"))[7])


def get_task_input(ns: Namespace, task_id: int) -> Op[Any]:
    return ns.decode_input((yield from read(ns, task_id, "input"))[0])


def get_task_type(ns: Namespace, identifier: str) -> Op[TaskType]:
    check_text("task type", identifier)
    if not ns.checked:
        yield from ns.check()
    numbers = yield ns.each_shard("HGET", identifier, key="types")
    if numbers[0] is None:
        raise error_for_code(Code.TYPE_NOT_FOUND, f"task type {identifier!r}")
    hashes = yield Batch([Command("HGETALL", keys.type(number.decode()) if number else keys.type("missing"))
                          for keys, number in zip(ns.shard_keys, numbers, strict=True)])
    hashes = [h for h in hashes if h]
    first = hashes[0]
    counts = {c: sum(int(h.get(c.encode(), 0)) for h in hashes) for c in COUNTS}
    return TaskType(name=text(first[b"name"]), handler=text(first[b"handler"]),
                    timeout=float(first[b"timeout"]), timeret=float(first[b"timeret"]),
                    maxrestart=int(first[b"maxrestart"]), counts=counts,
                    retries=int(first.get(b"retries", 0)), retry_delay=float(first.get(b"retry_delay", 1.0)),
                    retry_backoff=float(first.get(b"retry_backoff", 2.0)),
                    retry_max_delay=float(first.get(b"retry_max_delay", 3600)),
                    hard_timeout=float(first.get(b"hard_timeout", 0)) or None)


def list_task_types(ns: Namespace) -> Op[list[TaskType]]:
    if not ns.checked:
        yield from ns.check()
    out = []
    for name in sorted((yield Command("HKEYS", ns.keys.types))):
        out.append((yield from get_task_type(ns, text(name))))
    return out


def get_queue_size(ns: Namespace) -> Op[int]:
    if not ns.checked:
        yield from ns.check()
    return sum(int(n or 0) for n in (yield ns.each_shard("GET", key="queued")))


def get_queue_counts(ns: Namespace) -> Op[dict[str, int]]:
    if not ns.checked:
        yield from ns.check()
    replies = yield Batch([c for keys in ns.shard_keys for c in (
        Command("GET", keys.queued), Command("ZCARD", keys.delayed), Command("HGET", keys.paused, "parked"))])
    total, delayed = sum(int(r or 0) for r in replies[::3]), sum(int(r) for r in replies[1::3])
    parked = sum(int(r or 0) for r in replies[2::3])
    return {"ready": total - delayed - parked, "delayed": delayed, "parked": parked}


def get_max_queue_size(ns: Namespace) -> Op[int]:
    if not ns.checked:
        yield from ns.check()
    stored = yield Command("HGET", ns.keys.config, "max_queue_size")
    return DEFAULT_QUEUE_LIMIT if stored is None else int(stored)


def get_task_response(ns: Namespace, type: str, identifier: str) -> Op[tuple[str | bytes | None, str | None]]:
    raw, kind, mime = yield from read_by_identifier(ns, type, identifier, "response")
    return (unpack_response(raw, kind), None if mime is None else text(mime))


def get_task_response_by_id(ns: Namespace, task_id: int) -> Op[tuple[str | bytes | None, str | None]]:
    raw, kind, mime = yield from read(ns, task_id, "response")
    return (unpack_response(raw, kind), None if mime is None else text(mime))


def get_task_log_by_id(ns: Namespace, task_id: int) -> Op[list[LogRecord]]:
    return [parse_record(r) for r in (yield from read(ns, task_id, "log")) if r]


def get_task_log(ns: Namespace, type: str, identifier: str) -> Op[list[LogRecord]]:
    return [parse_record(r) for r in (yield from read_by_identifier(ns, type, identifier, "log")) if r]


def describe_task(ns: Namespace, task_id: int) -> Op[dict[str, Any]]:
    v = yield from read(ns, task_id, "show")
    status = Status(int(v[3]))
    return {
        "id": int(v[0]), "type": text(v[1]), "identifier": text(v[2]),
        "status": status.name, "code": int(status),
        "owner": text(v[4]) if v[4] is not None and v[14] else None,
        "last_owner": None if v[4] is None else text(v[4]),
        "run": int(v[5] or 0), "restarts": int(v[6] or 0), "cancelled": bool(v[7]), "handler": text(v[8]),
        "ttl_ms": int(v[9]) if int(v[9]) >= 0 else None,
        "deadline_ms": int(v[10]) if v[10] else None,
        "response_bytes": int(v[11]), "mime_type": text(v[12]) or None,
        "input": ns.decode_input(v[13], fallback=True),
        "retries": int(v[15]), "due_ms": int(v[16]) if v[16] else None, "priority": int(v[17]),
        "log": [parse_record(r) for r in v[18:] if r],
        "key": ns.shard_keys[ns.shard_of_id(int(v[0]))].task(Keys.task_digest(v[1], v[2])),
    }


def _live_by_shard(ns: Namespace) -> Op[list[tuple[int, int]]]:
    """``(live, overdue)`` tasks per shard, from each type's live set and current timeout."""
    if not ns.checked:
        yield from ns.check()
    numbers = [[n.decode() for n in nums] for nums in (yield ns.each_shard("HVALS", key="types"))]
    timeouts = iter((yield Batch([Command("HGET", keys.type(n), "timeout")
                                  for keys, nums in zip(ns.shard_keys, numbers, strict=True) for n in nums])))
    now_ms = time.time() * 1000
    counts: list[Command] = []
    for keys, nums in zip(ns.shard_keys, numbers, strict=True):
        for n in nums:
            timeout = float(next(timeouts) or 0)
            counts.append(Command("ZCARD", keys.live(n)))
            counts.append(Command("ZCOUNT", keys.live(n), "-inf",
                                  int(now_ms - timeout * 1000) if timeout > 0 else "(-inf"))
    replies = iter((yield Batch(counts)) if counts else [])
    out = []
    for nums in numbers:
        pairs = [(int(next(replies)), int(next(replies))) for _ in nums]
        out.append((sum(p[0] for p in pairs), sum(p[1] for p in pairs)))
    return out


def count_overdue(ns: Namespace) -> Op[int]:
    return sum(overdue for _, overdue in (yield from _live_by_shard(ns)))


def last_task_id(ns: Namespace) -> Op[int]:
    if not ns.checked:
        yield from ns.check()
    seqs = yield ns.each_shard("GET", key="seq")
    return max(int(seq or 0) * ns.shards + shard if seq else 0 for shard, seq in enumerate(seqs))


def shard_stats(ns: Namespace) -> Op[list[dict[str, Any]]]:
    if not ns.checked:
        yield from ns.check()
    queues = yield ns.each_shard("GET", key="queued")
    live = yield from _live_by_shard(ns)
    return [{"shard": i, "prefix": k.prefix, "queue": int(q or 0), "live": lv, "overdue": o}
            for i, (k, q, (lv, o)) in enumerate(zip(ns.shard_keys, queues, live, strict=True))]
