"""What every workload shares: tracker setup, payload, statistics, and server/CPU probes."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from redis_atp import Tracker

NAMESPACE = "atp"
TASK_TYPE = "bench"
HANDLER = "benchmarks.handlers.noop"
ASYNC_HANDLER = "benchmarks.handlers.anoop"
#: Tasks per ``enqueue_many`` call (W1b, as the peer harness's batches); each call
#: streams script calls of the library's default chunk.
BATCH = 1000

Payload = dict[str, Any]


def payload(i: int) -> Payload:
    """The peers' task input: ``{"i": i, "s": "x" * 32}``."""
    return {"i": i, "s": "x" * 32}


def make_tracker(client: redis.Redis, handler: str = HANDLER) -> Tracker:
    """A tracker without a queue limit, with the ``bench`` type registered (timeout 1 h,
    finished tasks kept forever, 2 restarts)."""
    tracker = Tracker(client, namespace=NAMESPACE, max_queue_size=0)
    tracker.register_task_type(TASK_TYPE, handler, timeout=3600, timeret=-1, maxrestart=2)
    return tracker


def counts(tracker: Tracker) -> dict[str, int]:
    """The ``bench`` type's counters, kept by the library's scripts."""
    return tracker.get_task_type(TASK_TYPE).counts


def enqueue_bulk(tracker: Tracker, items: list[tuple[str, str, Payload]], batch: int = BATCH) -> None:
    """``enqueue_many`` in calls of ``batch`` tasks; raises the first refusal."""
    for start in range(0, len(items), batch):
        for res in tracker.enqueue_many(items[start:start + batch]):
            if isinstance(res, Exception):
                raise res


def tasks(prefix: str, n: int, start: int = 0) -> list[tuple[str, str, Payload]]:
    """``n`` ``(type, identifier, input)`` triples with identifiers ``<prefix><i>``."""
    return [(TASK_TYPE, f"{prefix}{i}", payload(i)) for i in range(start, start + n)]


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    """Poll ``predicate`` until true; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s")
        time.sleep(poll_s)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/min/max/mean of ``values`` (inclusive quantiles, as the peer harness)."""
    vals = sorted(values)
    q = statistics.quantiles(vals, n=100, method="inclusive") if len(vals) > 1 else vals * 99
    return {"p50": statistics.median(vals), "p90": q[89], "p99": q[98], "min": vals[0], "max": vals[-1],
            "mean": statistics.fmean(vals)}


def redis_cpu_s(client: redis.Redis) -> float:
    """CPU seconds (user + system) the server has used so far."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (a stopped fleet and its workers)."""
    t = os.times()
    return t.children_user + t.children_system


#: The commands a script call goes as (``INFO commandstats`` names): ``FCALL`` of its
#: function in the scripts' library (Redis 7+), ``EVALSHA`` (Redis 6.2, or where FCALL
#: is not allowed), ``EVAL`` (a script the server did not know, sent with its source).
SCRIPT_CALLS = ("fcall", "evalsha", "eval")


def script_stats_of(commandstats: dict[str, Any]) -> dict[str, float]:
    """Script calls in an ``INFO commandstats`` reply, every form summed: ``calls`` and
    ``usec_per_call`` (total µs / total calls; 0 without calls)."""
    found = [commandstats[f"cmdstat_{c}"] for c in SCRIPT_CALLS if f"cmdstat_{c}" in commandstats]
    calls = sum(float(v.get("calls", 0)) for v in found)
    usec = sum(float(v.get("usec", 0)) for v in found)
    return {"calls": calls, "usec_per_call": usec / calls if calls else 0.0}


def script_stats(client: redis.Redis) -> dict[str, float]:
    """``INFO commandstats`` of script calls (FCALL, or EVALSHA on Redis 6.2; and EVAL)
    since the last ``CONFIG RESETSTAT``: ``calls`` and ``usec_per_call``."""
    return script_stats_of(client.info("commandstats"))


def ping_rtt_us(client: redis.Redis, n: int = 1000) -> float:
    """Mean PING round trip in µs: the floor under every single call."""
    t0 = time.perf_counter()
    for _ in range(n):
        client.ping()
    return (time.perf_counter() - t0) / n * 1e6
