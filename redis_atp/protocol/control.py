"""Operations over many tasks at once: lists from the scripts' indexes, re-running
failed tasks, pausing claims, and the events stream. Each script call is bounded
(a page, a batch), so an operation on a million tasks is many short calls."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from .. import validate
from ..errors import InvalidInput
from ..keys import DEFAULT_MAX_EVENTS, check_text
from ..models import Event, TaskInfo, epoch_ms, utc_from_ms
from ..status import Status
from . import reads
from .namespace import Namespace, text
from .requests import TRANSIENT, Batch, Command, Op, Reconnect, Sleep
from .tasks import checked

__all__ = ["list_tasks", "requeue_failed", "pause_queue", "resume_queue", "paused", "trim_ended", "sample_minute",
           "minutes",
           "set_max_events", "get_max_events", "event_cursor", "read_events", "MAX_PAGE", "REQUEUE_BATCH"]

#: Most tasks one ``list_tasks`` call returns, and one script call of it reads.
MAX_PAGE = 1000
ROWS_PER_CALL = 200
#: Failed tasks re-queued, and parked tasks put back, per script call.
REQUEUE_BATCH = 100
#: Longest single blocking read of the events stream (the caller's ``block`` is cut in slices).
EVENTS_SLICE = 5.0
#: Events one read returns at most.
EVENTS_BATCH = 500


def _status(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not Status.ACCEPTED <= value <= Status.FAILED:
        raise InvalidInput(f"status must be a Status or its code 1-6, not {value!r:.80}")
    return int(value)


def list_tasks(ns: Namespace, type: str | None = None, status: object = None, limit: int = 100,
               before: int | TaskInfo | None = None) -> Op[list[TaskInfo]]:
    """Tasks newest first by the time of their last status change (script ``list``, one
    page per shard in bounded calls, merged)."""
    code = _status(status)
    name = b"" if type is None else check_text("task type", type)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an int from 1 to {MAX_PAGE}, not {limit!r:.80}")
    cursor_ms: int | str = ""
    if isinstance(before, TaskInfo):
        cursor_id: int | str = validate.task_id(before.task_id)
        cursor_ms = epoch_ms(before.updated)
    elif before is None:
        cursor_id = ""
    else:
        cursor_id = validate.task_id(before)
    if not ns.checked:
        yield from ns.check()
    shards = list(range(ns.shards))
    if cursor_id and not cursor_ms:  # the cursor task's time, from its own shard first
        first = ns.shard_of_id(int(cursor_id))
        shards = [first] + [s for s in shards if s != first]
    rows: list[TaskInfo] = []
    for shard in shards:
        got, cont = 0, ""
        while True:
            reply = yield from checked(ns, f"task {cursor_id}" if cursor_id else f"task type {type!r}", ns.call(
                "list", "" if code is None else code, name, min(ROWS_PER_CALL, limit - got), cursor_ms, cursor_id,
                cont, shard=shard))
            cursor_ms = int(reply[0]) if reply[0] else ""
            cont = text(reply[1])
            for i in range(2, len(reply), 5):
                s = Status(int(reply[i + 3]))
                rows.append(TaskInfo(int(reply[i]), text(reply[i + 1]), text(reply[i + 2]), s.pair(),
                                     utc_from_ms(int(reply[i + 4]))))
                got += 1
            if not cont or got >= limit:
                break
    if ns.shards > 1:
        rows.sort(key=lambda r: (r.updated, r.task_id), reverse=True)
    return rows[:limit]


def requeue_failed(ns: Namespace, type: str | None = None, message: str = "") -> Op[int]:
    """Re-run every task that is FAILED now (script ``requeue_failed``, ``REQUEUE_BATCH`` per
    call, oldest failure first); tasks failing again meanwhile are not taken twice.
    Returns how many went back to the queue."""
    msg = validate.message(message)
    if type is not None:
        check_text("task type", type)
    if not ns.checked:
        yield from ns.check()
    secs, micros = (yield Command("TIME"))
    until = int(secs) * 1000 + int(micros) // 1000
    names = [type] if type is not None else [text(n) for n in (yield Command("HKEYS", ns.keys.types))]
    total = 0
    for name in names:
        for shard in range(ns.shards):
            while True:
                done, left = yield from checked(ns, f"task type {name!r}", ns.call(
                    "requeue_failed", name, until, REQUEUE_BATCH, msg, shard=shard))
                total += int(done)
                if not int(left) or not int(done):
                    break
    return total


def _pause_call(ns: Namespace, action: str, type: str | None) -> Op[None]:
    name = "" if type is None else type
    if type is not None:
        check_text("task type", type)
    if not ns.checked:
        yield from ns.check()
    for shard in range(ns.shards):
        while (yield from checked(ns, f"task type {type!r}", ns.call("pause", action, name, REQUEUE_BATCH,
                                                                     shard=shard))):
            pass


def pause_queue(ns: Namespace, type: str | None = None) -> Op[None]:
    """Claims take nothing from the namespace (``type=None``) or of one type (script ``pause``)."""
    yield from _pause_call(ns, "pause", type)


def resume_queue(ns: Namespace, type: str | None = None) -> Op[None]:
    """Undo :func:`pause_queue`; a type's parked tasks go back to the head of the queue
    (script ``pause``, in batches) and idle workers are woken."""
    yield from _pause_call(ns, "resume", type)


def paused(ns: Namespace) -> Op[dict[str, Any]]:
    """What is paused: ``{"namespace": bool, "types": [names], "parked": tasks set aside}``."""
    if not ns.checked:
        yield from ns.check()
    state: dict[str, Any] = {"namespace": False, "types": [], "parked": 0}
    types: set[str] = set()
    for flat in (yield ns.each_shard("HGETALL", key="paused")):
        for field, value in flat.items():
            if field == b"all":
                state["namespace"] = True
            elif field == b"parked":
                state["parked"] += int(value)
            elif field.startswith(b"t:"):
                types.add(text(field[2:]))
    state["types"] = sorted(types)
    return state


def trim_ended(ns: Namespace, shard: int, limit: int = 1000) -> Op[int]:
    """Housekeeping's step: drop index entries of expired tasks (script ``trim_ended``)."""
    if not ns.checked:
        yield from ns.check()
    dropped, _more = yield ns.call("trim_ended", limit, shard=shard)
    return int(dropped)


#: How long the per-minute figures are kept (the dashboard's charts reach back this far).
MINUTES_KEPT = 48 * 60


_SAMPLED = ("finished_total", "failed_total", "ready", "delayed", "live")


def sample_minute(ns: Namespace) -> Op[None]:
    """Housekeeping's sample of this minute, for the dashboard's charts: the types'
    ``finished_total`` and ``failed_total`` counters (their growth from one minute to
    the next is the throughput: nothing is counted on the scripts' hot path), the queue
    (``ready``, ``delayed``) and the live tasks (``live``). The last sample of a minute stays."""
    counts = yield from reads.get_queue_counts(ns)
    types = yield from reads.list_task_types(ns)
    totals = {c: sum(t.counts[c] for t in types) for c in ("finished_total", "failed_total")}
    live = sum(t.counts["scheduled"] + t.counts["running"] + t.counts["paused"] for t in types)
    secs, _ = yield Command("TIME")
    key = ns.keys.minute(int(secs) // 60)
    yield Batch([Command("HSET", key, "finished_total", totals["finished_total"], "failed_total",
                         totals["failed_total"], "ready", counts["ready"], "delayed", counts["delayed"], "live", live),
                 Command("EXPIRE", key, MINUTES_KEPT * 60)])


def minutes(ns: Namespace, count: int) -> Op[list[tuple[datetime, dict[str, int]]]]:
    """The figures of the last ``count`` minutes, oldest first: runs ``finished`` and
    ``failed`` in each (the growth of the counters since the last sample before it),
    and that minute's last ``ready``, ``delayed``, ``live`` sample; a figure with no
    sample (no worker ran housekeeping) is absent."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MINUTES_KEPT:
        raise InvalidInput(f"count must be an int from 1 to {MINUTES_KEPT}, not {count!r:.80}")
    if not ns.checked:
        yield from ns.check()
    secs, _ = yield Command("TIME")
    now = int(secs) // 60
    span = range(now - count, now + 1)  # one minute more: the sample the first delta starts from
    replies = yield Batch([Command("HMGET", ns.keys.minute(m), *_SAMPLED) for m in span])
    out: list[tuple[datetime, dict[str, int]]] = []
    last: dict[str, int] = {}
    for m, values in zip(span, replies, strict=True):
        got = {k: int(v) for k, v in zip(_SAMPLED, values, strict=True) if v is not None}
        figures: dict[str, int] = {k: got[k] for k in ("ready", "delayed", "live") if k in got}
        for total, name in (("finished_total", "finished"), ("failed_total", "failed")):
            if total in got:
                if total in last:
                    figures[name] = max(0, got[total] - last[total])
                last[total] = got[total]
        if m > span[0]:
            out.append((utc_from_ms(m * 60_000), figures))
    return out


def set_max_events(ns: Namespace, cap: int) -> Op[None]:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise InvalidInput(f"max_events must be an int >= 0, not {cap!r:.80}")
    yield ns.set_max_events(cap)


def get_max_events(ns: Namespace) -> Op[int]:
    if not ns.checked:
        yield from ns.check()
    stored = yield Command("HGET", ns.keys.config, "max_events")
    return DEFAULT_MAX_EVENTS if stored is None else int(stored)


# ---------------------------------------------------------------------- events
_STREAM_ID = tuple[int, int]


def _parse_id(raw: str) -> _STREAM_ID:
    ms, _, seq = raw.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()):
        raise InvalidInput(f"an event id is '<ms>-<seq>' (or the id of an event from events()), not {raw!r:.80}")
    return int(ms), int(seq or 0)


def _format_cursor(ids: list[_STREAM_ID]) -> str:
    return ",".join(f"{ms}-{seq}" for ms, seq in ids)


def event_cursor(ns: Namespace, since: str | None) -> Op[list[_STREAM_ID]]:
    """Where a read of the events stream starts, per shard: after the newest event
    (``since=None``), from the oldest kept (``"0"``), or after an event's id (a sharded
    namespace's ids name a position on every shard; a plain id applies to each)."""
    if since is None:
        if not ns.checked:
            yield from ns.check()
        newest = yield ns.each_shard("XREVRANGE", "+", "-", "COUNT", 1, key="events")
        return [_parse_id(text(n[0][0])) if n else (0, 0) for n in newest]
    if not isinstance(since, str):
        raise InvalidInput(f"since must be an event id (str) or None, not {since!r:.80}")
    parts = [_parse_id(p) for p in since.split(",")]
    if len(parts) == 1:
        return parts * ns.shards
    if len(parts) != ns.shards:
        raise InvalidInput(f"event id {since!r:.80} names {len(parts)} shards; the namespace has {ns.shards}")
    return parts


def read_events(ns: Namespace, cursor: list[_STREAM_ID], block: float | None) -> Op[list[Event]]:
    """The events after ``cursor`` (which is moved past them), oldest first; waits up to
    ``block`` seconds (None: not at all) when there are none yet (``XREAD``). A dropped
    connection is ridden out: the read is repeated from the same cursor."""
    if block is not None:
        validate.seconds("block", block)
    if not ns.checked:
        yield from ns.check()
    keys = [k.events for k in ns.shard_keys]
    deadline = None if block is None else time.monotonic() + max(0.0, block)
    split = ns.cluster and ns.shards > 1  # streams in other slots: one command each, no blocking on all
    reconnect = Reconnect()
    while True:
        remaining = 0.0 if deadline is None else deadline - time.monotonic()
        wait: tuple[Any, ...] = ()
        if remaining > 0 and not split:
            wait = ("BLOCK", max(1, int(min(remaining, EVENTS_SLICE) * 1000)))
        try:
            if split:
                replies = yield Batch([Command("XREAD", "COUNT", EVENTS_BATCH, "STREAMS", key, _format_cursor([c]))
                                       for key, c in zip(keys, cursor, strict=True)])
                found = [item for reply in replies if reply for item in _items(reply)]
            else:
                reply = yield Command("XREAD", *wait, "COUNT", EVENTS_BATCH, "STREAMS", *keys,
                                      *(_format_cursor([c]) for c in cursor))
                found = _items(reply) if reply else []
            reconnect.ok()
        except TRANSIENT as exc:
            yield reconnect.after(exc)
            continue
        if found:
            return _events(ns, keys, cursor, found)
        if deadline is None or time.monotonic() >= deadline:
            return []
        if split:
            yield Sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _items(reply: Any) -> list[tuple[bytes, list[Any]]]:
    """``(stream key, entries)`` pairs of an XREAD reply (RESP2 list or RESP3 map)."""
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(key, entries) for key, entries in pairs]


def _events(ns: Namespace, keys: list[str], cursor: list[_STREAM_ID],
            found: list[tuple[bytes, list[Any]]]) -> list[Event]:
    shard_of = {k.encode(): i for i, k in enumerate(keys)}
    flat: list[tuple[_STREAM_ID, int, dict[bytes, bytes]]] = []
    for key, entries in found:
        shard = shard_of[key if isinstance(key, bytes) else key.encode()]
        for raw_id, fields in entries:
            flat.append((_parse_id(text(raw_id)), shard, fields))
    flat.sort(key=lambda e: e[0])
    out = []
    for sid, shard, f in flat:
        cursor[shard] = sid
        s = Status(int(f[b"status"]))
        out.append(Event(id=_format_cursor(cursor) if ns.shards > 1 else f"{sid[0]}-{sid[1]}",
                         task_id=int(f[b"task"]), type=text(f[b"type"]), identifier=text(f[b"ident"]),
                         status=s.pair(), time=utc_from_ms(sid[0]), message=f[b"msg"].decode("utf-8", "replace")))
    return out
