"""The worker registry and its recovery scripts, driven directly."""

from __future__ import annotations

import time

from redis_atp import Status, Tracker
from redis_atp.daemon.fleet import Fleet, slot_ids
from redis_atp.daemon.protocol import Claims

from .conftest import bound, runs

HANDLER = "redis_atp.tracker.dummyHandler"


def test_release_hands_back_claims_the_owner_is_not_running(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=0)
    ids = [tracker.enqueue_task("t", f"i{i}", i) for i in range(3)]
    fleet = Fleet(tracker)
    owner = slot_ids("host-1-abcd.1", 1)[0]
    got = runs(tracker, owner, count=3)  # pretend the reply of the claim of ids[1:] was lost
    released = fleet.release(owner, keep=[ids[0]], message="claim reply lost")
    assert sorted(r[0] for r in released) == ids[1:]
    assert all(r[3] is Status.ACCEPTED for r in released)
    assert tracker.get_task_status(ids[0]) == (Status.SCHEDULED, "SCHEDULED")
    assert tracker.describe_task(ids[1])["restarts"] == 0  # not charged: the handler never ran
    got[0].setSuccess()
    assert fleet.release(owner) == []


def test_reaping_a_named_worker_counts_restarts(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=1)
    tid = tracker.enqueue_task("t", "x", 1)
    fleet = Fleet(tracker)
    wid = "host-2-abcd.1"
    fleet.beat([(wid, 1234, 2)])
    Claims(tracker).claim_started(slot_ids(wid, 2)[1])
    assert fleet.reap(wid, "worker died") == [(tid, "t", "x", Status.ACCEPTED)]
    assert tracker.describe_task(tid)["restarts"] == 1
    assert fleet.workers() == []
    fleet.beat([(wid, 1234, 2)])
    Claims(tracker).claim_started(slot_ids(wid, 2)[0])
    assert fleet.reap(wid) == [(tid, "t", "x", Status.FAILED)]
    assert "restart limit reached" in tracker.get_task_log("t", "x")[-1][2]


def test_workers_whose_heartbeat_expired_are_reaped(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=3600)
    a, b = (tracker.enqueue_task("t", x, 1) for x in "ab")
    fleet = Fleet(tracker, grace=0.2)
    fleet.beat([("dead", 1, 1), ("alive", 2, 1)])
    runs(tracker, "dead/0")
    runs(tracker, "alive/0")
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
    runs(tracker, "w/0")
    assert fleet.reap("w", "stopped; put back", restart=False) == [(tid, "t", "x", Status.ACCEPTED)]
    assert tracker.describe_task(tid)["restarts"] == 0


def test_a_waiting_owner_is_handed_the_next_task(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    assert Claims(tracker).advance("idle/0", wait=True) == (0, 0, [], None)
    tid = tracker.enqueue_task("t", "x", {"n": 1})
    assert tracker.get_queue_size() == 0  # never queued
    assert tracker.get_task_status(tid) == (Status.SCHEDULED, "SCHEDULED")  # claimed for the waiter
    [task] = Claims(tracker).take_handoff("idle/0", 1)
    assert tracker.get_task_status(tid) == (Status.RUNNING, "RUNNING")  # started by the waiter's own step
    assert (task.task_id, task.type, task.identifier) == (tid, "t", "x")
    assert tracker.serializer.unpack(task.raw_input) == {"n": 1}
    assert tracker.describe_task(tid)["owner"] == "idle/0"
    bound(tracker, task).setRunning("working")  # the hand-off's token fences this run
    ending, _, _, _ = Claims(tracker).advance("idle/0", (task, Status.FINISHED, ""))
    assert ending == 1 and tracker.get_task_status(tid) == (Status.FINISHED, "FINISHED")
    assert [s[1] for _, s, _ in tracker.get_task_log("t", "x")] == [
        "ACCEPTED", "SCHEDULED", "RUNNING", "RUNNING", "FINISHED"]


def test_waiters_are_served_longest_waiting_first(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    for owner in ("a/0", "b/0"):
        Claims(tracker).advance(owner, wait=True)
    first, second = tracker.enqueue_task("t", "1", 1), tracker.enqueue_task("t", "2", 2)
    third = tracker.enqueue_task("t", "3", 3)
    assert [t.task_id for t in Claims(tracker).take_handoff("a/0", 1)] == [first]
    assert [t.task_id for t in Claims(tracker).take_handoff("b/0", 1)] == [second]
    assert tracker.get_task_status(third)[1] == "ACCEPTED" and tracker.get_queue_size() == 1


def test_stopping_to_wait_puts_an_untaken_hand_off_back_uncharged(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=0)
    Claims(tracker).advance("w/0", wait=True)
    tid = tracker.enqueue_task("t", "x", 1)
    assert Fleet(tracker).release("w/0", message="worker stopping") == [(tid, "t", "x", Status.ACCEPTED)]
    assert tracker.describe_task(tid)["restarts"] == 0
    assert tracker.get_queue_size() == 1
    assert Claims(tracker).take_handoff("w/0", 0.05) == []
    other = tracker.enqueue_task("t", "y", 2)  # no longer waiting: queued, not handed off
    assert tracker.get_task_status(other)[1] == "ACCEPTED"


def test_reaping_a_dead_waiter_returns_its_mailbox_uncharged(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, maxrestart=1)
    fleet = Fleet(tracker)
    fleet.beat([("dead", 1, 1)])
    running = tracker.enqueue_task("t", "running", 1)
    Claims(tracker).advance("dead/0")  # claims and starts `running`
    Claims(tracker).advance("dead/0", wait=True)
    handed = tracker.enqueue_task("t", "handed", 2)  # lands in the dead thread's mailbox
    recovered = {tid: status for tid, _, _, status in fleet.reap("dead", "worker dead died")}
    assert recovered == {running: Status.ACCEPTED, handed: Status.ACCEPTED}
    assert tracker.describe_task(running)["restarts"] == 1
    assert tracker.describe_task(handed)["restarts"] == 0


def test_recovered_tasks_go_to_waiters_too(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=0.05, maxrestart=2)
    tid = tracker.enqueue_task("t", "x", 1)
    runs(tracker, "slow")
    Claims(tracker).advance("idle/0", wait=True)
    time.sleep(0.1)
    assert tracker.reap_zombies() == [(tid, "t", "x", Status.SCHEDULED)]  # re-enqueued, then handed off
    [task] = Claims(tracker).take_handoff("idle/0", 1)
    assert task.task_id == tid and tracker.describe_task(tid)["restarts"] == 1


def test_sharded_namespaces_do_not_hand_off(client: object, namespace: str) -> None:
    t = Tracker(client, namespace, shards=4)
    t.register_task_type("t", HANDLER)
    Claims(t).advance("w/0", wait=True)
    tid = t.enqueue_task("t", "x", 1)
    assert t.get_task_status(tid)[1] == "ACCEPTED"
    t.unregister_task_type("t", force=True)
