"""Issue 12's figures: enqueue with a delay, promotion of due tasks, and claims with
priority levels in use, each beside the same call with the feature unused."""

from __future__ import annotations

import time
from typing import Any

from redis_atp import Tracker
from redis_atp.protocol import admin
from tests.redisserver import RedisServer

from .common import TASK_TYPE, enqueue_bulk, make_tracker, payload, script_stats, tasks

LEVELS = 10


def _enqueue_rate(tracker: Tracker, n: int, prefix: str, **options: Any) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        tracker.enqueue_task(TASK_TYPE, f"{prefix}{i}", payload(i), **options)
    return n / (time.perf_counter() - t0)


def delayed_enqueue(server: RedisServer, n: int) -> dict[str, Any]:
    """``enqueue_task`` with ``delay=60`` against plain enqueues, interleaved in halves."""
    tracker = make_tracker(server.client())
    _enqueue_rate(tracker, 200, "warm")
    plain = [_enqueue_rate(tracker, n // 2, f"p{k}-") for k in range(2)]
    delayed = [_enqueue_rate(tracker, n // 2, f"d{k}-", delay=60) for k in range(2)]
    return {"n": n, "plain_tasks_per_s": max(plain), "delayed_tasks_per_s": max(delayed)}


def promotion(server: RedisServer, n: int) -> dict[str, Any]:
    """``n`` tasks due at once, promoted by housekeeping's script in calls of 100:
    tasks/s and Redis µs per task (``INFO commandstats``)."""
    tracker = make_tracker(server.client())
    for start in range(0, n, 10_000):
        for res in tracker.enqueue_many(tasks(f"{start}-", min(10_000, n - start)), chunk=1000, delay=0.2):
            if isinstance(res, Exception):
                raise res
    time.sleep(0.3)
    tracker.client.config_resetstat()
    t0 = time.perf_counter()
    moved = tracker.io.run(admin.promote_due(tracker.ns, 0, limit=100, calls=10**9))
    dt = time.perf_counter() - t0
    stats = script_stats(tracker.client)
    if moved != n:
        raise RuntimeError(f"promoted {moved} of {n}")
    return {"n": n, "tasks_per_s": n / dt, "redis_us_per_task": stats["usec_per_call"] * stats["calls"] / n,
            "redis_us_per_call": stats["usec_per_call"]}


def _claims(tracker: Tracker, n: int) -> tuple[float, float]:
    tracker.client.config_resetstat()
    t0 = time.perf_counter()
    for _ in range(n):
        tracker.claim("bench-owner")
    dt = time.perf_counter() - t0
    stats = script_stats(tracker.client)
    return n / dt, stats["usec_per_call"]


def priority_claims(server: RedisServer, n: int) -> dict[str, Any]:
    """Claims one at a time from ``n`` tasks at level 0, then from ``n`` spread over
    ``LEVELS`` levels: claims/s and Redis µs per claim."""
    tracker = make_tracker(server.client())
    enqueue_bulk(tracker, tasks("flat", n))
    flat_rate, flat_us = _claims(tracker, n)
    for level in range(LEVELS):
        part = tasks(f"lvl{level}-", n // LEVELS)
        for res in tracker.enqueue_many(part, chunk=1000, priority=level - LEVELS // 2):
            if isinstance(res, Exception):
                raise res
    levels_rate, levels_us = _claims(tracker, n // LEVELS * LEVELS)
    return {"n": n, "levels": LEVELS, "flat_claims_per_s": flat_rate, "flat_redis_us": flat_us,
            "levels_claims_per_s": levels_rate, "levels_redis_us": levels_us}
