"""Dashboard benchmark: page latency and Redis commands per request at 1,000,000 tasks.

    python -m benchmarks.dashboard_bench [--tasks 1000,1000000] [--requests 50] [--out FILE]

For each size, a fresh throwaway redis-server is filled with a realistic mix through
the library (``enqueue_many`` in chunks of 1,000): 60 % of the tasks run to FINISHED
and 10 % to FAILED by a real ``redis-atp worker --burst`` fleet (claims, in FIFO
order), then 28 % wait ready and 2 % delayed, over three types. Then each page is
requested ``--requests`` times in process (Starlette's TestClient: the app's own
work, no network), with latency median and p95 and the Redis commands and Redis CPU
per request from ``INFO commandstats`` deltas. Prints a Markdown table and writes JSON
to benchmarks/results/dashboard-<UTC date>-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from redis_atp import Status, Tracker
from tests.redisserver import RedisServer, server_version

from .common import payload
from .fleet import WorkerFleet

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAMESPACE = "bench"
#: type -> (handler, share of the run-to-end tasks); "broken" cannot be imported, so its runs fail.
TYPES = {"render": "benchmarks.handlers.noop", "fetch": "benchmarks.handlers.noop",
         "broken": "benchmarks.handlers.missing"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def enqueue(tracker: Tracker, items: list[tuple[str, str, Any]], **kw: Any) -> None:
    for start in range(0, len(items), 1000):
        for res in tracker.enqueue_many(items[start:start + 1000], **kw):
            if isinstance(res, Exception):
                raise res


def fill(tracker: Tracker, url: str, n: int, tmp: Path) -> dict[str, float]:
    """The mix: 60 % FINISHED, 10 % FAILED (run by a burst fleet), 28 % ready, 2 % delayed."""
    t0 = time.monotonic()
    ran = int(n * 0.7)
    kinds = ["render", "fetch", "render", "fetch", "render", "fetch", "broken"]  # 1 in 7 fails
    for start in range(0, ran, 100_000):
        enqueue(tracker, [(kinds[i % 7], f"ran-{i}", payload(i)) for i in range(start, min(ran, start + 100_000))])
    t_enq = time.monotonic() - t0
    fleet = WorkerFleet(url, NAMESPACE, 2, tmp / "fleet.log")
    fleet.argv.append("--burst")
    fleet.start()
    while fleet.alive():
        time.sleep(0.5)
    if fleet.stop() != 0:
        raise RuntimeError(f"the burst fleet failed: {fleet.log_tail()}")
    t_run = time.monotonic() - t0 - t_enq
    waiting = n - ran
    delayed = waiting // 15
    enqueue(tracker, [(kinds[i % 6], f"wait-{i}", payload(i)) for i in range(waiting - delayed)])
    enqueue(tracker, [("render", f"later-{i}", payload(i)) for i in range(delayed)], delay=86_400)
    return {"enqueue_s": round(t_enq, 1), "run_s": round(t_run, 1), "total_s": round(time.monotonic() - t0, 1)}


def commandstats(client: redis.Redis) -> tuple[int, float]:
    """Calls and microseconds of every command but INFO itself, so far."""
    stats = client.info("commandstats")
    calls = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")
    usec = sum(v["usec"] for k, v in stats.items() if k != "cmdstat_info")
    return calls, usec


def measure(web: Any, client: redis.Redis, url: str, requests: int) -> dict[str, Any]:
    web.get(url)  # warm: scripts loaded, connections open
    calls0, usec0 = commandstats(client)
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        r = web.get(url)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:200]}")
    calls1, usec1 = commandstats(client)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
            "commands": round((calls1 - calls0) / requests, 1), "redis_us": round((usec1 - usec0) / requests),
            "bytes": len(r.content)}


def pages(tracker: Tracker) -> dict[str, str]:
    failed = tracker.list_tasks(status=Status.FAILED, limit=1)[0].task_id
    page_end = tracker.list_tasks("render", Status.FINISHED, limit=50)[-1].task_id
    return {"overview (6 h of charts)": "/", "overview, 1 h of charts": "/?hours=1", "/api/summary": "/api/summary",
            "/metrics": "/metrics", "tasks, newest 50": "/tasks", "tasks FAILED, 50": "/tasks?status=failed",
            "tasks of a type, 50": "/tasks?type=fetch", "tasks ACCEPTED, 50": "/tasks?status=accepted",
            "tasks FINISHED of a type, page 2": f"/tasks?type=render&status=finished&before={page_end}",
            "a task": f"/tasks/{failed}"}


def run_size(n: int, requests: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from redis_atp.dashboard import DashboardConfig, create_app

    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = server.client()
        tracker = Tracker(client, NAMESPACE, max_queue_size=0)
        for name, handler in TYPES.items():
            tracker.register_task_type(name, handler, timeout=3600, timeret=-1)
        log(f"filling {n:,} tasks ...")
        filled = fill(tracker, server.url, n, Path(tmp))
        counts = {t.name: t.counts for t in tracker.list_task_types()}
        log(f"filled in {filled['total_s']} s: {json.dumps(tracker.get_queue_counts())}")
        web = TestClient(create_app(tracker, DashboardConfig(token="bench")))
        out = {name: measure(web, client, url, requests) for name, url in pages(tracker).items()}
        memory = int(client.info("memory")["used_memory"])
        client.close()
        return {"tasks": n, "fill": filled, "counts": counts, "used_memory": memory, "pages": out}


def markdown(results: list[dict[str, Any]]) -> str:
    sizes = [r["tasks"] for r in results]
    head = "| page | " + " | ".join(f"{n:,} tasks: p50 / p95 ms, commands, Redis µs" for n in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    for page in results[0]["pages"]:
        cells = [f"{r['pages'][page]['p50_ms']} / {r['pages'][page]['p95_ms']}, {r['pages'][page]['commands']:g}, "
                 f"{r['pages'][page]['redis_us']}" for r in results]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="1000,1000000", help="namespace sizes, comma-separated (default 1000,1000000)")
    ap.add_argument("--requests", type=int, default=50, help="requests per page (default 50)")
    ap.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/dashboard-<UTC time>.json)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.tasks.split(",") if s]
    results = [run_size(n, args.requests) for n in sizes]
    print(markdown(results))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M%S")
    out = args.out or RESULTS_DIR / f"dashboard-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"redis": server_version(), "python": sys.version.split()[0], "requests": args.requests,
                               "results": results}, indent=2))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
