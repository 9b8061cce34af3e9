"""redis-atp adapter for the shared peer harness (``../shared/bench/peers.py``).

    python3 ../shared/bench/peers.py --adapter-path benchmarks/peers --systems redis_atp,huey

The harness installs this repository (``"../../.."`` from this folder) into the adapter's
venv on every run, so the current code is what gets measured.
"""

from __future__ import annotations

import itertools
from typing import Any

import redis
from adapters.base import Adapter, Payload, on_task

from redis_atp import RedisATPError, TaskStatus, Tracker

REQUIREMENTS = ["../../..", "redis==8.1.0", "hiredis==3.5.0"]
DIST = "redis-atp"

NAMESPACE = "atp"  # the default namespace
TASK_TYPE = "bench"
HANDLER = "adapters.redis_atp.handler"


def handler(task_status: TaskStatus, payload: Payload) -> None:
    on_task(payload)


class RedisATPAdapter(Adapter):
    name = "redis_atp"
    bulk_api = ("Tracker.enqueue_many([(type, identifier, payload), ...]) (enqueue script calls of up to 200 "
                "tasks, the default chunk, streamed on one connection: 32 first, each next half as large again)")

    def setup(self) -> None:
        self.tracker = Tracker(redis.Redis.from_url(self.url), namespace=NAMESPACE, max_queue_size=0)
        self.tracker.register_task_type(TASK_TYPE, HANDLER, timeout=3600, timeret=-1, maxrestart=2)
        self.ids = itertools.count()  # identifiers must be unique per (type, namespace)

    def enqueue_one(self, payload: Payload) -> None:
        self.tracker.enqueue_task(TASK_TYPE, str(next(self.ids)), payload)

    def enqueue_bulk(self, payloads: list[Payload]) -> None:
        items = [(TASK_TYPE, str(next(self.ids)), p) for p in payloads]
        for res in self.tracker.enqueue_many(items):
            if isinstance(res, RedisATPError):
                raise res

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [["redis-atp", "worker", "--url", self.url, "--namespace", NAMESPACE, "-n", str(processes),
                 "--log-level", "WARNING", "--allow", HANDLER]]

    def recorded_count(self, r: Any) -> int:
        return Tracker(r, namespace=NAMESPACE).get_task_type(TASK_TYPE).counts["finished_total"]

    def teardown(self) -> None:
        self.tracker.client.close()

    def describe(self) -> dict[str, str]:
        return {
            "producer": "Tracker(redis.Redis.from_url(url), namespace='atp', max_queue_size=0)"
            ".enqueue_task('bench', identifier, payload): one enqueue Lua script call per task (FCALL of the "
            "scripts' Redis Functions library; EVALSHA on Redis 6.2); "
            "input in msgpack",
            "workers": "`redis-atp worker --url URL --namespace atp -n N --log-level WARNING "
            "--allow adapters.redis_atp.handler` (a supervisor + N forked worker processes, 4 handler threads "
            "each: the default)",
            "status tracking": "always on: every state change is one Lua script call with a per-task log "
            "(ACCEPTED, SCHEDULED, RUNNING, FINISHED; fenced by a random per-run token); one script call "
            "per task ends the last run and claims and starts the next, and the handler runs only after "
            "that reply confirmed the claim (nothing is claimed ahead); timeret=-1 keeps finished tasks; "
            "recorded_complete = the type's finished_total counter kept by the scripts",
            "wake-up": "an idle worker thread registers as a waiter and blocks on its own mailbox (BLMOVE, "
            "5 s); the enqueue script claims the new task for the longest-waiting thread and puts its id "
            "there; the script the thread sends behind its wait starts it if that claim is still current: "
            "one hop from enqueue to handler",
            "other defaults": "timeout 3600 s (deadline refreshed on each status change), maxrestart 2, "
            "heartbeat 10 s, housekeeping every 2 s; no per-task logging at WARNING",
        }


ADAPTER = RedisATPAdapter
