"""Regressions of issue 9 at the protocol level: ownership, bad numbers, timeouts that
change, bounded housekeeping, O(1) queue removal, texts that cannot be encoded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_atp import InvalidInput, StaleTask, Status, Tracker
from redis_atp.daemon.fleet import Fleet
from redis_atp.daemon.protocol import Claims
from redis_atp.keys import Keys

from .conftest import delete_namespace, live_queue, runs, slow_script_calls
from .redisserver import RedisServer

HANDLER = "redis_atp.tracker.dummyHandler"


#: SLOWLOG threshold (µs). The bounded calls take 1-5 ms on this machine (``make bench``);
#: twice the 10 ms goal keeps a busy CI machine's scheduling from failing the test,
#: while an unbounded call (hundreds of ms at these sizes) still does.
SLOW_US = 20_000


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisServer]:
    """A server of this module's own, for SLOWLOG and config changes."""
    server = RedisServer("--slowlog-log-slower-than", str(SLOW_US), "--slowlog-max-len", "1000").start()
    yield server
    server.close()


@pytest.fixture
def big(own_server: RedisServer, namespace: str) -> Iterator[Tracker]:
    client = own_server.client()
    client.slowlog_reset()
    t = Tracker(client, namespace, max_queue_size=0)
    yield t
    delete_namespace(client, namespace)
    client.close()


def slow_scripts(tracker: Tracker) -> list[Any]:
    """Script calls Redis logged as taking over ``SLOW_US``."""
    return slow_script_calls(tracker.client)


# ---------------------------------------------------------------- 1. no run without ownership
def test_advance_only_returns_tasks_it_started(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tracker.enqueue_many([("t", str(i), i) for i in range(3)])
    _, queued, [task], _ = Claims(tracker).advance("w/0")
    assert queued == 2
    assert tracker.get_task_status(task.task_id) == (Status.RUNNING, "RUNNING")
    assert tracker.describe_task(task.task_id)["owner"] == "w/0"


@pytest.mark.parametrize("meanwhile", ["delete", "cancel", "requeue", "reclaimed", "force-unregister"])
def test_a_hand_off_whose_claim_is_gone_is_never_started(tracker: Tracker, meanwhile: str) -> None:
    tracker.register_task_type("t", HANDLER, timeout=3600)
    assert Claims(tracker).advance("idle/0", wait=True).tasks == []
    tid = tracker.enqueue_task("t", "x", 1)  # handed to idle/0: SCHEDULED in its name, id in its mailbox
    assert tracker.get_task_status(tid)[1] == "SCHEDULED"
    if meanwhile == "delete":
        tracker.delete_task(tid)
    elif meanwhile == "cancel":
        tracker.stop_task_failure(tid, "cancelled by an operator")
    elif meanwhile == "requeue":
        tracker.reenqueue_task(tid, "operator re-queue")
    elif meanwhile == "reclaimed":
        tracker.register_task_type("t", HANDLER, timeout=0.001)
        time.sleep(0.01)
        assert [z[0] for z in tracker.reap_zombies()] == [tid]  # back to the queue
        tracker.register_task_type("t", HANDLER, timeout=3600)
        [other] = runs(tracker, "other")
        assert other.task_id == tid
    else:
        tracker.unregister_task_type("t", force=True)
    assert Claims(tracker).take_handoff("idle/0", 0.01) == []
    assert tracker.client.llen(tracker.keys.mailbox(Keys.owner_digest(b"idle/0"))) == 0


def test_advance_starts_the_handed_task_before_claiming_from_the_queue(tracker: Tracker) -> None:
    """A slot whose wait timed out just before a hand-off: its next step takes that task
    (it would otherwise sit SCHEDULED in the mailbox while the slot runs another)."""
    tracker.register_task_type("t", HANDLER)
    Claims(tracker).advance("w/0", wait=True)
    handed = tracker.enqueue_task("t", "handed", 1)
    queued = tracker.enqueue_task("t", "queued", 2)  # no waiter left: queued
    _, left, [task], _ = Claims(tracker).advance("w/0")
    assert task.task_id == handed and left == 1
    assert tracker.get_task_status(handed)[1] == "RUNNING"
    assert tracker.get_task_status(queued)[1] == "ACCEPTED"


def test_a_claiming_owner_stops_waiting(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    Claims(tracker).advance("w/0", wait=True)
    tracker.enqueue_task("t", "1", 1)  # handed to w/0
    Claims(tracker).advance("w/0")  # starts it; w/0 is busy now
    later = tracker.enqueue_task("t", "2", 2)
    assert tracker.get_task_status(later)[1] == "ACCEPTED"  # not handed to a busy owner


# ---------------------------------------------------------------- 4, 5. idempotent run calls
def test_a_run_ending_its_task_again_is_a_no_op(tracker: Tracker) -> None:
    """A retry after a lost reply: the token makes the repeat harmless."""
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w")
    run.setSuccess("done")
    run.setSuccess("done")
    log = tracker.get_task_log("t", "x")
    assert [s[1] for _, s, _ in log].count("FINISHED") == 1
    assert tracker.get_task_type("t").counts["finished_total"] == 1
    assert tracker.get_task_status(tid)[1] == "FINISHED"


# ---------------------------------------------------------------- 6, 7. numbers
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300, 10**12])
def test_non_finite_or_absurd_seconds_are_refused(tracker: Tracker, value: float) -> None:
    for kwargs in ({"timeout": value}, {"timeret": value}):
        with pytest.raises(InvalidInput):
            tracker.register_task_type("t", HANDLER, **kwargs)  # type: ignore[arg-type]
    assert tracker.list_task_types() == []


def test_the_register_script_checks_its_numbers_before_writing(tracker: Tracker) -> None:
    import redis

    with pytest.raises(redis.ResponseError, match="invalid number"):
        tracker.io.execute(tracker.ns.call("register_type", "t", HANDLER, "inf", "-1", "2"))
    assert tracker.list_task_types() == []


def test_a_hand_written_bad_timeret_never_breaks_a_task(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=60)
    number = tracker.client.hget(tracker.keys.types, "t").decode()
    tracker.client.hset(tracker.keys.type(number), "timeret", "inf")  # written by hand, not by us
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w")
    run.setSuccess()
    assert tracker.get_task_status(tid)[1] == "FINISHED"
    assert tracker.describe_task(tid)["ttl_ms"] is None  # unreadable: kept, as timeret <= 0 would
    assert tracker.client.scard(tracker.keys.owned(Keys.owner_digest(b"w"))) == 0


def test_a_sub_millisecond_timeret_leaves_no_ghost(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeret=0.0004)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w")
    run.setSuccess()
    time.sleep(0.05)
    key = tracker.shard_keys[0].task(Keys.task_digest(b"t", b"x"))
    assert not tracker.client.exists(key)
    again = tracker.enqueue_task("t", "x", 2)  # same identifier: a clean new task
    assert again != tid and tracker.get_task_status(again)[1] == "ACCEPTED"
    assert [s[1] for _, s, _ in tracker.get_task_log("t", "x")] == ["ACCEPTED"]


# ---------------------------------------------------------------- 8. the current timeout governs
def test_a_timeout_turned_off_stops_time_outs_of_live_tasks(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=0.05)
    tracker.enqueue_task("t", "x", 1)
    runs(tracker, "w")
    tracker.register_task_type("t", HANDLER, timeout=0)
    time.sleep(0.1)
    assert tracker.reap_zombies() == [] and tracker.count_overdue() == 0


def test_a_timeout_turned_on_reaches_live_tasks(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=0)
    tid = tracker.enqueue_task("t", "x", 1)
    runs(tracker, "w")
    tracker.register_task_type("t", HANDLER, timeout=0.05)
    time.sleep(0.1)
    assert tracker.count_overdue() == 1
    assert tracker.reap_zombies() == [(tid, "t", "x", Status.ACCEPTED)]


# ---------------------------------------------------------------- 9. bounded housekeeping
def test_a_zombie_backlog_is_swept_in_bounded_script_calls_and_rounds(big: Tracker) -> None:
    t = big
    t.register_task_type("t", HANDLER, timeout=0.05, maxrestart=5)
    t.enqueue_many([("t", str(i), None) for i in range(20_000)])
    t.dequeue_task("doomed", count=20_000)
    time.sleep(0.1)
    t.register_task_type("t", HANDLER, timeout=3600, maxrestart=5)
    t.register_task_type("t", HANDLER, timeout=0.05, maxrestart=5)
    t.client.slowlog_reset()
    first = Fleet(t).housekeeping(interval=0.001)
    assert first is not None and 0 < len(first[1]) <= 2_200  # one round: bounded, the rest wait
    assert len(t.reap_zombies()) + len(first[1]) == 20_000
    assert slow_scripts(t) == []


# ---------------------------------------------------------------- 10. reaping a worker that came back
def test_reaping_a_worker_that_renewed_its_heartbeat_keeps_it_registered(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    fleet = Fleet(tracker)
    fleet.beat([("w", 1, 1)])
    runs(tracker, "w/0")
    heartbeat = tracker.keys.worker(Keys.owner_digest(b"w"))
    # the reaper saw the heartbeat missing; the worker renewed it before the release ran
    assert fleet._release(Keys.owner_digest(b"w/0"), "lost", True, guard=heartbeat, deregister="w") is None
    assert [w.id for w in fleet.workers()] == ["w"] and tracker.client.exists(heartbeat)
    assert tracker.get_task_status(tid)[1] == "SCHEDULED"


# ---------------------------------------------------------------- 11. O(1) removal from the queue
def test_removing_from_a_long_queue_is_cheap_and_exact(big: Tracker) -> None:
    t = big
    t.register_task_type("a", HANDLER)
    t.register_task_type("b", HANDLER)
    n = 50_000
    t.enqueue_many([("a" if i % 2 else "b", str(i), None) for i in range(n)], chunk=1000)
    t.client.slowlog_reset()
    middle = t.get_task_id("a", str(n // 2 + 1))
    t.stop_task_failure(middle, "cancelled")
    t.delete_task(t.get_task_id("b", str(n // 2)))
    t.unregister_task_type("b", force=True)  # every other task of the queue
    assert slow_scripts(t) == []
    assert t.get_queue_size() == n // 2 - 1
    t.reenqueue_task(middle, "back")  # its old entry is left behind; it runs once, last
    ids = t.dequeue_task("w", count=n)
    assert len(ids) == n // 2 and ids[-1] == middle and len(set(ids)) == len(ids)
    assert t.get_queue_size() == 0 and not t.client.exists(t.keys.queue)
    assert slow_scripts(t) == []


def test_claims_skip_entries_left_behind(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    ids = [tracker.enqueue_task("t", str(i), i) for i in range(4)]
    tracker.stop_task_failure(ids[0])
    tracker.reenqueue_task(ids[0])
    tracker.delete_task(ids[1])
    assert live_queue(tracker) == [ids[2], ids[3], ids[0]] or tracker.shards > 1
    assert tracker.get_queue_size() == 3
    assert sorted(tracker.dequeue_task("w", count=10)) == sorted([ids[0], ids[2], ids[3]])


# ---------------------------------------------------------------- 12. response after the run's own end
def test_store_response_after_the_run_ended_its_task(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w")
    run.setSuccess()
    run.storeResponse("<ok/>")  # the seed's WCS-T handler does this
    assert tracker.get_task_response("t", "x") == ("<ok/>", "text/xml")
    tracker.reenqueue_task(tid)
    with pytest.raises(StaleTask):
        run.storeResponse("late")  # the task was re-queued: that run is over
    [runs(tracker, "w2")[0]]
    with pytest.raises(StaleTask):
        run.storeResponse("late")


def test_a_recovered_run_cannot_end_or_answer_its_task(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER, timeout=0.001, maxrestart=0)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w")
    time.sleep(0.01)
    assert tracker.reap_zombies() == [(tid, "t", "x", Status.FAILED)]  # restart limit: FAILED
    with pytest.raises(StaleTask):
        run.setSuccess()
    with pytest.raises(StaleTask):
        run.storeResponse("late")


# ---------------------------------------------------------------- 14. texts, counters, log caps
def test_a_message_that_cannot_be_encoded_is_invalid_input(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    with pytest.raises(InvalidInput):
        tracker.enqueue_task("t", "x", 1, "bad \udcff name")
    tid = tracker.enqueue_task("t", "x", 1)
    with pytest.raises(InvalidInput):
        tracker.stop_task_failure(tid, "bad \udcff name")
    with pytest.raises(InvalidInput):
        tracker.stop_task_failure(tid, "x" * 70_000)
    assert tracker.get_task_status(tid)[1] == "ACCEPTED"


def test_re_stamping_an_ended_task_is_not_counted_again(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    tracker.stop_task_success(tid)
    tracker.stop_task_success(tid, "again")
    tracker.stop_task_failure(tid, "changed my mind")
    counts = tracker.get_task_type("t").counts
    assert (counts["finished_total"], counts["failed_total"]) == (1, 0)
    tracker.reenqueue_task(tid)
    tracker.stop_task_failure(tid)  # a new run's end counts
    assert tracker.get_task_type("t").counts["failed_total"] == 1


def test_a_smaller_log_cap_trims_records_written_under_a_larger_one(client: Any, namespace: str) -> None:
    wide, narrow = Tracker(client, namespace, max_log_records=50), Tracker(client, namespace, max_log_records=5)
    wide.register_task_type("t", HANDLER)
    tid = wide.enqueue_task("t", "x", 1)
    wide.dequeue_task("w")
    for i in range(30):
        wide.resume_task(tid, f"wide {i}")
    narrow.resume_task(tid, "narrow")
    log = narrow.get_task_log("t", "x")
    assert len(log) == 5 and log[-1][2] == "narrow"
    delete_namespace(client, namespace)
