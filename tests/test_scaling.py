"""Past one Redis: worker fleets on a real local Redis Cluster (sharded and not) and on
Sentinel, with a master killed mid-run."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_atp import QueueEmpty, Status, Tracker

from .clusterserver import LocalCluster, LocalSentinel, cluster_fixture, sentinel_fixture
from .conftest import delete_namespace
from .fleetproc import WorkerProc, wait_until

replicated_cluster = cluster_fixture(masters=3, replicas_per_master=1)
local_sentinel = sentinel_fixture()
LIVE = ("accepted", "scheduled", "running", "paused")


@pytest.fixture
def fx(redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Side-effect counters on the session's standalone server; worker processes cleaned up."""
    monkeypatch.setenv("REDIS_ATP_TEST_SIDEFX", redis_url)
    procs: list[WorkerProc] = []
    key = f"test-fx-{time.monotonic_ns()}"
    yield {"key": key, "procs": procs, "tmp": tmp_path, "url": redis_url}
    for p in procs:
        p.close()
    redis.Redis.from_url(redis_url).delete(key)


def run_fleet(fx: dict[str, Any], url: str, tracker: Tracker, *args: str) -> WorkerProc:
    p = WorkerProc(url, tracker.namespace, fx["tmp"], "-n", "2", "--shards", str(tracker.shards),
                   "--heartbeat", "30", *args)
    fx["procs"].append(p)
    return p


def all_ended(tracker: Tracker) -> bool:
    counts = tracker.get_task_type("count").counts
    return not any(counts[k] for k in LIVE)


def settled(tracker: Tracker) -> bool:
    """Every task ended and none queued; False while Redis is still failing over."""
    try:
        return all_ended(tracker) and tracker.get_queue_size() == 0
    except redis.RedisError:
        return False


def enqueue(tracker: Tracker, fx: dict[str, Any], n: int, sleep: float = 0.0) -> list[int | Any]:
    tracker.register_task_type("count", "handlers.count", timeout=3600, maxrestart=3)
    return tracker.enqueue_many([("count", f"c{i}", {"fx": fx["key"], "i": i, "sleep": sleep}) for i in range(n)])


@pytest.mark.parametrize("shards", [1, 8])
def test_worker_fleet_on_a_cluster(cluster: LocalCluster, namespace: str, fx: dict[str, Any], shards: int) -> None:
    client = cluster.client()
    tracker = Tracker(client, namespace, max_queue_size=0, shards=shards)
    try:
        ids = enqueue(tracker, fx, 300)
        assert all(isinstance(i, int) for i in ids)
        if shards > 1:
            assert sum(1 for s in tracker.shard_stats() if s["queue"]) >= 6  # spread over the shards
        w = run_fleet(fx, f"redis+cluster://127.0.0.1:{cluster.port}", tracker)
        wait_until(lambda: tracker.get_task_type("count").counts["finished_total"] == 300, 60, "300 tasks")
        w.signal(signal.SIGTERM)
        assert w.wait(30) == 0
        assert len(redis.Redis.from_url(fx["url"]).hgetall(fx["key"])) == 300  # every handler ran
    finally:
        delete_namespace(client, namespace)
        client.close()


def test_cluster_master_killed_mid_run(replicated_cluster: LocalCluster, namespace: str,
                                       fx: dict[str, Any]) -> None:
    client = replicated_cluster.client()
    tracker = Tracker(client, namespace, max_queue_size=0, shards=8)
    n = 400
    enqueue(tracker, fx, n, sleep=0.01)
    time.sleep(1)  # let the replicas catch up with the enqueues
    run_fleet(fx, f"redis+cluster://127.0.0.1:{replicated_cluster.port}", tracker)
    wait_until(lambda: tracker.get_task_type("count").counts["finished_total"] > 50, 30, "progress")
    victim, _ = replicated_cluster.masters()[0]
    replicated_cluster.kill_master(victim)
    killed = time.monotonic()
    replicated_cluster.wait_failover(victim, timeout=30)
    client.close()
    tracker = Tracker(replicated_cluster.client(), namespace, max_queue_size=0, shards=8)

    wait_until(lambda: settled(tracker), 90, "every task to end after the failover")
    counts = tracker.get_task_type("count").counts
    assert counts["finished_total"] >= n and counts["failed_total"] == 0
    for i in range(n):
        assert tracker.get_task_status_by_identifier("count", f"c{i}")[1] == "FINISHED"
    assert time.monotonic() - killed < 90
    delete_namespace(tracker.client, namespace)


def test_sentinel_failover_mid_run(local_sentinel: LocalSentinel, namespace: str, fx: dict[str, Any]) -> None:
    url = f"redis+sentinel://127.0.0.1:{local_sentinel.sentinel_port}/{local_sentinel.service}"
    tracker = Tracker.from_url(url, namespace, max_queue_size=0)
    n = 300
    enqueue(tracker, fx, n, sleep=0.01)
    time.sleep(0.5)
    run_fleet(fx, url, tracker)
    wait_until(lambda: tracker.get_task_type("count").counts["finished_total"] > 50, 30, "progress")
    local_sentinel.kill_master()
    local_sentinel.wait_failover()
    tracker.close()
    tracker = Tracker.from_url(url, namespace, max_queue_size=0)

    wait_until(lambda: settled(tracker), 90, "every task to end after the failover")
    for i in range(n):
        assert tracker.get_task_status_by_identifier("count", f"c{i}")[1] == "FINISHED"
    tracker.close()


@pytest.mark.parametrize("where", ["cluster", "sentinel"])
def test_the_async_tracker_from_cluster_and_sentinel_urls(request: pytest.FixtureRequest, namespace: str,
                                                         where: str) -> None:
    import asyncio

    from redis_atp.aio import AsyncTracker

    if where == "cluster":
        url = f"redis+cluster://127.0.0.1:{request.getfixturevalue('cluster').port}"
    else:
        s: LocalSentinel = request.getfixturevalue("local_sentinel")
        url = f"redis+sentinel://127.0.0.1:{s.sentinel_port}/{s.service}"

    async def lifecycle() -> None:
        async with AsyncTracker.from_url(url, namespace, max_queue_size=0, shards=4) as t:
            await t.register_task_type("t", "redis_atp.tracker.dummyHandler")
            ids = [await t.enqueue_task("t", f"i{i}", {"i": i}) for i in range(8)]
            claimed: list[int] = []
            while len(claimed) < 8:  # sharded: each claim takes from one shard
                claimed += await t.dequeue_task("w", count=8, timeout=1)
            assert sorted(claimed) == sorted(ids)
            await t.start_task(claimed[0])
            await t.stop_task_success(claimed[0], "done")
            assert await t.get_task_status(claimed[0]) == (Status.FINISHED, "FINISHED")
            assert await t.get_queue_size() == 0
            with pytest.raises(QueueEmpty):
                await t.dequeue_task("w", timeout=0.2)  # blocks on the wake keys, then gives up
            await t.unregister_task_type("t", force=True)

    asyncio.run(lifecycle())
