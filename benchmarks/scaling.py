"""Cost of single operations with 1,000 vs 1,000,000 tasks in the namespace.

The namespace is filled with ``enqueue_many`` (queued tasks, no limit); then each
operation is timed call by call on the client (``perf_counter``), and on the server
(``INFO commandstats`` µs per script call, FCALL or EVALSHA on Redis 6.2, reset
before each operation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis_atp import TaskStatus, Tracker
from redis_atp.protocol import admin
from tests.redisserver import RedisServer

from .common import (
    HANDLER,
    TASK_TYPE,
    enqueue_bulk,
    make_tracker,
    payload,
    percentiles,
    ping_rtt_us,
    script_stats,
    tasks,
    wait_for,
)

SAMPLES = 200  # timed calls per operation
ZOMBIE_BATCH = 100  # overdue tasks per timed sweep
ZOMBIE_REPS = 5  # timed sweeps that find ZOMBIE_BATCH overdue tasks
CANCEL_SAMPLES = 20
FILL_GROUP = 20_000  # tasks per enqueue_many call while filling (script calls of 1000)


def fill(tracker: Tracker, size: int) -> float:
    """Enqueue ``size`` tasks with ``enqueue_many``; returns tasks/s."""
    t0 = time.perf_counter()
    for start in range(0, size, FILL_GROUP):
        enqueue_bulk(tracker, tasks("f", min(FILL_GROUP, size - start), start))
    return size / (time.perf_counter() - t0)


def timed(tracker: Tracker, calls: list[Callable[[], Any]]) -> tuple[dict[str, Any], list[Any]]:
    """Run ``calls`` one by one; their client-side µs percentiles, the server's µs per
    script call (FCALL, or EVALSHA on Redis 6.2) and script calls per call, and their results."""
    client = tracker.client
    client.config_resetstat()
    results, us = [], []
    for call in calls:
        t0 = time.perf_counter()
        results.append(call())
        us.append((time.perf_counter() - t0) * 1e6)
    script = script_stats(client)
    stats = {f"{k}_us": v for k, v in percentiles(us).items() if k in ("p50", "p90", "mean", "max")}
    return {"samples": len(us), **stats, "server_us_per_script_call": script["usec_per_call"],
            "script_calls_per_call": script["calls"] / len(us)}, results


def _set_timeout(tracker: Tracker, seconds: float) -> None:
    tracker.register_task_type(TASK_TYPE, HANDLER, timeout=seconds, timeret=-1, maxrestart=2)


def _overdue_sweeps(tracker: Tracker) -> dict[str, Any]:
    """ZOMBIE_REPS sweeps, each after ZOMBIE_BATCH tasks were claimed under a 1 ms timeout."""
    per_rep: list[dict[str, Any]] = []
    _set_timeout(tracker, 0.001)  # the type's current timeout governs: first put back the runs still live
    time.sleep(0.01)
    while tracker.reenqueue_zombie_tasks():
        pass
    _set_timeout(tracker, 3600)
    for _ in range(ZOMBIE_REPS):
        tracker.claim("bench-zombie-owner", count=ZOMBIE_BATCH)
        _set_timeout(tracker, 0.001)  # the type's current timeout governs its live tasks
        wait_for(lambda: tracker.count_overdue() >= ZOMBIE_BATCH, 10, "claims overdue", poll_s=0.002)
        stats, [acted] = timed(tracker, [tracker.reenqueue_zombie_tasks])
        _set_timeout(tracker, 3600)
        if len(acted) != ZOMBIE_BATCH:
            raise RuntimeError(f"zombie sweep re-enqueued {len(acted)} tasks, expected {ZOMBIE_BATCH}")
        per_rep.append(stats)
    return {**_medians(per_rep), "tasks_per_sweep": ZOMBIE_BATCH}


def _medians(per_rep: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure of timed single calls (see :func:`timed`): the median call and the slowest."""
    us = sorted(r["mean_us"] for r in per_rep)
    server = sorted(r["server_us_per_script_call"] for r in per_rep)
    return {"samples": len(us), "p50_us": us[len(us) // 2], "max_us": us[-1],
            "server_us_per_script_call": server[len(server) // 2]}


def _promotions(tracker: Tracker) -> dict[str, Any]:
    """ZOMBIE_REPS promotions, each of ZOMBIE_BATCH delayed tasks that just fell due, by one
    call of housekeeping's script (``promote``), beside the queue of ``size`` tasks."""
    per_rep: list[dict[str, Any]] = []
    for rep in range(ZOMBIE_REPS):
        enqueued = tracker.enqueue_many([(TASK_TYPE, f"due-{rep}-{i}", None) for i in range(ZOMBIE_BATCH)], delay=0.005)
        if any(isinstance(r, Exception) for r in enqueued):
            raise RuntimeError(f"enqueue refused: {enqueued[:3]}")
        time.sleep(0.02)
        stats, [moved] = timed(tracker, [lambda: tracker.io.run(admin.promote_due(tracker.ns, 0, ZOMBIE_BATCH, 1))])
        if moved != ZOMBIE_BATCH:
            raise RuntimeError(f"promotion moved {moved} tasks, expected {ZOMBIE_BATCH}")
        per_rep.append(stats)
    return {**_medians(per_rep), "tasks_per_call": ZOMBIE_BATCH}


def scaling(server: RedisServer, size: int) -> dict[str, Any]:
    """Fill to ``size`` queued tasks, then time claim, status change, zombie sweeps,
    one more enqueue, and the cancel of a task at the queue's tail."""
    tracker = make_tracker(server.client())
    fill_rate = fill(tracker, size)
    client = tracker.client
    out: dict[str, Any] = {"size": size, "fill_tasks_per_s": fill_rate,
                           "used_memory": int(client.info("memory")["used_memory"])}
    _warm_up(tracker)
    out["ping_rtt_us"] = ping_rtt_us(client)
    out["claim"], claimed = timed(tracker, [lambda: tracker.claim("bench-owner", count=1)] * SAMPLES)
    runs: list[TaskStatus] = [batch[0] for batch in claimed]
    out["status_change"], _ = timed(tracker, [_resume(tracker, run) for run in runs])
    out["zombie_sweep_none"], found = timed(tracker, [tracker.reenqueue_zombie_tasks] * SAMPLES)
    if any(found):
        raise RuntimeError("a zombie sweep found overdue tasks where none were expected")
    out["zombie_sweep_100"] = _overdue_sweeps(tracker)
    out["promote_100"] = _promotions(tracker)
    out["enqueue_one"], ids = timed(tracker, [_enqueue(tracker, i) for i in range(SAMPLES)])
    out["cancel_queued_at_tail"], _ = timed(tracker, [_cancel(tracker, tid) for tid in ids[-CANCEL_SAMPLES:]])
    out["live_tasks"] = sum(s["live"] for s in tracker.shard_stats())
    out["queue_length"] = tracker.get_queue_size()
    return out


def _warm_up(tracker: Tracker) -> None:
    """One untimed call of each script (the scripts' library loaded; on Redis 6.2, each script
    into the server's script cache)."""
    [run] = tracker.claim("bench-warm-up", count=1)
    tracker.resume_task(run.task_id, token=run.token)
    tracker.reenqueue_zombie_tasks()
    tracker.stop_task_failure(tracker.enqueue_task(TASK_TYPE, "warm-up", payload(-1)))


def _resume(tracker: Tracker, run: TaskStatus) -> Callable[[], None]:
    return lambda: tracker.resume_task(run.task_id, token=run.token)


def _enqueue(tracker: Tracker, i: int) -> Callable[[], int]:
    return lambda: tracker.enqueue_task(TASK_TYPE, f"extra{i}", payload(i))


def _cancel(tracker: Tracker, task_id: int) -> Callable[[], None]:
    return lambda: tracker.stop_task_failure(task_id, "cancelled")
