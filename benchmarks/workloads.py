"""W1-W4, the peer harness's workloads (../shared/bench/README.md), run on redis-atp's own API.

Each function gets a fresh throwaway server and returns a JSON-ready dict.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from redis_atp import Status, Tracker
from redis_atp.aio import AsyncTracker
from redis_atp.daemon.protocol import Claims
from tests.redisserver import RedisServer

from .common import (
    BATCH,
    HANDLER,
    NAMESPACE,
    TASK_TYPE,
    children_cpu_s,
    counts,
    enqueue_bulk,
    make_tracker,
    payload,
    percentiles,
    ping_rtt_us,
    redis_cpu_s,
    script_stats,
    tasks,
)
from .fleet import WorkerFleet
from .handlers import LAT_KEY

WARMUP = 200  # untimed enqueues before W1 / W1b
POLL_S = 0.01  # W2 completion-counter poll interval
W3_GAP_S = (0.010, 0.030)
W3I_GAP_S = (1.2, 1.8)
DRAIN_TIMEOUT_S = 300.0


def expect_queue(tracker: Tracker, size: int) -> None:
    """Raise unless the queue holds ``size`` tasks (every enqueue landed)."""
    if (got := tracker.get_queue_size()) != size:
        raise RuntimeError(f"queue holds {got} tasks, expected {size}")


def w1_enqueue(server: RedisServer, n: int) -> dict[str, Any]:
    """W1: ``n`` single ``enqueue_task`` calls in sequence, after 200 untimed ones."""
    tracker = make_tracker(server.client())
    for i in range(WARMUP):
        tracker.enqueue_task(TASK_TYPE, f"warm{i}", payload(i))
    items = [(str(i), payload(i)) for i in range(n)]
    tracker.client.config_resetstat()
    cpu0 = redis_cpu_s(tracker.client)
    t0 = time.perf_counter()
    for ident, data in items:
        tracker.enqueue_task(TASK_TYPE, ident, data)
    dt = time.perf_counter() - t0
    script = script_stats(tracker.client)
    redis_cpu = redis_cpu_s(tracker.client) - cpu0
    expect_queue(tracker, n + WARMUP)
    return {"n": n, "seconds": dt, "tasks_per_s": n / dt, "us_per_call": dt / n * 1e6,
            "server_us_per_script_call": script["usec_per_call"], "redis_cpu_share": redis_cpu / dt,
            "ping_rtt_us": ping_rtt_us(tracker.client)}


def w1b_enqueue_many(server: RedisServer, n: int) -> dict[str, Any]:
    """W1b: ``enqueue_many`` in calls of 1000 tasks (each streamed as script calls of up to 200)."""
    tracker = make_tracker(server.client())
    enqueue_bulk(tracker, tasks("warm", WARMUP))
    items = tasks("", n)
    t0 = time.perf_counter()
    enqueue_bulk(tracker, items)
    dt = time.perf_counter() - t0
    expect_queue(tracker, n + WARMUP)
    return {"n": n, "batch": BATCH, "seconds": dt, "tasks_per_s": n / dt}


def w1_async(server: RedisServer, n: int) -> dict[str, Any]:
    """W1 and W1b from asyncio: ``n`` awaited ``AsyncTracker.enqueue_task`` calls in
    sequence, then ``n`` tasks by ``enqueue_many`` in calls of 1000, on one event loop."""
    make_tracker(server.client())  # registers the type
    return asyncio.run(_w1_async(server.url, n))


async def _w1_async(url: str, n: int) -> dict[str, Any]:
    async with AsyncTracker.from_url(url, NAMESPACE, max_queue_size=0) as tracker:
        for i in range(WARMUP):
            await tracker.enqueue_task(TASK_TYPE, f"warm{i}", payload(i))
        items = [(str(i), payload(i)) for i in range(n)]
        t0 = time.perf_counter()
        for ident, data in items:
            await tracker.enqueue_task(TASK_TYPE, ident, data)
        single = time.perf_counter() - t0
        bulk_items = tasks("bulk", n)
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            for res in await tracker.enqueue_many(bulk_items[start:start + BATCH]):
                if isinstance(res, Exception):
                    raise res
        bulk = time.perf_counter() - t0
        if (got := await tracker.get_queue_size()) != 2 * n + WARMUP:
            raise RuntimeError(f"queue holds {got} tasks, expected {2 * n + WARMUP}")
    return {"n": n, "batch": BATCH, "tasks_per_s": n / single, "us_per_call": single / n * 1e6,
            "bulk_tasks_per_s": n / bulk}


def w2_drain(server: RedisServer, n: int, processes: int, log_dir: Path,
             handler: str = HANDLER) -> dict[str, Any]:
    """W2: ``n`` tasks queued (untimed), then the real fleet drains them; the clock runs
    from just before the spawn until the type's ``finished_total`` reaches ``n``.
    ``handler``: the no-op, or its ``async def`` twin."""
    tracker = make_tracker(server.client(), handler)
    enqueue_bulk(tracker, tasks("", n))
    fleet = WorkerFleet(server.url, tracker.namespace, processes, log_dir / "w2-worker.log")
    samples: list[tuple[float, int]] = []
    tracker.client.config_resetstat()
    cpu0, fleet_cpu0 = redis_cpu_s(tracker.client), children_cpu_s()
    t0 = time.perf_counter()
    fleet.start()
    try:
        while True:
            done = counts(tracker)["finished_total"]
            samples.append((time.perf_counter(), done))
            if done >= n:
                break
            if samples[-1][0] - t0 > DRAIN_TIMEOUT_S or not fleet.alive():
                raise RuntimeError(f"W2 drain stuck at {done}/{n}\n{fleet.log_tail()}")
            time.sleep(POLL_S)
        t_end = samples[-1][0]
        redis_cpu = redis_cpu_s(tracker.client) - cpu0
        script = script_stats(tracker.client)
        final = counts(tracker)
        queue_left = tracker.get_queue_size()
    finally:
        exit_code = fleet.stop()
    fleet_cpu = children_cpu_s() - fleet_cpu0
    t_first, c_first = next((t, c) for t, c in samples if c > 0)
    return {
        "n": n, "processes": processes, "worker_argv": fleet.argv[1:],
        "seconds": t_end - t0,
        "tasks_per_s": n / (t_end - t0),
        "startup_s": t_first - t0,
        "steady_tasks_per_s": (n - c_first) / (t_end - t_first) if t_end > t_first else None,
        "middle_80pct_tasks_per_s": _middle_rate(samples, n),
        "server_us_per_script_call": script["usec_per_call"], "script_calls_per_task": script["calls"] / n,
        "redis_cpu_share": redis_cpu / (t_end - t0),
        "fleet_cpu_ms_per_task": fleet_cpu / n * 1000, "fleet_cpu_s": fleet_cpu,
        "finished_total": final["finished_total"], "failed_total": final["failed_total"],
        "queue_left": queue_left, "fleet_exit_code": exit_code,
    }


def _middle_rate(samples: list[tuple[float, int]], n: int) -> float | None:
    """Completion rate between the samples that first reach 10 % and 90 % of ``n``."""
    lo = next(((t, c) for t, c in samples if c >= n // 10), None)
    hi = next(((t, c) for t, c in samples if c >= n - n // 10), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def w3_latency(server: RedisServer, count: int, gap_s: tuple[float, float], log_dir: Path,
               tag: str) -> dict[str, Any]:
    """W3/W3i: one idle worker; each sample enqueues one task at ``t0 = time.time()`` (after
    a random pause) and takes the handler's first-line time from ``BLPOP bench:lat``."""
    tracker = make_tracker(server.client())
    client = tracker.client
    fleet = WorkerFleet(server.url, tracker.namespace, 1, log_dir / f"{tag}-worker.log").start()
    lat_ms: list[float] = []
    try:
        for i in range(5):  # warm-up: the worker is up and consuming
            tracker.enqueue_task(TASK_TYPE, f"warm{i}", {**payload(i), "stamp": time.time()})
            if client.blpop([LAT_KEY], timeout=60 if i == 0 else 15) is None:
                raise TimeoutError(f"{tag}: worker did not start warm-up task {i}\n{fleet.log_tail()}")
        rng = random.Random(1234)
        for i in range(count):
            time.sleep(rng.uniform(*gap_s))
            t0 = time.time()
            tracker.enqueue_task(TASK_TYPE, str(i), {**payload(i), "stamp": t0})
            item = client.blpop([LAT_KEY], timeout=15)
            if item is None:
                raise TimeoutError(f"{tag}: task {i} did not start within 15 s\n{fleet.log_tail()}")
            lat_ms.append((float(item[1]) - t0) * 1000.0)
    finally:
        exit_code = fleet.stop()
    return {"count": count, "gap_ms": [g * 1000 for g in gap_s], "fleet_exit_code": exit_code,
            **{f"{k}_ms": v for k, v in percentiles(lat_ms).items()}}


def w4_memory(server: RedisServer, n: int) -> dict[str, Any]:
    """W4: ``used_memory`` and ``DBSIZE`` growth over ``n`` queued tasks (no workers)."""
    tracker = make_tracker(server.client())
    client = tracker.client
    tracker.enqueue_task(TASK_TYPE, "first", payload(-1))  # per-namespace structures, not counted
    before, keys_before = int(client.info("memory")["used_memory"]), int(client.dbsize())
    for i in range(n):
        tracker.enqueue_task(TASK_TYPE, str(i), payload(i))
    after, keys_after = int(client.info("memory")["used_memory"]), int(client.dbsize())
    return {"n": n, "used_memory_before": before, "used_memory_after": after,
            "bytes_per_task": (after - before) / n, "keys_per_task": (keys_after - keys_before) / n}


def one_client_lifecycle(server: RedisServer, n: int) -> dict[str, Any]:
    """One client, no fleet: the seed's lifecycle (``dequeue_task``, ``start_task``,
    ``stop_task_success``: three calls per task) and the worker's (``advance``: one
    call that ends the last task and claims and starts the next)."""
    tracker = make_tracker(server.client())
    enqueue_bulk(tracker, tasks("seed", n))
    t0 = time.perf_counter()
    for _ in range(n):
        [tid] = tracker.dequeue_task("bench-client")
        tracker.start_task(tid)
        tracker.stop_task_success(tid)
    seed_rate = n / (time.perf_counter() - t0)
    enqueue_bulk(tracker, tasks("adv", n))
    t0 = time.perf_counter()
    ended = None
    for _ in range(n):
        _, _, [task], _ = Claims(tracker).advance("bench-client", ended)
        ended = (task, Status.FINISHED, "")
    Claims(tracker).advance("bench-client", ended, count=0)
    advance_rate = n / (time.perf_counter() - t0)
    return {"n": n, "seed_calls_tasks_per_s": seed_rate, "advance_tasks_per_s": advance_rate}
