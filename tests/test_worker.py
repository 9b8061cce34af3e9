"""The worker fleet as a user runs it: `redis-atp worker` subprocesses, real Redis."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_atp import Status, Tracker
from redis_atp.daemon.fleet import Fleet

from .fleetproc import all_ended, counts, start, wait_until
from .redisserver import RedisServer


def test_runs_tasks_to_completion(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = Tracker(real_tracker.client, real_tracker.namespace, max_queue_size=0)
    t.register_task_type("count", "handlers.count")
    t.register_task_type("boom", "handlers.boom")
    t.register_task_type("steps", "handlers.steps")
    t.register_task_type("early", "handlers.succeed_early")
    t.enqueue_many([("count", f"c{i}", {"fx": env["fx"], "i": i}) for i in range(300)])
    t.enqueue_many([("boom", "b", {"i": 7}), ("steps", "s", {"i": 3}), ("early", "e", {})])
    w = start(env, redis_url, t.namespace, "-n", "2")
    wait_until(lambda: all_ended(t, "count", "boom", "steps", "early"), 30, "all tasks to end")
    assert counts(t, "count")["finished_total"] == 300
    fx = t.client.hgetall(env["fx"])
    assert len(fx) == 300 and set(fx.values()) == {b"1"}
    assert t.get_task_status_by_identifier("boom", "b") == (Status.FAILED, "FAILED")
    assert t.get_task_log("boom", "b")[-1][2] == "ValueError: bad input 7"
    assert t.get_task_response("steps", "s") == ("<r>3</r>", "application/xml")
    assert [s[1] for _, s, _ in t.get_task_log("steps", "s")] == [
        "ACCEPTED", "SCHEDULED", "RUNNING", "PAUSED", "RUNNING", "FINISHED"]
    early = t.get_task_log("early", "e")
    assert [s[1] for _, s, _ in early][-1] == "FINISHED" and early[-1][2] == "done by the handler"
    assert sum(1 for _, s, _ in early if s[1] == "FINISHED") == 1
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0
    out = w.output()
    assert "redis-atp worker id=" in out and f"namespace={t.namespace}" in out
    assert "no --allow given" in out
    assert "task finished id=" in out and "type=count" in out and "duration=" in out
    assert "Traceback" in out and "ValueError: bad input 7" in out
    assert Fleet(t).workers() == []


def test_allow_refuses_without_importing_and_burst_exits(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("evil", "marker.run")
    t.register_task_type("count", "handlers.count")
    t.enqueue_task("evil", "x", {})
    t.enqueue_task("count", "y", {"fx": env["fx"], "i": 1})
    w = start(env, redis_url, t.namespace, "-n", "1", "--allow", "handlers", "--burst")
    assert w.wait(20) == 0
    assert t.get_task_status_by_identifier("evil", "x") == (Status.FAILED, "FAILED")
    assert "outside the allowed prefixes" in t.get_task_log("evil", "x")[-1][2]
    assert not (env["tmp"] / "marker-imported").exists()
    assert t.get_task_status_by_identifier("count", "y") == (Status.FINISHED, "FINISHED")
    assert "no --allow given" not in w.output()


def test_burst_on_an_empty_queue_exits_at_once(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    started = time.monotonic()
    w = start(env, redis_url, real_tracker.namespace, "-n", "2", "--burst")
    assert w.wait(20) == 0
    assert time.monotonic() - started < 10


def test_a_handler_that_kills_its_worker_fails_after_maxrestart_plus_one_starts(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("die", "handlers.die", timeout=3600, maxrestart=2)
    t.enqueue_task("die", "d", {"fx": env["fx"], "i": 0})
    start(env, redis_url, t.namespace, "-n", "1")
    wait_until(lambda: t.get_task_status_by_identifier("die", "d")[1] == "FAILED", 20, "the task to fail")
    assert t.client.hget(env["fx"], "0") == b"3"
    last = t.get_task_log("die", "d")[-1][2]
    assert "exited with code 1 while running it" in last and "restart limit reached" in last


def test_chaos_sigkill_children(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = Tracker(real_tracker.client, real_tracker.namespace, max_queue_size=0)
    maxrestart = 3
    t.register_task_type("count", "handlers.count", timeout=3600, maxrestart=maxrestart)
    n = 400
    t.enqueue_many([("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": random.uniform(0.002, 0.02)})
                    for i in range(n)])
    start(env, redis_url, t.namespace, "-n", "3")
    fleet = Fleet(t)
    kills = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not all_ended(t, "count"):
        time.sleep(0.25)
        pids = [w.pid for w in fleet.workers() if w.pid]
        if pids:
            try:
                os.kill(random.choice(pids), signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
    wait_until(lambda: all_ended(t, "count"), 60, "every task to end")
    assert kills >= 5
    fx = {int(k): int(v) for k, v in t.client.hgetall(env["fx"]).items()}
    for i in range(n):
        info = t.describe_task(t.get_task_id("count", f"c{i}"))
        assert info["status"] in ("FINISHED", "FAILED")
        if info["status"] == "FAILED":
            assert info["restarts"] == maxrestart, info
        assert 1 <= fx.get(i, 0) <= maxrestart + 1, (i, fx.get(i))
    assert t.get_queue_size() == 0


def test_sigterm_lets_running_tasks_finish(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count")
    ids = [t.enqueue_task("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": 1.5}) for i in range(6)]
    w = start(env, redis_url, t.namespace, "-n", "2")
    wait_until(lambda: counts(t, "count")["running"] == 2, 15, "two running tasks")
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    statuses = [t.get_task_status(i)[1] for i in ids]
    assert statuses.count("FINISHED") == 2 and statuses.count("ACCEPTED") == 4
    assert t.get_queue_size() == 4


@pytest.mark.parametrize("how", ["grace runs out", "second signal"])
def test_cold_shutdown_puts_running_tasks_back(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any], how: str) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count", maxrestart=0)
    ids = [t.enqueue_task("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": 60}) for i in range(3)]
    w = start(env, redis_url, t.namespace, "-n", "2", "--grace", "1")
    wait_until(lambda: counts(t, "count")["running"] == 2, 15, "two running tasks")
    began = time.monotonic()
    w.signal(signal.SIGTERM)
    if how == "second signal":
        time.sleep(0.2)
        w.signal(signal.SIGINT)
    assert w.wait(20) == 0
    assert time.monotonic() - began < 10
    assert [t.get_task_status(i)[1] for i in ids] == ["ACCEPTED"] * 3
    assert t.get_queue_size() == 3
    assert all(t.describe_task(i)["restarts"] == 0 for i in ids)  # not charged as a restart
    assert "cold shutdown" in t.get_task_log("count", "c0")[-1][2]


def test_lost_host_tasks_are_recovered_by_another_worker(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count", timeout=3600, maxrestart=2)
    ids = [t.enqueue_task("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": 1.0}) for i in range(2)]
    a = start(env, redis_url, t.namespace, "-n", "2", "--heartbeat", "1")
    wait_until(lambda: counts(t, "count")["running"] == 2, 15, "two running tasks")
    a.kill_group()  # the whole host is gone: supervisor and children, no goodbye
    lost = time.monotonic()
    start(env, redis_url, t.namespace, "-n", "1", "--heartbeat", "1")
    wait_until(lambda: all_ended(t, "count"), 20, "recovery and re-run")
    assert time.monotonic() - lost < 10
    for i in ids:
        info = t.describe_task(i)
        assert info["status"] == "FINISHED" and info["restarts"] == 1
        assert "lost its heartbeat" in " ".join(m for _, _, m in info["log"])


def test_survives_redis_outages(namespace: str, env: dict[str, Any], tmp_path: Path) -> None:
    server = RedisServer("--appendfsync", "always", appendonly=True).start()
    try:
        t = Tracker(server.client(), namespace, max_queue_size=0)
        t.register_task_type("count", "handlers.count", timeout=3600)
        n = 300
        t.enqueue_many([("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": 0.02}) for i in range(n)])
        start(env, server.url, namespace, "-n", "2", "--heartbeat", "10")
        done = lambda: counts(t, "count")["finished_total"]  # noqa: E731
        wait_until(lambda: done() > 20, 20, "progress")
        server.pause()
        time.sleep(3)
        server.resume()
        wait_until(lambda: done() > 100, 30, "progress after a pause")
        t.client.script_flush()
        t.client.function_flush()
        wait_until(lambda: done() > 140, 30, "progress after SCRIPT FLUSH and FUNCTION FLUSH")
        server.stop()
        time.sleep(2)
        server.start()
        wait_until(lambda: all_ended(t, "count"), 60, "every task to end after a restart")
        assert done() == n
        assert t.get_queue_size() == 0
        fx = redis.Redis.from_url(os.environ["REDIS_ATP_TEST_SIDEFX"]).hgetall(env["fx"])
        assert len(fx) == n and all(1 <= int(v) <= 3 for v in fx.values())
        if os.environ.get("SHOW_WORKER_LOG"):
            print(env["procs"][0].output())
    finally:
        for p in env["procs"]:
            p.close()
        env["procs"].clear()
        server.close()


def test_slots_run_handlers_in_threads(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count")
    t.enqueue_many([("count", f"c{i}", {"fx": env["fx"], "i": i, "sleep": 1.0}) for i in range(8)])
    started = time.monotonic()
    start(env, redis_url, t.namespace, "-n", "1", "--threads", "8")
    wait_until(lambda: counts(t, "count")["finished_total"] == 8, 15, "eight tasks")
    assert time.monotonic() - started < 6  # eight 1 s handlers at once, not one after another
    workers = Fleet(t).workers()
    assert len(workers) == 1 and workers[0].threads == 8

