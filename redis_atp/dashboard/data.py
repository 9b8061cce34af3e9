"""What the dashboard reads, each in O(types + what is shown) Redis work: the library's
counters and indexes, plus two small reads of its own, with plain commands on key names
from :mod:`redis_atp.keys` (never ``SCAN`` or ``KEYS``): the age of the oldest waiting
task and the newest events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..client import Tracker
from ..daemon.fleet import Fleet, WorkerInfo
from ..keys import Keys
from ..models import TaskType, parse_record
from ..status import Status

__all__ = ["Overview", "EventRow", "overview", "oldest_waiting", "recent_events", "type_names", "HEAD"]

#: Queue entries looked at from the head of each priority level's list for the oldest
#: waiting task (entries of tasks that left the queue early stay behind, see keys.py).
HEAD = 8


@dataclass(frozen=True)
class EventRow:
    """One entry of the events stream, for the live feed."""

    id: str
    task_id: int
    type: str
    identifier: str
    status: str
    time: datetime
    message: str


@dataclass(frozen=True)
class Overview:
    """Everything the overview page, ``/api/summary`` and ``/metrics`` show."""

    namespace: str
    types: list[TaskType]
    queue: dict[str, int]
    limit: int
    paused: dict[str, Any]
    oldest_age: float | None
    workers: list[WorkerInfo]
    schedules: int
    overdue: int
    now: float

    def totals(self) -> dict[str, int]:
        """The counters summed over the types."""
        out: dict[str, int] = {}
        for t in self.types:
            for k, v in t.counts.items():
                out[k] = out.get(k, 0) + v
        return out


def overview(tracker: Tracker) -> Overview:
    """The namespace at a glance: per-type counters, queue, pause state, oldest waiting
    task, live workers, schedules and overdue tasks."""
    return Overview(namespace=tracker.namespace, types=tracker.list_task_types(),
                    queue=tracker.get_queue_counts(), limit=tracker.get_max_queue_size(),
                    paused=tracker.get_pause_state(), oldest_age=oldest_waiting(tracker),
                    workers=Fleet(tracker).workers(), schedules=len(tracker.list_schedules()),
                    overdue=tracker.count_overdue(), now=time.time())


def _server_ms(tracker: Tracker) -> int:
    secs, micros = tracker.client.time()
    return int(secs) * 1000 + int(micros) // 1000


def _entry(raw: bytes) -> tuple[int, int] | None:
    """A queue entry ``<id>`` or ``<id>:<nq>`` as ``(id, nq)``."""
    tid, _, nq = raw.decode("ascii", "replace").partition(":")
    return (int(tid), int(nq or 0)) if tid.isdigit() and (not nq or nq.isdigit()) else None


def _shard_oldest(tracker: Tracker, keys: Keys) -> int | None:
    """Time (ms) the oldest ready task of one shard joined the queue: the head of each
    priority level's list, skipping entries left behind, then that task's last log
    record (an ACCEPTED task's last record is the one that queued it)."""
    levels = [0, *(int(p) for p in tracker.client.zrange(keys.levels, 0, -1))]
    pipe = tracker.client.pipeline(transaction=False)
    for level in levels:
        pipe.lrange(keys.level(level), 0, HEAD - 1)
    entries = [e for heads in pipe.execute() for e in map(_entry, heads) if e]
    if not entries:
        return None
    pipe = tracker.client.pipeline(transaction=False)
    for tid, _ in entries:
        pipe.hget(keys.ids_bucket(tid, tracker.shards), str(tid))
    named = [(tid, nq, keys.task(d.decode())) for (tid, nq), d in zip(entries, pipe.execute(), strict=True) if d]
    pipe = tracker.client.pipeline(transaction=False)
    for _, _, key in named:
        pipe.hmget(key, "id", "status", "nq", "nlog")
    current = [(key, int(nlog or 1)) for (tid, nq, key), (hid, status, hnq, nlog) in zip(named, pipe.execute(),
                                                                                          strict=True)
               if hid == str(tid).encode() and status == b"%d" % Status.ACCEPTED and int(hnq or 0) == nq]
    if not current:
        return None
    pipe = tracker.client.pipeline(transaction=False)
    for key, nlog in current:
        pipe.hget(key, f"log:{nlog}")
    times = [parse_record(r)[0] for r in pipe.execute() if r]
    return round(min(times).timestamp() * 1000) if times else None


def oldest_waiting(tracker: Tracker) -> float | None:
    """Seconds the oldest ready task has waited in the queue since it was (last) queued,
    by the Redis clock; None when no ready task is found at the heads of the queue lists.
    A task that was delayed counts from its enqueue, not its due time (the log keeps no
    due time once it passed)."""
    found = [ms for keys in tracker.shard_keys if (ms := _shard_oldest(tracker, keys)) is not None]
    return max(0.0, (_server_ms(tracker) - min(found)) / 1000) if found else None


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")


def recent_events(tracker: Tracker, count: int = 20) -> list[EventRow]:
    """The newest ``count`` events of the namespace, newest first (``XREVRANGE`` per shard)."""
    pipe = tracker.client.pipeline(transaction=False)
    for keys in tracker.shard_keys:
        pipe.xrevrange(keys.events, "+", "-", count=count)
    rows = []
    for entries in pipe.execute():
        for raw_id, f in entries:
            eid = _text(raw_id)
            try:
                status = Status(int(f.get(b"status", b"0"))).name
            except ValueError:
                status = "UNDEFINED"
            rows.append(EventRow(id=eid, task_id=int(f.get(b"task", b"0") or 0), type=_text(f.get(b"type")),
                                 identifier=_text(f.get(b"ident")), status=status,
                                 time=datetime.fromtimestamp(int(eid.split("-")[0]) / 1000, timezone.utc),
                                 message=_text(f.get(b"msg"))))
    rows.sort(key=lambda r: tuple(int(p) for p in r.id.split("-")), reverse=True)
    return rows[:count]


def type_names(tracker: Tracker) -> list[str]:
    """The registered type names, sorted (one ``HKEYS``), for the lists' filter."""
    return sorted(_text(n) for n in tracker.client.hkeys(tracker.keys.types))
