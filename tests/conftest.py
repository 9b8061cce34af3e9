"""Fixtures: a real Redis first (a throwaway redis-server for the session, or
REDIS_ATP_TEST_URL), fakeredis as a second backend, a random namespace per test.

With CI=true a missing real Redis fails the run; locally it skips those tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_atp import Tracker

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


def live_queue(tracker: Tracker, shard: int = 0) -> list[int]:
    """A shard's queue as claims see it, in order: the entries that are an ACCEPTED
    task's current one (``<id>``, or ``<id>:<nq>`` once it was re-queued)."""
    out = []
    for raw in tracker.client.lrange(tracker.shard_keys[shard].queue, 0, -1):
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
