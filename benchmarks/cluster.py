"""Scaling out: the Redis server time a task lifecycle costs, and how a sharded
namespace spreads it over the masters of a real local Redis Cluster.

One 3-master cluster (no replicas); for ``shards`` 1 and 8: ``enqueue_many`` N
tasks, then the real fleet (``redis-atp worker -n 2 --shards S``) drains them.
``INFO commandstats`` of every master is read after each phase (reset before),
so the figures are Redis's own accounting of the time it spent on our commands.
With two cores the fleet, not Redis, bounds the wall-clock rate here; the server
time per task is what bounds a real deployment, hence the projections.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from redis_atp import Tracker
from tests.clusterserver import LocalCluster

from .common import SCRIPT_CALLS, TASK_TYPE, script_stats_of, tasks, wait_for
from .fleet import REPO_ROOT, WorkerFleet

MASTERS = 3


#: Commands clients send; the commands scripts call are listed in commandstats too,
#: and a script's own time already includes theirs, so only these are summed. Script
#: calls go as FCALL (or EVALSHA on Redis 6.2, EVAL with the source); the library's
#: FUNCTION LOAD, once per master, is where its scripts compile, as EVAL's was.
TOP_LEVEL = tuple(f"cmdstat_{c}" for c in SCRIPT_CALLS) + ("cmdstat_function|load", "cmdstat_bzpopmin")


def _cpu(port: int) -> float:
    info = redis.Redis(port=port).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _stats(ports: list[int], cpu0: dict[int, float]) -> dict[int, dict[str, float]]:
    """Per master since the last reset: µs and calls of the commands clients sent,
    script calls (FCALL, EVALSHA, EVAL), and the Redis process's CPU µs as a cross-check."""
    out = {}
    for port in ports:
        stats = redis.Redis(port=port).info("commandstats")
        top = [stats[k] for k in TOP_LEVEL if k in stats]
        out[port] = {"usec": sum(v["usec"] for v in top), "calls": sum(v["calls"] for v in top),
                     "script_calls": int(script_stats_of(stats)["calls"]),
                     "cpu_usec": (_cpu(port) - cpu0[port]) * 1e6}
    return out


def _reset(ports: list[int]) -> dict[int, float]:
    for port in ports:
        redis.Redis(port=port).config_resetstat()
    return {port: _cpu(port) for port in ports}


def _run(cluster: LocalCluster, ports: list[int], n: int, shards: int, log_dir: Path) -> dict[str, Any]:
    client = cluster.client()
    tracker = Tracker(client, f"c{shards}", max_queue_size=0, shards=shards)
    tracker.register_task_type(TASK_TYPE, "benchmarks.handlers.noop")
    cpu0 = _reset(ports)
    for start in range(0, n, 1000):
        tracker.enqueue_many(tasks("", min(1000, n - start), start))
    enq = _stats(ports, cpu0)
    cpu0 = _reset(ports)
    fleet = WorkerFleet(f"redis+cluster://127.0.0.1:{cluster.port}", tracker.namespace, 2,
                        log_dir / f"cluster-{shards}.log")
    fleet.argv += ["--shards", str(shards)]
    t0 = time.monotonic()
    with fleet:
        wait_for(lambda: tracker.get_task_type(TASK_TYPE).counts["finished_total"] >= n, 300, "cluster drain")
        dt = time.monotonic() - t0
    drain = _stats(ports, cpu0)
    client.close()
    usec = {p: enq[p]["usec"] + drain[p]["usec"] for p in ports}
    total = sum(usec.values())
    shares = [usec[p] / total for p in ports]
    return {"shards": shards, "n": n, "drain_s": dt, "drain_tasks_per_s": n / dt,
            "server_us_per_task": total / n, "enqueue_us_per_task": sum(v["usec"] for v in enq.values()) / n,
            "drain_us_per_task": sum(v["usec"] for v in drain.values()) / n,
            "redis_cpu_us_per_task": sum(v["cpu_usec"] for v in (*enq.values(), *drain.values())) / n,
            "per_master": {str(p): {"usec": usec[p], "share": usec[p] / total,
                                    "drain_calls": drain[p]["calls"], "drain_script_calls": drain[p]["script_calls"]}
                           for p in ports},
            "balance": (sum(shares) / len(shares)) / max(shares)}


def cluster_scaling(n: int, log_dir: Path) -> dict[str, Any]:
    """Drains with shards 1 and 8 on a 3-master cluster; ceilings and projections."""
    with LocalCluster(masters=MASTERS, replicas_per_master=0) as cluster:
        ports = [port for port, _ in cluster.masters()]
        one, eight = (_run(cluster, ports, n, s, log_dir) for s in (1, 8))
    ceiling = 1e6 / one["server_us_per_task"]
    per_master = 1e6 / eight["server_us_per_task"]
    return {"repo": str(REPO_ROOT), "masters": MASTERS, "shards_1": one, "shards_8": eight,
            "one_slot_ceiling_tasks_per_s": ceiling,
            "projected_tasks_per_s": {str(m): m * per_master * eight["balance"] for m in (3, 10, 30)}}
