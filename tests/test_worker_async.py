"""``async def`` handlers in the worker (SPEC §9): one event loop per process, up to
``--concurrency`` at once, with the sync slots' fencing, recovery and shutdown."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from redis_atp import Tracker
from redis_atp.daemon.fleet import Fleet

from .fleetproc import all_ended, counts, start, wait_until


def _times(t: Tracker, ident: str) -> tuple[float, float]:
    response, _ = t.get_task_response("nap", ident)
    got = json.loads(response)  # type: ignore[arg-type]
    return got["start"], got["end"]


def test_async_handlers_overlap_up_to_the_concurrency(real_tracker: Tracker, redis_url: str,
                                                      env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap")
    t.enqueue_many([("nap", f"n{i}", {"sleep": 1.0}) for i in range(10)])
    start(env, redis_url, t.namespace, "-n", "1", "--threads", "1", "--concurrency", "10")
    wait_until(lambda: counts(t, "nap")["finished_total"] == 10, 30, "ten naps")
    spans = [_times(t, f"n{i}") for i in range(10)]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # all ten were asleep at one moment
    assert all(e - s >= 1.0 for s, e in spans)  # each was awaited to completion


def test_the_concurrency_bounds_the_runs_at_once(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap")
    t.enqueue_many([("nap", f"n{i}", {"sleep": 0.5}) for i in range(6)])
    start(env, redis_url, t.namespace, "-n", "1", "--concurrency", "2")
    wait_until(lambda: counts(t, "nap")["finished_total"] == 6, 30, "six naps")
    spans = [_times(t, f"n{i}") for i in range(6)]
    at_once = max(sum(s <= moment < e for s, e in spans) for moment, _ in spans)
    assert at_once == 2


def test_a_fleet_runs_sync_and_async_types_side_by_side(real_tracker: Tracker, redis_url: str,
                                                        env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap")
    t.register_task_type("count", "handlers.count")
    t.enqueue_many([("nap" if i % 2 else "count", f"m{i}", {"fx": env["fx"], "i": i, "sleep": 0.05})
                    for i in range(40)])
    start(env, redis_url, t.namespace, "-n", "2", "--threads", "2")
    wait_until(lambda: all_ended(t, "nap", "count"), 30, "every task")
    assert counts(t, "nap")["finished_total"] == 20 and counts(t, "count")["finished_total"] == 20
    assert sorted(int(k) for k in t.client.hkeys(env["fx"])) == list(range(0, 40, 2))


def test_warm_shutdown_lets_async_runs_finish(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap")
    ids = [t.enqueue_task("nap", f"n{i}", {"sleep": 1.5}) for i in range(6)]
    w = start(env, redis_url, t.namespace, "-n", "1", "--concurrency", "3")
    wait_until(lambda: counts(t, "nap")["running"] == 3, 15, "three running naps")
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    statuses = [t.get_task_status(i)[1] for i in ids]
    assert statuses.count("FINISHED") == 3 and statuses.count("ACCEPTED") == 3, statuses
    assert all(t.describe_task(i)["restarts"] == 0 for i in ids)


def test_cold_shutdown_puts_async_runs_back(real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap", maxrestart=0)
    ids = [t.enqueue_task("nap", f"n{i}", {"sleep": 60}) for i in range(3)]
    w = start(env, redis_url, t.namespace, "-n", "1", "--concurrency", "5", "--grace", "1")
    wait_until(lambda: counts(t, "nap")["running"] == 3, 15, "three running naps")
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert [t.get_task_status(i)[1] for i in ids] == ["ACCEPTED"] * 3
    assert all(t.describe_task(i)["restarts"] == 0 for i in ids)  # not charged
    assert "cold shutdown" in t.get_task_log("nap", "n0")[-1][2]


def test_a_killed_process_s_async_runs_are_recovered(real_tracker: Tracker, redis_url: str,
                                                     env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap", maxrestart=2)
    ids = [t.enqueue_task("nap", f"n{i}", {"sleep": 2.0}) for i in range(3)]
    start(env, redis_url, t.namespace, "-n", "1", "--concurrency", "5")
    wait_until(lambda: counts(t, "nap")["running"] == 3, 15, "three running naps")
    [worker] = Fleet(t).workers()
    os.kill(worker.pid, signal.SIGKILL)
    wait_until(lambda: all_ended(t, "nap"), 30, "recovery and re-run")
    for i in ids:
        info = t.describe_task(i)
        assert info["status"] == "FINISHED" and info["restarts"] == 1, info
        assert "exited" in " ".join(m for _, _, m in info["log"])


@pytest.mark.parametrize("concurrency", ["0", "-1"])
def test_the_concurrency_must_be_positive(redis_url: str, namespace: str, concurrency: str) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "redis_atp", "worker", "--url", redis_url, "--namespace", namespace,
                          "--concurrency", concurrency], capture_output=True, text=True, timeout=20)
    assert run.returncode == 2 and "--concurrency" in run.stderr
