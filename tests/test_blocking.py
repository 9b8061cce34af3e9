"""Blocking dequeue: woken by enqueue, not by polling."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from redis_atp import QueueEmpty, Tracker

HANDLER = "redis_atp.tracker.dummyHandler"


SENT: list[str] = []


class CountingConnection(redis.Connection):
    """A connection that records the name of every command it sends."""

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        for packed in command if isinstance(command, list) else [command]:
            SENT.append(bytes(packed).split(b"\r\n")[2].decode())  # *N, $len, NAME, ...
        super().send_packed_command(command, check_health)


def test_blocking_dequeue_is_woken_by_enqueue(real_tracker: Tracker, redis_url: str) -> None:
    real_tracker.register_task_type("t", HANDLER)
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    waiter = Tracker(redis.Redis(connection_pool=pool), real_tracker.namespace)
    with pytest.raises(QueueEmpty):  # warm up: server check, script loaded, both connections open
        waiter.dequeue_task("w", timeout=0.01)
    timer = threading.Timer(0.5, lambda: real_tracker.enqueue_task("t", "x", 1))
    timer.start()
    SENT.clear()
    started = time.monotonic()
    [tid] = waiter.dequeue_task("w", timeout=10)
    waited = time.monotonic() - started
    timer.join()
    assert 0.45 < waited < 3
    assert real_tracker.get_task_status(tid)[1] == "SCHEDULED"
    # one try, one blocking wait, one try after the wake-up: no polling in between
    assert SENT == ["FCALL", "BZPOPMIN", "FCALL"]


def test_blocking_dequeue_times_out(real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", HANDLER)
    started = time.monotonic()
    with pytest.raises(QueueEmpty):
        real_tracker.dequeue_task("w", timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2


def test_each_waiter_gets_its_own_task(real_tracker: Tracker, redis_url: str) -> None:
    real_tracker.register_task_type("t", HANDLER)
    got: list[list[int]] = []

    def wait() -> None:
        t = Tracker(redis.Redis.from_url(redis_url), real_tracker.namespace)
        got.append(t.dequeue_task(f"w{threading.get_ident()}", timeout=5))

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for th in threads:
        th.start()
    time.sleep(0.3)
    real_tracker.enqueue_many([("t", f"x{i}", i) for i in range(3)])
    for th in threads:
        th.join(10)
    assert sorted(i for ids in got for i in ids) == [1, 2, 3]


def test_non_blocking_when_timeout_is_none_or_zero(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    for timeout in (None, 0, -1):
        with pytest.raises(QueueEmpty):
            tracker.dequeue_task("w", timeout=timeout)
