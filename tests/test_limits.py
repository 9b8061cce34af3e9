"""Limits that protect Redis: input and response size, log records per task, and the
warning when Redis may evict keys."""

from __future__ import annotations

import warnings

import pytest

from redis_atp import EvictionPolicyWarning, InvalidInput, Tracker

from .conftest import namespace_keys
from .redisserver import RedisServer

HANDLER = "redis_atp.tracker.dummyHandler"


def test_input_and_response_limits(tracker: Tracker) -> None:
    small = Tracker(tracker.client, tracker.namespace, max_input_bytes=100, max_response_bytes=10)
    small.register_task_type("t", HANDLER)
    before = namespace_keys(small.client, small.namespace)
    with pytest.raises(InvalidInput, match="limit is 100"):
        small.enqueue_task("t", "x", "x" * 200)
    assert namespace_keys(small.client, small.namespace) == before
    tid = small.enqueue_task("t", "x", "x" * 50)
    with pytest.raises(InvalidInput, match="limit is 10"):
        small.set_task_response(tid, "y" * 11)
    small.set_task_response(tid, "y" * 10)
    assert small.get_task_response("t", "x") == ("y" * 10, "text/xml")


def test_log_is_capped_oldest_dropped(tracker: Tracker) -> None:
    capped = Tracker(tracker.client, tracker.namespace, max_log_records=5)
    capped.register_task_type("t", HANDLER)
    tid = capped.enqueue_task("t", "x", 1, "first")
    capped.dequeue_task("w")
    for i in range(20):
        capped.resume_task(tid, f"step {i}")
    log = capped.get_task_log("t", "x")
    assert [m for _, _, m in log] == [f"step {i}" for i in range(15, 20)]
    fields = capped.client.hkeys(capped.describe_task(tid)["key"])
    assert len([f for f in fields if f.startswith(b"log:")]) == 5


@pytest.mark.parametrize("kwargs", [{"max_log_records": 0}, {"max_input_bytes": -1}, {"max_queue_size": "9"}])
def test_bad_settings(tracker: Tracker, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Tracker(tracker.client, tracker.namespace, **kwargs)  # type: ignore[arg-type]


def test_decode_responses_client_is_refused(redis_url: str) -> None:
    import redis

    with pytest.raises(InvalidInput, match="decode_responses"):
        Tracker(redis.Redis.from_url(redis_url, decode_responses=True))


def test_warns_once_when_redis_can_evict(namespace: str) -> None:
    server = RedisServer("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru").start()
    try:
        client = server.client()
        tracker = Tracker(client, namespace)
        with pytest.warns(EvictionPolicyWarning, match="allkeys-lru"):
            tracker.get_queue_size() if False else tracker.register_task_type("t", HANDLER)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Tracker(client, namespace).register_task_type("u", HANDLER)
    finally:
        server.close()
