"""W2 over a slower link: the drain of the peers' workload (a handler making one Redis
round trip per task) when every round trip takes 1 ms, with 1 and 4 threads per worker
process. On loopback a round trip costs little; on a real network it dominates: a slot
waits for the reply that confirms its claim before it runs the task, so what hides the
link's latency is running more slots at once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.redisserver import RedisServer, free_port

from .common import TASK_TYPE, make_tracker, wait_for
from .fleet import REPO_ROOT, WorkerFleet

DELAY_S = 0.0005  # each way: a 1 ms round trip


def _drain(server: RedisServer, n: int, threads: int, log_dir: Path) -> float:
    server.client().flushall()
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "benchmarks.delayproxy", str(port), str(server.port),
                              str(DELAY_S)], cwd=REPO_ROOT)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: _reachable(url), 10, "delay proxy")
        tracker = make_tracker(server.client())
        tracker.register_task_type(TASK_TYPE, "benchmarks.handlers.roundtrip")
        tracker.enqueue_many([(TASK_TYPE, str(i), {"url": url}) for i in range(n)])
        fleet = WorkerFleet(url, tracker.namespace, 2, log_dir / f"rtt-{threads}.log")
        fleet.argv += ["--threads", str(threads)]
        t0 = time.monotonic()
        with fleet:
            wait_for(lambda: int(server.client().get("bench:done") or 0) >= n, 300, "drain over the slow link")
            return n / (time.monotonic() - t0)
    finally:
        proxy.kill()
        proxy.wait()


def _reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


def slow_link(server: RedisServer, n: int, log_dir: Path) -> dict[str, Any]:
    """Tasks/s from fleet start, 2 processes, 1 ms round trips, 1 and 4 threads each."""
    one, four = _drain(server, n, 1, log_dir), _drain(server, n, 4, log_dir)
    return {"n": n, "rtt_ms": 2 * DELAY_S * 1000, "threads_1_tasks_per_s": one, "threads_4_tasks_per_s": four}
