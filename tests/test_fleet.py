"""The worker registry and its recovery scripts, driven directly."""

from __future__ import annotations

import time

from redis_atp import Status, Tracker
from redis_atp.fleet import Fleet, slot_ids

HANDLER = "redis_atp.tracker.dummyHandler"


def test_release_hands_back_claims_the_owner_is_not_running(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=0)
    ids = [tracker.enqueue_task("t", f"i{i}", i) for i in range(3)]
    fleet = Fleet(tracker)
    owner = slot_ids("host-1-abcd.1", 1)[0]
    runs = tracker.claim(owner, count=3)  # pretend the reply of the claim of ids[1:] was lost
    released = fleet.release(owner, keep=[ids[0]], message="claim reply lost")
    assert sorted(r[0] for r in released) == ids[1:]
    assert all(r[3] is Status.ACCEPTED for r in released)
    assert tracker.get_task_status(ids[0]) == (Status.SCHEDULED, "SCHEDULED")
    assert tracker.describe_task(ids[1])["restarts"] == 0  # not charged: the handler never ran
    runs[0].setSuccess()
    assert fleet.release(owner) == []


def test_reaping_a_named_worker_counts_restarts(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=1)
    tid = tracker.enqueue_task("t", "x", 1)
    fleet = Fleet(tracker)
    wid = "host-2-abcd.1"
    fleet.beat([(wid, 1234, 2)])
    tracker.claim(slot_ids(wid, 2)[1])
    assert fleet.reap(wid, "worker died") == [(tid, "t", "x", Status.ACCEPTED)]
    assert tracker.describe_task(tid)["restarts"] == 1
    assert fleet.workers() == []
    fleet.beat([(wid, 1234, 2)])
    tracker.claim(slot_ids(wid, 2)[0])
    assert fleet.reap(wid) == [(tid, "t", "x", Status.FAILED)]
    assert "restart limit reached" in tracker.get_task_log("t", "x")[-1][2]


def test_workers_whose_heartbeat_expired_are_reaped(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=3600)
    a, b = (tracker.enqueue_task("t", x, 1) for x in "ab")
    fleet = Fleet(tracker, grace=0.2)
    fleet.beat([("dead", 1, 1), ("alive", 2, 1)])
    tracker.claim("dead/0")
    tracker.claim("alive/0")
    assert [w.id for w in fleet.workers()] == ["alive", "dead"]
    assert {w.id: w.tasks for w in fleet.workers()} == {"alive": [b], "dead": [a]}
    time.sleep(0.3)
    Fleet(tracker, grace=10).beat([("alive", 2, 1)])
    assert fleet.reap() == [(a, "t", "a", Status.ACCEPTED)]
    assert "lost its heartbeat" in tracker.get_task_log("t", "a")[-1][2]
    assert [w.id for w in fleet.workers()] == ["alive"]
    assert tracker.get_task_status(b) == (Status.SCHEDULED, "SCHEDULED")


def test_housekeeping_runs_once_per_interval(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=0.05)
    tid = tracker.enqueue_task("t", "x", 1)
    tracker.dequeue_task("w")
    time.sleep(0.1)
    fleet = Fleet(tracker)
    first = fleet.housekeeping(interval=5)
    assert first is not None and [z[0] for z in first[1]] == [tid]
    assert fleet.housekeeping(interval=5) is None


def test_orderly_reap_does_not_charge_a_restart(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=0)
    tid = tracker.enqueue_task("t", "x", 1)
    fleet = Fleet(tracker)
    fleet.beat([("w", 1, 1)])
    tracker.claim("w/0")
    assert fleet.reap("w", "stopped; put back", restart=False) == [(tid, "t", "x", Status.ACCEPTED)]
    assert tracker.describe_task(tid)["restarts"] == 0
