"""Real concurrency, real processes, a real Redis: the guarantees hold under races."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from typing import Any

import redis

from redis_atp import QueueEmpty, QueueFull, Status, Tracker

from .conftest import live_queue

HANDLER = "redis_atp.tracker.dummyHandler"
PROCS = 6
ctx = mp.get_context("spawn")


def _run_all(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    """Start one process per args tuple behind a common start signal, given once every
    process is ready (a spawned process takes a while to import on a busy machine, and
    the race must really happen); gather results."""
    results, ready = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(results, (ready, go), *a)) for a in args]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return out


def _gate(gate: Any) -> None:
    """Say this process is ready, then wait for the common start."""
    ready, go = gate
    ready.put(1)
    go.wait()


def _dequeuer(results: Any, go: Any, url: str, ns: str, me: int) -> None:
    t = Tracker(redis.Redis.from_url(url), ns)
    t.get_queue_size()  # connected and checked before the race
    got: list[int] = []
    _gate(go)
    while True:
        try:
            got += t.dequeue_task(f"server-{me}", count=1 + me % 3)
        except QueueEmpty:
            break
    results.put(got)


def test_dequeuers_never_get_the_same_task(real_tracker: Tracker, redis_url: str) -> None:
    t = Tracker(real_tracker.client, real_tracker.namespace, max_queue_size=0)
    t.register_task_type("t", HANDLER)
    ids = [i for i in t.enqueue_many([("t", f"i{i}", i) for i in range(3000)])]
    taken = _run_all(_dequeuer, [(redis_url, t.namespace, me) for me in range(PROCS)])
    flat = [i for got in taken for i in got]
    assert len(flat) == len(set(flat)) == 3000
    assert sorted(flat) == ids
    assert sum(1 for got in taken if got) > 1  # the race really happened
    assert t.get_task_type("t").counts["scheduled"] == 3000


def _producer(results: Any, go: Any, url: str, ns: str, me: int) -> None:
    t = Tracker(redis.Redis.from_url(url), ns, max_queue_size=50)
    t.get_queue_size()  # connected, and the limit set, before the race
    ok = full = 0
    _gate(go)
    for i in range(100):
        try:
            t.enqueue_task("t", f"{me}-{i}", i)
            ok += 1
        except QueueFull:
            full += 1
    bulk = t.enqueue_many([("t", f"{me}-bulk-{i}", i) for i in range(20)])
    ok += sum(isinstance(r, int) for r in bulk)
    full += sum(isinstance(r, QueueFull) for r in bulk)
    results.put((ok, full))


def test_producers_never_push_the_queue_past_its_limit(real_tracker: Tracker, redis_url: str) -> None:
    real_tracker.register_task_type("t", HANDLER)
    counts = _run_all(_producer, [(redis_url, real_tracker.namespace, me) for me in range(PROCS)])
    assert sum(ok for ok, _ in counts) == 50
    assert sum(full for _, full in counts) == PROCS * 120 - 50
    assert real_tracker.get_queue_size() == 50
    assert real_tracker.last_task_id() == 50


def _sweeper(results: Any, go: Any, url: str, ns: str) -> None:
    t = Tracker(redis.Redis.from_url(url), ns)
    t.get_queue_size()
    _gate(go)
    acted: list[int] = []
    for _ in range(20):
        acted += [tid for tid, _ in t.reenqueue_zombie_tasks()]
    results.put(acted)


def test_zombie_sweepers_reenqueue_each_task_exactly_once(real_tracker: Tracker, redis_url: str) -> None:
    t = Tracker(real_tracker.client, real_tracker.namespace, max_queue_size=0)
    t.register_task_type("t", HANDLER, timeout=0.3, maxrestart=5)
    ids = t.enqueue_many([("t", f"i{i}", i) for i in range(2000)])
    t.dequeue_task("doomed", count=2000)
    time.sleep(0.5)
    acted = _run_all(_sweeper, [(redis_url, t.namespace)] * 4)
    flat = Counter(i for got in acted for i in got)
    assert sorted(flat) == ids and set(flat.values()) == {1}
    assert t.get_queue_size() == 2000
    queue = live_queue(t)
    assert sorted(queue) == ids
    assert t.describe_task(ids[0])["restarts"] == 1
    assert t.get_task_status(ids[-1]) == (Status.ACCEPTED, "ACCEPTED")
    assert t.client.scard(t.keys.owned(t.keys.owner_digest(b"doomed"))) == 0


def test_a_forked_child_holds_its_own_connection(real_tracker: Tracker) -> None:
    """A call holds its thread's connection; a child forked after one must not share the
    parent's socket (the two would read each other's replies)."""
    t = real_tracker
    t.register_task_type("t", HANDLER)
    first = t.enqueue_task("t", "parent", 1)
    parent_lease = t.io._lease()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when its calls went on a connection of its own
        code = 1
        try:
            code = 0 if t.io._lease() is not parent_lease and t.enqueue_task("t", "child", 2) == first + 1 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert t.io._lease() is parent_lease
    assert t.enqueue_task("t", "parent again", 3) == first + 2
    assert t.get_queue_size() == 3
