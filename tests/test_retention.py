"""Retention by TTL alone: after `timeret` every key of a finished task is gone;
with `timeret <= 0` nothing of it carries a TTL."""

from __future__ import annotations

import time

from redis_atp import Tracker

from .conftest import namespace_keys, runs

HANDLER = "redis_atp.tracker.dummyHandler"


def _task_keys(tracker: Tracker) -> set[bytes]:
    kinds = (b"t", b"ids", b"owned")
    prefix = f"atp:{{{tracker.namespace}}}:".encode()
    return {k for k in namespace_keys(tracker.client, tracker.namespace)
            if k[len(prefix):].split(b":")[0] in kinds}


def test_every_key_of_a_finished_task_expires(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=0.3)
    tid = tracker.enqueue_task("t", "x", {"big": "x" * 500})
    [run] = runs(tracker, "w")
    run.storeResponse("r" * 1000, "text/plain")
    run.setSuccess()
    keys = _task_keys(tracker)
    assert keys and all(0 < tracker.client.pttl(k) <= 300 for k in keys)
    time.sleep(0.45)
    assert _task_keys(tracker) == set()
    assert tracker.get_queue_size() == 0
    assert tracker.client.zcard(tracker.keys.live(1)) == 0
    assert tracker.get_task_type("t").counts["finished_total"] == 1
    assert tid == tracker.last_task_id()


def test_nothing_expires_when_kept_forever(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=-1)
    tracker.register_task_type("z", HANDLER, timeret=0)
    for t in ("t", "z"):
        tracker.enqueue_task(t, "x", 1)
        [run] = runs(tracker, "w")
        run.setFailure()
    assert all(tracker.client.pttl(k) == -1 for k in namespace_keys(tracker.client, tracker.namespace)
               if b":minute:" not in k)  # the per-minute counts of runs expire after 48 hours


def test_live_tasks_pin_their_id_bucket(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=0.2)
    done = tracker.enqueue_task("t", "done", 1)
    live = tracker.enqueue_task("t", "live", 2)
    tracker.stop_task_success(done)
    time.sleep(0.3)
    assert tracker.get_task_status(live)[1] == "ACCEPTED"
    bucket = tracker.keys.ids_bucket(live)
    assert tracker.client.pttl(bucket) == -1
    tracker.stop_task_success(live)
    assert 0 < tracker.client.pttl(bucket) <= 200
    time.sleep(0.3)
    assert _task_keys(tracker) == set()


def test_re_running_a_finished_task_clears_its_ttls(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=0.3)
    tid = tracker.enqueue_task("t", "x", 1)
    tracker.stop_task_success(tid)
    tracker.reenqueue_task(tid, "again")
    time.sleep(0.4)
    assert tracker.get_task_status(tid)[1] == "ACCEPTED"
    assert all(tracker.client.pttl(k) == -1 for k in _task_keys(tracker))


def test_longest_member_sets_the_bucket_ttl(tracker: Tracker) -> None:
    tracker.register_task_type("short", HANDLER, timeret=0.2)
    tracker.register_task_type("long", HANDLER, timeret=60)
    a = tracker.enqueue_task("long", "a", 1)
    b = tracker.enqueue_task("short", "b", 1)
    tracker.stop_task_success(a)
    tracker.stop_task_success(b)
    time.sleep(0.3)
    assert tracker.get_task_status(a)[1] == "FINISHED"
    assert tracker.client.pttl(tracker.keys.ids_bucket(a)) > 50_000
