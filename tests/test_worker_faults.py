"""Fault regressions of the worker fleet: `redis-atp worker` subprocesses against a real
Redis (a throwaway server of the test's own whenever the test changes server state)."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_atp import Tracker
from redis_atp.daemon.fleet import Fleet

from .conftest import delete_namespace
from .fleetproc import all_ended, counts, start, wait_until
from .redisserver import RedisServer, free_port


@pytest.fixture
def own_server(env: dict[str, Any]) -> Iterator[Callable[..., RedisServer]]:
    """A factory of throwaway redis-servers; at teardown the workers stop before them."""
    servers: list[RedisServer] = []

    def make(*extra: str, appendonly: bool = False, port: int = 0, start: bool = True) -> RedisServer:
        server = RedisServer(*extra, appendonly=appendonly)
        server.port = port
        servers.append(server)
        return server.start() if start else server

    yield make
    for p in env["procs"]:
        p.close()
    env["procs"].clear()
    for s in servers:
        s.close()


def status(tracker: Tracker, type: str, ident: str) -> str:
    return tracker.get_task_status_by_identifier(type, ident)[1]


def settled(pred: Callable[[], Any]) -> Callable[[], Any]:
    """``pred`` as a wait condition that counts a Redis error (an outage) as not yet."""
    def check() -> Any:
        try:
            return pred()
        except redis.RedisError:
            return False
    return check


def worker_cmd(url: str, namespace: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "redis_atp", "worker", "--url", url, "--namespace", namespace, *args]


# 1 -------------------------------------------------------------------------------------
def test_poison_message_fails_its_task_and_the_worker_goes_on(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("poison", "handlers.poison", maxrestart=2)
    t.register_task_type("count", "handlers.count")
    t.enqueue_task("poison", "p", {})
    w = start(env, redis_url, t.namespace, "-n", "1")
    wait_until(lambda: status(t, "poison", "p") == "FAILED", 20, "the poison task to fail")
    last = t.get_task_log("poison", "p")[-1]
    assert last[1][1] == "FAILED"
    assert "\\udcff" in last[2] and last[2].startswith("ValueError: bad-"), last
    assert t.describe_task(t.get_task_id("poison", "p"))["restarts"] == 0
    t.enqueue_task("count", "after", {"fx": env["fx"], "i": 1})
    wait_until(lambda: status(t, "count", "after") == "FINISHED", 20, "the task after it to finish")
    assert t.client.hget(env["fx"], "1") == b"1"
    assert w.proc.poll() is None  # still running
    out = w.output()
    assert "exited with code" not in out, out  # no worker process died over it
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0


# 2 -------------------------------------------------------------------------------------
def test_a_child_exiting_0_mid_task_counts_against_maxrestart(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("exit0", "handlers.exit_zero", timeout=3600, maxrestart=1)
    t.enqueue_task("exit0", "z", {"fx": env["fx"], "i": 0})
    w = start(env, redis_url, t.namespace, "-n", "1")
    wait_until(lambda: status(t, "exit0", "z") == "FAILED", 20, "the task to fail")
    assert t.client.hget(env["fx"], "0") == b"2"  # maxrestart + 1 starts
    info = t.describe_task(t.get_task_id("exit0", "z"))
    assert info["restarts"] == 1
    last = info["log"][-1][2]
    assert "restart limit reached" in last and "exited with code 0 while running it" in last, last
    # the supervisor spawned a replacement that goes on (and is past its start-up when
    # the SIGTERM below comes)
    t.register_task_type("count", "handlers.count")
    t.enqueue_task("count", "after", {"fx": env["fx"], "i": 1})
    wait_until(lambda: status(t, "count", "after") == "FINISHED", 20, "the task after it to finish")
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0


# 3 -------------------------------------------------------------------------------------
def test_oom_refusals_are_survived(namespace: str, env: dict[str, Any],
                                   own_server: Callable[..., RedisServer]) -> None:
    server = own_server()
    t = Tracker(server.client(), namespace, max_queue_size=0)
    t.register_task_type("count", "handlers.count", timeout=3600)
    t.enqueue_many([("count", f"a{i}", {"fx": env["fx"], "i": i}) for i in range(5)])
    w = start(env, server.url, namespace, "-n", "1", "--heartbeat", "2")
    wait_until(lambda: counts(t, "count")["finished_total"] == 5, 20, "the first tasks")
    admin = server.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        admin.set("probe", "x")  # writes are refused now
    time.sleep(3)
    admin.config_set("maxmemory", "0")
    t.enqueue_many([("count", f"b{i}", {"fx": env["fx"], "i": 100 + i}) for i in range(5)])
    wait_until(lambda: counts(t, "count")["finished_total"] == 10, 20, "the tasks after the OOM window")
    assert all_ended(t, "count")
    assert status(t, "count", "b4") == "FINISHED"
    wait_until(lambda: Fleet(t).workers(), 10, "the children's heartbeat keys")
    out = w.output()
    assert "OutOfMemoryError" in out and "maxmemory" in out, out[-3000:]
    assert "exited with code" not in out, out[-3000:]  # no worker process died over it
    assert w.proc.poll() is None
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0


# 4 -------------------------------------------------------------------------------------
def test_a_connection_blip_inside_a_handler_does_not_fail_its_task(
        namespace: str, env: dict[str, Any], own_server: Callable[..., RedisServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = own_server()
    monkeypatch.setenv("REDIS_ATP_TEST_SIDEFX", server.url)
    t = Tracker(server.client(), namespace, max_queue_size=0)
    t.register_task_type("blip", "handlers.blip", timeout=3600)
    t.enqueue_task("blip", "k", {})
    start(env, server.url, namespace, "-n", "1")

    # settled: the test's own connection is killed too
    wait_until(settled(lambda: status(t, "blip", "k") in ("FINISHED", "FAILED")), 30, "the task to end")
    log = t.get_task_log("blip", "k")
    assert status(t, "blip", "k") == "FINISHED", log
    assert "FAILED" not in [s[1] for _, s, _ in log], log
    assert any(m == "after the blip" for _, _, m in log), log
    assert t.get_task_response("blip", "k") == ("ok", "text/plain")


# 5 -------------------------------------------------------------------------------------
def test_a_staticmethod_handler_runs(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("tools", "handlers.Tools.work")
    t.enqueue_task("tools", "s", {"i": 5})
    w = start(env, redis_url, t.namespace, "-n", "1", "--burst")
    assert w.wait(20) == 0
    assert status(t, "tools", "s") == "FINISHED", t.get_task_log("tools", "s")
    assert t.get_task_response("tools", "s") == ("tools 5", "text/plain")


# 6 -------------------------------------------------------------------------------------
def test_an_async_handler_is_awaited_once(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("async", "handlers.async_work")
    t.enqueue_task("async", "a", {"fx": env["fx"], "i": 0})
    w = start(env, redis_url, t.namespace, "-n", "1", "--burst")
    assert w.wait(20) == 0
    assert status(t, "async", "a") == "FINISHED", t.get_task_log("async", "a")
    assert t.client.hget(env["fx"], "0") == b"1"
    assert "never awaited" not in w.output()


# 7 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", ","])
def test_an_empty_allow_list_is_refused(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any], tmp_path: Path, value: str) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count")
    tid = t.enqueue_task("count", "c", {"fx": env["fx"], "i": 0})
    run = subprocess.run(worker_cmd(redis_url, t.namespace, "-n", "1", "-p", str(tmp_path), "--allow", value),
                         capture_output=True, text=True, timeout=20)
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("redis-atp: error:") and "--allow" in lines[0], run.stderr
    assert t.get_task_status(tid)[1] == "ACCEPTED"
    assert [s[1] for _, s, _ in t.get_task_log("count", "c")] == ["ACCEPTED"]
    assert Fleet(t).workers() == []
    assert not t.client.exists(env["fx"])


# 8 -------------------------------------------------------------------------------------
def test_unreachable_redis_at_start_is_one_clear_error(namespace: str, env: dict[str, Any]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    run = subprocess.run(worker_cmd(url, namespace, "-n", "1"), capture_output=True, text=True, timeout=10)
    assert run.returncode == 1, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"redis-atp: error: cannot reach Redis at {url}"), run.stderr


def test_wait_for_redis_comes_up_when_redis_does(
        namespace: str, env: dict[str, Any], own_server: Callable[..., RedisServer]) -> None:
    port = free_port()
    w = start(env, f"redis://127.0.0.1:{port}/0", namespace, "-n", "1", "--wait-for-redis", "30")
    time.sleep(2)
    assert w.proc.poll() is None, w.output()  # still waiting
    server = own_server(port=port)
    assert server.port == port
    t = Tracker(server.client(), namespace, max_queue_size=0)
    t.register_task_type("count", "handlers.count")
    t.enqueue_task("count", "c", {"fx": env["fx"], "i": 0})
    wait_until(lambda: status(t, "count", "c") == "FINISHED", 30, "the task to finish")
    assert "waiting for redis" in w.output()
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0


# 9 -------------------------------------------------------------------------------------
def test_sigterm_with_redis_down_on_an_idle_fleet_exits_promptly(
        namespace: str, env: dict[str, Any], own_server: Callable[..., RedisServer]) -> None:
    server = own_server()
    t = Tracker(server.client(), namespace, max_queue_size=0)
    t.register_task_type("count", "handlers.count")
    t.enqueue_task("count", "c", {"fx": env["fx"], "i": 0})
    w = start(env, server.url, namespace, "-n", "2", "--grace", "30")
    wait_until(lambda: status(t, "count", "c") == "FINISHED", 20, "a task to finish")
    wait_until(lambda: len(Fleet(t).workers()) == 2, 10, "both children registered")
    server.kill()
    time.sleep(0.5)
    w.signal(signal.SIGTERM)
    try:
        code = w.wait(15)  # well before the 30 s grace
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within 15 s of SIGTERM:\n{w.output()[-3000:]}")
    assert code == 0, w.output()[-3000:]


# 10 ------------------------------------------------------------------------------------
def test_completed_runs_are_not_rerun_after_a_redis_restart(
        namespace: str, env: dict[str, Any], own_server: Callable[..., RedisServer]) -> None:
    server = own_server("--appendfsync", "always", appendonly=True)
    runs = env["tmp"] / "runs.txt"
    t = Tracker(server.client(), namespace, max_queue_size=0)
    t.register_task_type("record", "handlers.record", timeout=3600)
    n = 300
    enqueued = t.enqueue_many([("record", f"r{i}", {"sleep": 0.01}) for i in range(n)])
    ids = [i for i in enqueued if isinstance(i, int)]
    assert len(ids) == n, enqueued
    start(env, server.url, namespace, "-n", "2", extra_env={"REDIS_ATP_TEST_RUNS": str(runs)})
    wait_until(lambda: counts(t, "record")["finished_total"] > 40, 20, "progress")
    port = server.port
    server.kill()
    time.sleep(1)
    server.start()
    assert server.port == port
    wait_until(settled(lambda: all_ended(t, "record")), 60, "every task to end after the restart")
    t = Tracker(server.client(), namespace, max_queue_size=0)  # a client with no pre-restart connection
    assert counts(t, "record")["finished_total"] == n
    executions = collections.Counter(int(line) for line in runs.read_text().split())
    assert set(executions) == set(ids)
    for tid in ids:
        info = t.describe_task(tid)
        assert info["status"] == "FINISHED", info
        put_back = sum(1 for _, _, m in info["log"] if "put back" in m or "re-enqueued" in m)
        assert executions[tid] <= 1 + put_back, (tid, executions[tid], info["log"])
    assert t.get_queue_size() == 0


# issue 10 ------------------------------------------------------------------------------
def test_an_unreadable_input_fails_its_task_and_the_worker_goes_on(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count")
    bad = t.enqueue_task("count", "bad", {"fx": env["fx"], "i": 1})
    t.client.hset(t.describe_task(bad)["key"], "input", b"\xc1")  # never valid msgpack: written by hand
    t.enqueue_task("count", "good", {"fx": env["fx"], "i": 2})
    w = start(env, redis_url, t.namespace, "-n", "1", "--burst")
    assert w.wait(20) == 0
    assert status(t, "count", "bad") == "FAILED"
    assert "cannot decode the input with msgpack" in t.get_task_log("count", "bad")[-1][2]
    assert status(t, "count", "good") == "FINISHED" and t.client.hget(env["fx"], "2") == b"1"


def test_a_worker_with_another_serializer_than_the_namespace_s_refuses_to_start(
        real_client: redis.Redis, redis_url: str, namespace: str, env: dict[str, Any]) -> None:
    Tracker(real_client, namespace, serializer="pickle").register_task_type("count", "handlers.count")
    r = subprocess.run(worker_cmd(redis_url, namespace, "-n", "1", "--burst"), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "--serializer pickle" in r.stderr
    r = subprocess.run(worker_cmd(redis_url, namespace, "-n", "1", "--burst", "--serializer", "pickle"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    delete_namespace(real_client, namespace)
