"""Fixtures: a real Redis first (a throwaway redis-server for the session, or
REDIS_ATP_TEST_URL), fakeredis as a second backend, a random namespace per test.

With CI=true a missing real Redis fails the run; locally it skips those tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_atp import TaskStatus, Tracker
from redis_atp.daemon.protocol import Run

from .clusterserver import LocalCluster
from .redisserver import RedisServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"real Redis is required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    url = os.environ.get("REDIS_ATP_TEST_URL")
    if url:
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            _unavailable(f"REDIS_ATP_TEST_URL={url} is unreachable: {exc}")
        yield url
        return
    server = RedisServer()
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"cannot start redis-server: {exc}")
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """A local Redis Cluster (3 masters, no replicas) for the session."""
    try:
        local = LocalCluster(masters=3, replicas_per_master=0).start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"cannot start a Redis Cluster: {exc}")
    try:
        yield local
    finally:
        local.close()


@pytest.fixture(scope="session")
def fake_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


@pytest.fixture
def namespace() -> str:
    return "test-" + uuid.uuid4().hex[:12]


@pytest.fixture
def real_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(params=["redis", "fakeredis", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client on each backend: the real server, fakeredis, a real Redis Cluster."""
    if request.param == "redis":
        yield request.getfixturevalue("real_client")
    elif request.param == "cluster":
        rc = request.getfixturevalue("cluster").client()
        yield rc
        rc.close()
    else:
        import fakeredis

        yield fakeredis.FakeRedis(server=request.getfixturevalue("fake_server"))


def namespace_keys(client: Any, namespace: str) -> list[bytes]:
    """Every key of a namespace, all shards (SCAN: fine in tests, never in the library)."""
    found: set[bytes] = set()
    for pattern in (f"atp:{{{namespace}}}:*", f"atp:{{{namespace}/*"):
        found.update(client.scan_iter(match=pattern, count=1000))
    return sorted(found)


def async_client(request: pytest.FixtureRequest) -> Any:
    """A ``redis.asyncio`` client on the backend of the test's ``client`` fixture."""
    backend = request.node.callspec.params.get("client", "redis")
    if backend == "cluster":
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster(host="127.0.0.1", port=request.getfixturevalue("cluster").port)
    if backend == "fakeredis":
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=request.getfixturevalue("fake_server"))
    import redis.asyncio

    return redis.asyncio.Redis.from_url(request.getfixturevalue("redis_url"))


class AsyncFace:
    """An :class:`~redis_atp.aio.AsyncTracker` addressed like a ``Tracker``: each call runs
    the coroutine twin to completion on this face's own event loop, so one test body
    checks both faces."""

    def __init__(self, tracker: Tracker, client: Any) -> None:
        from redis_atp.aio import AsyncTracker

        self.loop = asyncio.new_event_loop()
        self.atracker = AsyncTracker(client, tracker.namespace, shards=tracker.shards,
                                     serializer=tracker.serializer.name)
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.atracker, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(method(*args, **kwargs))
        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


#: The commands a script call goes as (FCALL on Redis 7+, else EVALSHA; EVAL after NOSCRIPT).
SCRIPT_CALLS = (b"FCALL", b"EVALSHA", b"EVAL")


def slow_script_calls(client: Any, count: int = 1000) -> list[Any]:
    """The script calls in Redis's SLOWLOG."""
    return [e for e in client.slowlog_get(count) if e["command"].split()[0].upper() in SCRIPT_CALLS]


def bound(tracker: Tracker, run: Run) -> TaskStatus:
    """A ``TaskStatus`` bound to ``run`` (a claim or a started task), as the worker builds one."""
    return TaskStatus(run.task_id, tracker=tracker, token=run.token)


def runs(tracker: Tracker, owner: str, **options: Any) -> list[TaskStatus]:
    """``tracker.claim(owner, ...)``, each claim as a bound ``TaskStatus``."""
    return [bound(tracker, c) for c in tracker.claim(owner, **options)]


def live_queue(tracker: Tracker, shard: int = 0) -> list[int]:
    """A shard's queue as claims see it, in order: priority levels highest first, and in
    each the entries that are an ACCEPTED task's current one (``<id>``, or ``<id>:<nq>``
    once it was re-queued)."""
    keys = tracker.shard_keys[shard]
    levels = sorted({0, *(int(p) for p in tracker.client.zrange(keys.levels, 0, -1))}, reverse=True)
    return [tid for level in levels for tid in _live_entries(tracker, keys.level(level))]


def _live_entries(tracker: Tracker, key: str) -> list[int]:
    out = []
    for raw in tracker.client.lrange(key, 0, -1):
        tid, _, nq = raw.decode().partition(":")
        try:
            key = tracker.describe_task(int(tid))["key"]
        except LookupError:
            continue  # a deleted task's entry
        status, current = tracker.client.hmget(key, "status", "nq")
        if status is not None and int(status) == 1 and int(current or 0) == int(nq or 0):  # None: expired
            out.append(int(tid))
    return out


def delete_namespace(client: Any, namespace: str) -> None:
    keys = namespace_keys(client, namespace)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    pipe.execute()


@pytest.fixture
def tracker(client: Any, namespace: str) -> Iterator[Tracker]:
    t = Tracker(client, namespace)
    yield t
    delete_namespace(client, namespace)


@pytest.fixture
def env(redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """For worker processes: side-effect counters in a test-owned hash, the test
    handlers' settings, and every worker started with ``fleetproc.start`` closed."""
    fx = f"test-fx-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_ATP_TEST_SIDEFX", redis_url)
    monkeypatch.setenv("REDIS_ATP_TEST_MARKER", str(tmp_path / "marker-imported"))
    monkeypatch.delenv("REDIS_ATP_ALLOW", raising=False)
    procs: list[Any] = []
    yield {"fx": fx, "procs": procs, "tmp": tmp_path}
    for p in procs:
        p.close()
    redis.Redis.from_url(redis_url).delete(fx)


@pytest.fixture
def real_tracker(real_client: redis.Redis, namespace: str) -> Iterator[Tracker]:
    """A tracker on the real server only (processes, blocking, server-side stats)."""
    t = Tracker(real_client, namespace)
    yield t
    delete_namespace(real_client, namespace)
