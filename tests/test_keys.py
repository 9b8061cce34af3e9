"""The key layout: one prefix per namespace, one cluster slot, no user text in keys."""

from __future__ import annotations

import time

from redis.crc import key_slot

from redis_atp import Tracker
from redis_atp.keys import IDS_PER_BUCKET, Keys

from .conftest import namespace_keys, runs

HANDLER = "redis_atp.tracker.dummyHandler"


def test_full_lifecycle_keys_share_one_slot_and_prefix(tracker: Tracker) -> None:
    tracker = Tracker(tracker.client, tracker.namespace, max_queue_size=0)
    tracker.register_task_type("t", HANDLER, timeout=0.1, timeret=60, maxrestart=1)
    ids = [tracker.enqueue_task("t", f"task {i}", i) for i in range(150)]  # two id buckets
    got = runs(tracker, "worker/1", count=5)
    tracker.start_task(ids[0], token=got[0].token)
    got[0].setPaused()
    got[1].storeResponse(b"\x00")
    got[1].setSuccess()
    got[2].setFailure()
    mid = namespace_keys(tracker.client, tracker.namespace)
    time.sleep(0.15)
    tracker.reenqueue_zombie_tasks()
    tracker.delete_task(ids[10])
    tracker.delete_retired_tasks()
    keys = sorted(set(mid + namespace_keys(tracker.client, tracker.namespace)))
    prefix = f"atp:{{{tracker.namespace}}}:".encode()
    assert len(keys) > 150 and all(k.startswith(prefix) for k in keys)
    assert {key_slot(k) for k in keys} == {key_slot(prefix + b"queue")}
    kinds = {k[len(prefix):].split(b":")[0] for k in keys}
    assert kinds == {b"seq", b"config", b"queue", b"queued", b"wake", b"types", b"typeseq", b"type", b"t", b"ids",
                     b"owned", b"events"}


def test_namespaces_do_not_see_each_other(client: object, namespace: str) -> None:
    a, b = Tracker(client, namespace + "a"), Tracker(client, namespace + "b")
    try:
        for t in (a, b):
            t.register_task_type("t", HANDLER)
        tid = a.enqueue_task("t", "x", 1)
        assert b.get_queue_size() == 0
        b.enqueue_task("t", "x", 2)  # same (type, identifier), other namespace
        assert a.get_task_input(tid) == 1
        assert b.dequeue_task("w") == [tid]  # ids are per namespace: both start at 1
        assert a.get_queue_size() == 1
    finally:
        for t in (a, b):
            t.unregister_task_type("t", force=True)


def test_key_builders() -> None:
    k = Keys("orders")
    assert k.prefix == "atp:{orders}:"
    assert k.ids_bucket(12345) == f"atp:{{orders}}:ids:{12345 // IDS_PER_BUCKET}" == "atp:{orders}:ids:123"
    d = Keys.task_digest(b"render", b"job 1")
    assert len(d) == 12 and d == Keys.task_digest(b"render", b"job 1")
    assert d != Keys.task_digest(b"render", b"job 2") != Keys.task_digest(b"rende", b"rjob 1")
    assert k.task(d).startswith("atp:{orders}:t:")
