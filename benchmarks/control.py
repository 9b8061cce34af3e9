"""Issue 13's figures: how fast ``wait_task`` wakes, what the events stream costs (W2
drains, Redis memory, script time; on against off), and ``list_tasks`` and
``requeue_failed`` at 1,000 and 1,000,000 tasks.

Redis time is ``INFO commandstats`` of script calls (FCALL, or EVALSHA on Redis 6.2;
and EVAL), reset before each phase; script calls over 10 ms are read from ``SLOWLOG``
(``slowlog-log-slower-than`` 10000).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis

from redis_atp import Status, TaskInfo, Tracker
from redis_atp.daemon.protocol import Claims
from redis_atp.protocol import tasks as task_ops
from redis_atp.protocol.requests import Batch, Op, ScriptCall
from redis_atp.scripts import SCRIPT_NAMES, script
from tests.redisserver import RedisServer

from . import workloads as w
from .common import (
    BATCH,
    HANDLER,
    NAMESPACE,
    TASK_TYPE,
    enqueue_bulk,
    make_tracker,
    payload,
    percentiles,
    script_stats,
    script_stats_of,
    tasks,
)

EVENTS_CAP = 10_000  # the library's default max_events
SLOW_US = 10_000  # SLOWLOG threshold: a script call over 10 ms is a finding
#: lists: the filled namespace's types (tasks spread round robin), and the share left queued.
TYPES = (TASK_TYPE, f"{TASK_TYPE}1", f"{TASK_TYPE}2", f"{TASK_TYPE}3")
QUEUED_SHARE = 0.1
FAIL_EVERY = 3  # every 3rd ended task FAILED, the others FINISHED
CLAIM_BATCH = 500  # tasks claimed per claim() while filling, then ended in one pipeline
FILL_GROUP = 20_000  # tasks per enqueue_many() while filling (script calls of BATCH)
LIST_LIMIT = 100
LIST_REPS = 20  # timed calls per list query
DEEP = 10_000  # the deep page starts below the DEEP-th newest task
REQUEUE_TYPE = "bench-requeue"


# --------------------------------------------------------------------------- helpers
def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def pipelined(tracker: Tracker, ops: list[Op[Any]]) -> list[Any]:
    """Run core operations of one script call each (after the namespace check) in one
    pipeline: the library builds each request and reads each reply, as its faces do."""
    calls = [r for r in (op.send(None) for op in ops) if isinstance(r, ScriptCall)]
    if len(calls) != len(ops):
        raise RuntimeError("pipelined() takes operations of one script call")
    out = []
    for op, reply in zip(ops, tracker.io.execute(Batch(calls)), strict=True):
        try:
            op.send(reply)
        except StopIteration as stop:
            out.append(stop.value)
        else:
            raise RuntimeError("an operation asked for a second request")
    return out


#: A script's name by what a call names it with: its SHA-1 (EVALSHA) or its function
#: in the scripts' library (FCALL).
_SCRIPT_OF = {key.encode(): name for name in SCRIPT_NAMES for key in (script(name).sha, script(name).function)}
#: The script calls' commands: FCALL (Redis 7+), EVALSHA (Redis 6.2, or where FCALL is
#: not allowed), EVAL (a script the server did not know, sent with its source).
_SCRIPT_CALLS = (b"FCALL", b"EVALSHA", b"EVAL")


def slow_scripts(client: redis.Redis) -> list[dict[str, Any]]:
    """SLOWLOG entries of our script calls (FCALL, EVALSHA, EVAL), oldest first:
    ``{script, us}``; an EVAL's script is ``EVAL`` (the log holds its source, cut short)."""
    out = []
    for e in reversed(client.slowlog_get(1024)):
        args = e["command"].split()
        if args and (cmd := args[0].upper()) in _SCRIPT_CALLS:
            name = _SCRIPT_OF.get(args[1], "?") if cmd != b"EVAL" and len(args) > 1 else "EVAL"
            out.append({"script": name, "us": int(e["duration"])})
    return out


def _slow_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, int] = {}
    for e in entries:
        by[e["script"]] = by.get(e["script"], 0) + 1
    return {"count": len(entries), "max_us": max((e["us"] for e in entries), default=0), "by_script": by}


# --------------------------------------------------------------------------- wait_task
def _ender(url: str, conn: Connection) -> None:
    """The other process: for each task id received, claim and start it, wait until the
    waiter blocks (``blocked_clients``), then stamp ``time.time()`` and end it."""
    tracker = Tracker(redis.Redis.from_url(url), NAMESPACE)
    while (tid := conn.recv()) is not None:
        [claim] = tracker.claim("bench-ender")
        if claim.task_id != tid:
            raise RuntimeError(f"claimed task {claim.task_id}, expected {tid}")
        tracker.start_task(tid, token=claim.token)
        while int(tracker.client.info("clients")["blocked_clients"]) < 1:
            time.sleep(0.0002)
        t0 = time.time()
        tracker.stop_task_success(tid, token=claim.token)
        conn.send((t0, time.time()))


def wait_latency(server: RedisServer, count: int, warmup: int = 5) -> dict[str, Any]:
    """``wait_task`` latency: a task is enqueued, this process waits for it, another
    process claims it and ends it once the wait blocks; from just before its
    ``stop_task_success`` to ``wait_task`` returning here (both ``time.time()``)."""
    tracker = make_tracker(server.client())
    here, there = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_ender, args=(server.url, there), daemon=True)
    proc.start()
    lat_ms, end_ms = [], []
    try:
        for i in range(warmup + count):
            tid = tracker.enqueue_task(TASK_TYPE, f"wait{i}", payload(i))
            here.send(tid)
            code, _ = tracker.wait_task(tid, timeout=15)
            woken = time.time()
            if not here.poll(15):
                raise TimeoutError(f"the ending process did not answer for task {tid}")
            t0, t1 = here.recv()
            if code != Status.FINISHED:
                raise RuntimeError(f"task {tid} ended {code!r}")
            if i >= warmup:
                lat_ms.append((woken - t0) * 1000)
                end_ms.append((t1 - t0) * 1000)
        here.send(None)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {"count": count, **{f"{k}_ms": v for k, v in percentiles(lat_ms).items()},
            "end_call_p50_ms": statistics.median(end_ms)}


# --------------------------------------------------------------------------- events on / off
def _orders(pairs: int) -> list[tuple[int, int]]:
    """``max_events`` per pair, on first in even pairs and off first in odd ones (ABBA)."""
    return [(EVENTS_CAP, 0) if k % 2 == 0 else (0, EVENTS_CAP) for k in range(pairs)]


def _stream_memory(client: redis.Redis, key: str, n: int) -> dict[str, Any]:
    """The events stream after ``n`` tasks' lifecycles: entries, events per task, its
    ``MEMORY USAGE``, and the ``used_memory`` its ``DEL`` frees."""
    info = client.xinfo_stream(key)
    xlen, usage = int(info["length"]), int(client.memory_usage(key, samples=0) or 0)
    before = used_memory(client)
    client.delete(key)
    freed = before - used_memory(client)
    return {"xlen": xlen, "events_per_task": int(info["entries-added"]) / n, "memory_usage_bytes": usage,
            "bytes_per_event_memory_usage": usage / xlen, "freed_bytes": freed, "bytes_per_event_freed": freed / xlen}


def _script_us(client: redis.Redis) -> dict[str, float]:
    """Redis µs per script call (FCALL, or EVALSHA on Redis 6.2) since the last reset,
    and of it the events stream's own commands (XADD, XTRIM: ``INFO commandstats``
    counts commands scripts run too)."""
    st = client.info("commandstats")
    calls = script_stats_of(st)
    stream = sum(float(st.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("xadd", "xtrim"))
    return {"us": calls["usec_per_call"], "stream_us": stream / max(1, int(calls["calls"]))}


OPS = ("enqueue", "enqueue_many", "advance")


def _per_script(tracker: Tracker, n: int, prefix: str) -> dict[str, dict[str, float]]:
    """Redis µs per script call of ``n`` single ``enqueue_task`` calls, of ``enqueue_many``
    calls of ``BATCH`` (``n`` tasks, at least 10 calls), and of ``n`` ``advance`` calls of one
    client (end the last task, claim and start the next)."""
    client, out = tracker.client, dict[str, dict[str, float]]()
    items = tasks(prefix, n)
    client.config_resetstat()
    for _, ident, data in items:
        tracker.enqueue_task(TASK_TYPE, ident, data)
    out["enqueue"] = _script_us(client)
    client.config_resetstat()
    enqueue_bulk(tracker, tasks(f"{prefix}b", max(n, 10 * BATCH)))
    out["enqueue_many"] = _script_us(client)
    claims, ended = Claims(tracker), None
    client.config_resetstat()
    for _ in range(n):
        _, _, [task], _ = claims.advance("bench-client", ended)
        ended = (task, Status.FINISHED, "")
    out["advance"] = _script_us(client)
    claims.advance("bench-client", ended, count=0)
    return out


def events_on_off(server: RedisServer, n: int, pairs: int, calls: int, log_dir: Path) -> dict[str, Any]:
    """The events stream on (``max_events`` 10,000) against off (0): ``pairs`` interleaved
    pairs of W2 drains of ``n`` tasks, each on a fresh server (after an "on" drain, the
    stream's memory); then on ``server``, ``pairs`` pairs of Redis µs per script call of
    enqueue, ``enqueue_many`` and ``advance`` (see ``_per_script``), after a warm-up that
    fills the stream, and the share of it the stream's commands inside took."""
    drains: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    memory = []
    for cap in (c for pair in _orders(pairs) for c in pair):
        with RedisServer() as srv:
            tracker = make_tracker(srv.client())
            tracker.set_max_events(cap)
            x = w.w2_drain(srv, n, 2, log_dir)
            xlen = int(tracker.client.xlen(tracker.ns.keys.events))
            drains["on" if cap else "off"].append({k: x[k] for k in (
                "tasks_per_s", "steady_tasks_per_s", "server_us_per_script_call", "script_calls_per_task",
                "finished_total", "fleet_exit_code")} | {"xlen": xlen})
            if cap:
                memory.append(_stream_memory(tracker.client, tracker.ns.keys.events, n))
            elif xlen:
                raise RuntimeError(f"max_events=0, yet the stream holds {xlen} events")
    tracker = make_tracker(server.client())
    _per_script(tracker, EVENTS_CAP // 3, "warm")  # ~4 events per task: the stream reaches its cap
    script_us: dict[str, dict[str, list[float]]] = {k: {op: [] for op in OPS} for k in ("on", "off")}
    stream: dict[str, list[float]] = {op: [] for op in OPS}
    for k, pair in enumerate(_orders(pairs)):
        for cap in pair:
            tracker.set_max_events(cap)
            for op, st in _per_script(tracker, calls, f"p{k}-{cap}-").items():
                script_us["on" if cap else "off"][op].append(st["us"])
                if cap:
                    stream[op].append(st["stream_us"])
    med = statistics.median
    return {
        "n": n, "pairs": pairs, "calls": calls, "max_events_on": EVENTS_CAP,
        "order": ["on,off" if pair[0] else "off,on" for pair in _orders(pairs)],
        "drains": drains,
        "w2_tasks_per_s": {k: med(d["tasks_per_s"] for d in v) for k, v in drains.items()},
        "w2_steady_tasks_per_s": {k: med(d["steady_tasks_per_s"] for d in v) for k, v in drains.items()},
        "w2_server_us_per_script_call": {k: med(d["server_us_per_script_call"] for d in v) for k, v in drains.items()},
        "stream": memory,
        "bytes_per_event_freed": med(m["bytes_per_event_freed"] for m in memory),
        "bytes_per_event_memory_usage": med(m["bytes_per_event_memory_usage"] for m in memory),
        "events_per_task": med(m["events_per_task"] for m in memory),
        "stream_bytes": med(m["memory_usage_bytes"] for m in memory),
        "stream_xlen": med(m["xlen"] for m in memory),
        "script_us": script_us,
        "script_us_median": {k: {op: med(v) for op, v in ops.items()} for k, ops in script_us.items()},
        "stream_us_per_script_call": {op: med(v) for op, v in stream.items()},
    }


# --------------------------------------------------------------------------- lists at scale
def _claim_and_end(tracker: Tracker, n: int, fail_every: int) -> int:
    """Claim ``n`` queued tasks, ``CLAIM_BATCH`` per ``claim()``, and end each batch in one
    pipeline of fenced ``finish`` calls: every ``fail_every``-th FAILED, the others
    FINISHED. Returns how many FAILED."""
    done = failed = 0
    while done < n:
        claims = tracker.claim("bench-filler", count=min(CLAIM_BATCH, n - done))
        ends = [Status.FAILED if (done + j) % fail_every == 0 else Status.FINISHED for j in range(len(claims))]
        changed = pipelined(tracker, [task_ops.finish(tracker.ns, c.task_id, s, "", c.token)
                                      for c, s in zip(claims, ends, strict=True)])
        if not all(changed):
            raise RuntimeError("a claimed task did not end")
        done += len(claims)
        failed += ends.count(Status.FAILED)
    return failed


def _fill(tracker: Tracker, size: int) -> dict[str, Any]:
    """``size`` tasks of ``TYPES`` enqueued; all but ``QUEUED_SHARE`` of them claimed and ended."""
    t0 = time.perf_counter()
    for start in range(0, size, FILL_GROUP):
        enqueue_bulk(tracker, [(TYPES[i % len(TYPES)], f"f{i}", payload(i))
                               for i in range(start, min(size, start + FILL_GROUP))])
    t1 = time.perf_counter()
    ended = size - int(size * QUEUED_SHARE)
    failed = _claim_and_end(tracker, ended, FAIL_EVERY)
    t2 = time.perf_counter()
    return {"enqueue_s": t1 - t0, "end_s": t2 - t1, "fill_s": t2 - t0, "finished": ended - failed,
            "failed": failed, "queued": size - ended}


def _nth_newest(tracker: Tracker, nth: int) -> TaskInfo:
    """The ``nth`` newest task of the whole namespace, by pages of 1000."""
    rows: list[TaskInfo] = []
    before: TaskInfo | None = None
    while len(rows) < nth:
        page = tracker.list_tasks(limit=min(1000, nth - len(rows)), before=before)
        rows += page
        before = page[-1]
    return rows[nth - 1]


def _time_list(tracker: Tracker, **query: Any) -> dict[str, Any]:
    """``LIST_REPS`` calls of ``list_tasks(limit=100, **query)`` after one untimed."""
    client = tracker.client
    tracker.list_tasks(limit=LIST_LIMIT, **query)
    client.config_resetstat()
    ms = []
    for _ in range(LIST_REPS):
        t0 = time.perf_counter()
        rows = tracker.list_tasks(limit=LIST_LIMIT, **query)
        ms.append((time.perf_counter() - t0) * 1000)
    st = script_stats(client)
    return {"rows": len(rows), "wall_ms_p50": statistics.median(ms), "wall_ms_max": max(ms),
            "script_calls_per_list": st["calls"] / LIST_REPS, "redis_us_per_script_call": st["usec_per_call"],
            "redis_us_per_list": st["usec_per_call"] * st["calls"] / LIST_REPS}


def _index_bytes(tracker: Tracker) -> dict[str, float]:
    """``MEMORY USAGE`` per entry of ``TASK_TYPE``'s FINISHED and FAILED indexes."""
    client, num = tracker.client, tracker.client.hget(tracker.ns.keys.types, TASK_TYPE)
    out = {}
    for which in ("finished", "failed"):
        key = f"{tracker.ns.keys.type(num.decode() if num else '?')}:{which}"
        out[which] = int(client.memory_usage(key, samples=0) or 0) / max(1, int(client.zcard(key)))
    return out


def _requeue(tracker: Tracker, n: int) -> dict[str, Any]:
    """``n`` tasks of ``REQUEUE_TYPE`` (priority 1, so that claims take them before the
    queued rest) claimed and FAILED, then ``requeue_failed(REQUEUE_TYPE)``: tasks/s, Redis
    µs per script call, and the longest call from the SLOWLOG at a 1 ms threshold (at 0,
    the commands the scripts run would crowd the calls out of it)."""
    client = tracker.client
    for start in range(0, n, FILL_GROUP):
        items = [(REQUEUE_TYPE, f"rq{i}", payload(i)) for i in range(start, min(n, start + FILL_GROUP))]
        for res in tracker.enqueue_many(items, priority=1):
            if isinstance(res, Exception):
                raise res
    _claim_and_end(tracker, n, fail_every=1)
    if (failed := tracker.get_task_type(REQUEUE_TYPE).counts["failed_total"]) != n:
        raise RuntimeError(f"{failed} {REQUEUE_TYPE} tasks FAILED, expected {n}")
    client.config_set("slowlog-log-slower-than", 1000)
    client.slowlog_reset()
    client.config_resetstat()
    t0 = time.perf_counter()
    moved = tracker.requeue_failed(REQUEUE_TYPE)
    dt = time.perf_counter() - t0
    st = script_stats(client)
    calls = [e["us"] for e in slow_scripts(client) if e["script"] == "requeue_failed"]
    client.config_set("slowlog-log-slower-than", SLOW_US)
    if moved != n:
        raise RuntimeError(f"requeue_failed re-queued {moved}, expected {n}")
    return {"n": n, "seconds": dt, "tasks_per_s": n / dt, "script_calls": int(st["calls"]),
            "redis_us_per_script_call": st["usec_per_call"], "script_calls_over_1ms": len(calls),
            "max_script_us": max(calls, default=0), "script_calls_over_10ms": sum(us >= SLOW_US for us in calls)}


def lists(server: RedisServer, size: int, requeue_n: int) -> dict[str, Any]:
    """Fill ``size`` tasks over ``len(TYPES)`` types (``QUEUED_SHARE`` left queued, the rest
    ended, every ``FAIL_EVERY``-th FAILED), then time ``list_tasks`` pages: FAILED, one
    type, everything, a deep page of everything, ACCEPTED. Then ``requeue_n`` more tasks
    of their own type FAILED and re-queued by ``requeue_failed``."""
    tracker = make_tracker(server.client())
    for name in (*TYPES[1:], REQUEUE_TYPE):
        tracker.register_task_type(name, HANDLER, timeout=3600, timeret=-1, maxrestart=2)
    client = tracker.client
    client.config_set("slowlog-log-slower-than", SLOW_US)
    client.config_set("slowlog-max-len", 1024)
    client.slowlog_reset()
    out: dict[str, Any] = {"size": size, "types": len(TYPES), "limit": LIST_LIMIT, "reps": LIST_REPS,
                           **_fill(tracker, size)}
    out["fill_slow_scripts"] = _slow_summary(slow_scripts(client))
    out["used_memory"] = used_memory(client)
    out["queue_length"] = tracker.get_queue_size()
    deep = min(DEEP, size // 2)
    cursor = _nth_newest(tracker, deep)
    client.slowlog_reset()
    out["deep_nth"] = deep
    out["queries"] = {
        "failed": _time_list(tracker, status=Status.FAILED),
        "type": _time_list(tracker, type=TASK_TYPE),
        "all": _time_list(tracker),
        "deep": _time_list(tracker, before=cursor),
        "accepted": _time_list(tracker, status=Status.ACCEPTED),
    }
    out["list_slow_scripts"] = slow_scripts(client)
    out["index_bytes_per_entry"] = _index_bytes(tracker)
    out["requeue"] = _requeue(tracker, requeue_n)
    return out
