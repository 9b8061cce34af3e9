"""SPEC §8: lists of tasks without SCAN, re-running failed tasks, pausing, the events
stream, the task handle, and cancel racing with a run's own end."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from redis_atp import Event, InvalidInput, QueueEmpty, Status, TaskInfo, TaskNotFound, TaskTypeNotFound, Tracker
from redis_atp.daemon.fleet import Fleet

from .conftest import AsyncFace, async_client, delete_namespace, live_queue, runs, slow_script_calls
from .fleetproc import start, wait_until

HANDLER = "redis_atp.tracker.dummyHandler"
S = Status


def ids(page: list[TaskInfo]) -> list[int]:
    return [t.task_id for t in page]


def _states(tracker: Tracker) -> dict[str, list[int]]:
    """A small namespace in every status, each task's last change in a known order."""
    tracker.register_task_type("a", HANDLER)
    tracker.register_task_type("b", HANDLER)
    made = {k: [] for k in ("queued", "finished", "failed", "running", "delayed")}  # type: dict[str, list[int]]
    for i in range(4):
        made["queued"].append(tracker.enqueue_task("a" if i % 2 else "b", f"q{i}", i))
    done = [tracker.enqueue_task("a", f"d{i}", i) for i in range(6)]
    for run in runs(tracker, "w", count=10):
        if run.task_id in done:
            time.sleep(0.002)  # distinct times of last change
            if run.task_id % 2:
                run.setFailure("no")
                made["failed"].append(run.task_id)
            else:
                run.setSuccess()
                made["finished"].append(run.task_id)
        else:
            run.setRunning("busy")
            made["running"].append(run.task_id)
    made["delayed"].append(tracker.enqueue_task("b", "later", 0, delay=60))
    return made


def test_lists_by_status_and_type_newest_first(tracker: Tracker) -> None:
    made = _states(tracker)
    assert ids(tracker.list_tasks(status=S.FAILED)) == made["failed"][::-1]
    assert ids(tracker.list_tasks(status=6)) == made["failed"][::-1]
    assert ids(tracker.list_tasks(status=S.FINISHED)) == made["finished"][::-1]
    assert set(ids(tracker.list_tasks(status=S.RUNNING))) == set(made["running"])
    queued = tracker.list_tasks(status=S.ACCEPTED)
    assert set(ids(queued)) == set(made["queued"] + made["delayed"]) - set(made["running"])
    everything = tracker.list_tasks()
    assert len(everything) == len(set(ids(everything))) == 11
    assert [t.updated for t in everything] == sorted((t.updated for t in everything), reverse=True)
    for t in everything:  # each row says what the task is now
        assert t.status == tracker.get_task_status(t.task_id)
        assert (t.type, t.identifier) == tracker.get_task_identifier(t.task_id)
    of_a = tracker.list_tasks("a")
    assert {t.type for t in of_a} == {"a"} and len(of_a) == 8
    assert ids(tracker.list_tasks("a", S.FAILED)) == made["failed"][::-1]
    assert tracker.list_tasks("b", S.FAILED) == []


def test_pages_follow_each_other(tracker: Tracker) -> None:
    _states(tracker)
    everything = ids(tracker.list_tasks(limit=1000))
    for size in (1, 3, 4):
        pages: list[int] = []
        before: Any = None
        while page := tracker.list_tasks(limit=size, before=before):
            assert len(page) <= size
            pages += ids(page)
            before = page[-1] if size != 3 else page[-1].task_id  # a TaskInfo or its id
        assert pages == everything


def test_bad_list_arguments_are_refused(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    for bad in ({"status": 0}, {"status": 7}, {"status": "FAILED"}, {"status": True}, {"limit": 0},
                {"limit": 1001}, {"limit": 1.5}):
        with pytest.raises(InvalidInput):
            tracker.list_tasks(**bad)
    with pytest.raises(TaskTypeNotFound):
        tracker.list_tasks("nope")
    with pytest.raises(TaskNotFound):
        tracker.list_tasks(before=12345)
    with pytest.raises(TaskNotFound):
        tracker.list_tasks(before=-1)


def test_lists_skip_tasks_that_expired_and_housekeeping_drops_them(tracker: Tracker) -> None:
    tracker.register_task_type("short", HANDLER, timeret=0.2)
    tracker.register_task_type("kept", HANDLER)
    tids = [tracker.enqueue_task("short", f"s{i}", i) for i in range(5)]
    keep = tracker.enqueue_task("kept", "k", 0)
    for run in runs(tracker, "w", count=6):
        run.setFailure("x")
    assert set(ids(tracker.list_tasks(status=S.FAILED))) == {*tids, keep}
    time.sleep(0.4)  # the short ones expired: their index entries are ghosts now
    index = tracker.keys.ended(tracker.client.hget(tracker.keys.types, "short").decode(), 6)
    assert tracker.client.zcard(index) == 5
    Fleet(tracker).housekeeping(interval=0.01)
    assert tracker.client.zcard(index) == 0
    tracker.enqueue_task("short", "later", 0)
    [run] = runs(tracker, "w")
    run.setFailure("y")
    time.sleep(0.4)
    assert ids(tracker.list_tasks(status=S.FAILED)) == [keep]  # a read drops what it meets
    assert tracker.client.zcard(index) == 0


def test_lists_under_churn_never_show_ghosts_or_wrong_statuses(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("c", HANDLER, timeret=0.05)
    t.enqueue_many([("c", f"x{i}", i) for i in range(300)])
    stop = threading.Event()

    def churn() -> None:
        other = Tracker(t.client, t.namespace)
        while not stop.is_set():
            for run in runs(other, "churn", count=5):
                (run.setSuccess if run.task_id % 3 else run.setFailure)()
            if other.get_queue_size() == 0:
                other.enqueue_many([("c", f"y{time.monotonic_ns()}-{i}", i) for i in range(50)])
    th = threading.Thread(target=churn)
    th.start()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for status in (S.ACCEPTED, S.FINISHED, S.FAILED, None):
                page = t.list_tasks("c", status, limit=50)
                assert len(set(ids(page))) == len(page)
                for row in page:
                    assert status is None or row.status[0] == status
                    assert row.type == "c"
    finally:
        stop.set()
        th.join()


def test_requeue_failed_reruns_ten_thousand_in_short_calls(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("f", HANDLER)
    t.register_task_type("g", HANDLER)
    t.set_max_queue_size(0)
    t.enqueue_many([("f", f"x{i}", i) for i in range(10_000)] + [("g", "other", 0)])
    n = 0
    while t.get_queue_size():
        for c in t.claim("w", count=500):
            t.stop_task_failure(c.task_id, "broken", token=c.token)
            n += 1
    assert n == 10_001
    before = t.client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    t.client.config_set("slowlog-log-slower-than", 20_000)  # the 10 ms goal, with room for a loaded machine
    page: list[Any] = []
    try:
        def listed_in_time() -> bool:
            t.client.slowlog_reset()
            page[:] = t.list_tasks(status=S.FAILED, limit=1000)
            assert len(page) == 1000
            return slow_script_calls(t.client) == []
        # a read may be repeated: a stall of a busy machine is not repeated three times, a slow script is
        assert any(listed_in_time() for _ in range(3))
        t.client.slowlog_reset()
        assert t.requeue_failed("f", "second try") == 10_000
        slow = slow_script_calls(t.client)
        assert slow == [], slow[:3]
    finally:
        t.client.config_set("slowlog-log-slower-than", before)
    assert t.get_queue_size() == 10_000
    assert t.list_tasks("f", S.FAILED) == [] and len(t.list_tasks("g", S.FAILED)) == 1
    info = t.describe_task(next(p.task_id for p in page if p.type == "f"))
    assert info["status"] == "ACCEPTED" and info["log"][-1][2] == "second try"
    assert t.requeue_failed() == 1 and t.requeue_failed() == 0


def test_pausing_the_namespace_stops_claims_but_not_enqueues(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    tracker.pause_queue()
    assert tracker.get_pause_state() == {"namespace": True, "types": [], "parked": 0}
    tid = tracker.enqueue_task("a", "x", 0)
    with pytest.raises(QueueEmpty):
        tracker.dequeue_task("w")
    with pytest.raises(QueueEmpty):
        tracker.dequeue_task("w", timeout=0.2)  # no wake signal while paused: it waits, it does not spin
    assert tracker.get_queue_size() == 1
    tracker.resume_queue()
    assert tracker.get_pause_state() == {"namespace": False, "types": [], "parked": 0}
    assert tracker.dequeue_task("w") == [tid]
    assert not tracker.client.exists(tracker.keys.paused)  # nothing paused: the claims' fast path again


def test_a_paused_type_is_set_aside_and_comes_back_first_in_order(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    tracker.register_task_type("b", HANDLER)
    first = [tracker.enqueue_task("a", f"a{i}", i) for i in range(3)]
    tracker.pause_queue("a")
    b1 = tracker.enqueue_task("b", "b1", 0)
    later = tracker.enqueue_task("a", "a-later", 0)
    assert tracker.dequeue_task("w", count=10) == [b1]  # a's tasks are parked, not taken
    state = tracker.get_pause_state()
    assert state["types"] == ["a"] and state["parked"] == 4
    assert tracker.get_queue_size() == 4
    with pytest.raises(QueueEmpty):
        tracker.dequeue_task("w")
    tracker.cancel_task(first[1])  # a parked task may leave
    assert tracker.get_pause_state()["parked"] == 3
    b2 = tracker.enqueue_task("b", "b2", 0)
    tracker.resume_queue("a")
    assert live_queue(tracker) == [first[0], first[2], later, b2]  # back at the head, in their order
    assert tracker.get_pause_state() == {"namespace": False, "types": [], "parked": 0}
    assert tracker.dequeue_task("w", count=10) == [first[0], first[2], later, b2]
    with pytest.raises(TaskTypeNotFound):
        tracker.pause_queue("nope")


def test_a_paused_type_keeps_its_delayed_and_requeued_tasks_aside(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    tracker.pause_queue("a")
    soon = tracker.enqueue_task("a", "soon", 0, delay=0.05)
    run = tracker.enqueue_task("a", "run", 0)
    tracker.resume_queue("a")
    [c] = tracker.claim("w")
    assert c.task_id == run
    tracker.pause_queue("a")
    tracker.reenqueue_task(run)
    time.sleep(0.1)
    with pytest.raises(QueueEmpty):
        tracker.dequeue_task("w")  # the due one was promoted into the parked list
    assert tracker.get_pause_state()["parked"] == 2
    tracker.resume_queue("a")
    assert sorted(tracker.dequeue_task("w", count=5)) == sorted([soon, run])


def test_idle_workers_take_nothing_paused_and_wake_on_resume(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count")
    start(env, redis_url, t.namespace, "-n", "1", "--threads", "2")
    wait_until(lambda: t.client.llen(t.keys.waiters) == 2, 15, "idle workers")
    t.pause_queue("count")
    held = t.enqueue_task("count", "held", {"fx": env["fx"], "i": 0})
    t.pause_queue()
    other = t.enqueue_task("count", "other", {"fx": env["fx"], "i": 1})
    time.sleep(1)
    assert t.get_task_status(held)[1] == t.get_task_status(other)[1] == "ACCEPTED"
    assert t.client.hget(env["fx"], "0") is None
    t.resume_queue()  # the type is still paused: only the namespace's pause is lifted
    t0 = time.monotonic()
    time.sleep(0.5)
    assert t.get_task_status(held)[1] == "ACCEPTED"
    t.resume_queue("count")
    assert t.wait_task(held, timeout=10)[1] == "FINISHED"
    assert t.wait_task(other, timeout=10)[1] == "FINISHED"
    assert time.monotonic() - t0 < 3  # woken by the resume, not by a time-out


def test_events_come_in_order_and_resume_from_an_id(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    assert list(tracker.events(since="0")) == []
    tid = tracker.enqueue_task("a", "x", 0, "hello")
    [run] = runs(tracker, "w")
    run.setRunning("half")
    run.setSuccess("done")
    tracker.delete_task(tid)
    evs = list(tracker.events(since="0"))
    assert [(e.task_id, e.status[1], e.message) for e in evs] == [
        (tid, "ACCEPTED", "hello"), (tid, "SCHEDULED", ""), (tid, "RUNNING", "half"), (tid, "FINISHED", "done"),
        (tid, "UNDEFINED", "deleted")]
    assert all(isinstance(e, Event) and (e.type, e.identifier) == ("a", "x") for e in evs)
    assert [e.time for e in evs] == sorted(e.time for e in evs)
    assert list(tracker.events(since=evs[2].id)) == evs[3:]
    assert list(tracker.events()) == []  # since=None: only what comes after the call
    with pytest.raises(InvalidInput):
        list(tracker.events(since="yesterday"))


def test_events_block_for_more_and_survive_a_dropped_connection(real_tracker: Tracker, redis_url: str) -> None:
    t = real_tracker
    t.register_task_type("a", HANDLER)
    got: list[Event] = []

    def later() -> None:
        time.sleep(0.3)
        t.enqueue_task("a", "late", 0)
    th = threading.Thread(target=later)
    th.start()
    t0 = time.monotonic()
    for e in t.events(block=5):
        got.append(e)
        break
    th.join()
    assert got[0].identifier == "late" and time.monotonic() - t0 < 2
    t.enqueue_task("a", "while-away", 0)
    rest = list(Tracker(redis.Redis.from_url(redis_url), t.namespace).events(since=got[0].id))
    assert [e.identifier for e in rest] == ["while-away"]  # resumed from an id, on another client

    follower = Tracker(redis.Redis.from_url(redis_url), t.namespace)
    seen: list[str] = []
    th = threading.Thread(target=lambda: seen.extend(e.identifier for e in follower.events(since=rest[0].id, block=3)))
    th.start()
    time.sleep(0.3)
    redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)  # drops the blocked read
    Tracker(redis.Redis.from_url(redis_url), t.namespace).enqueue_task("a", "after-the-drop", 0)
    th.join(10)
    assert seen == ["after-the-drop"]


def test_the_events_stream_is_capped_and_can_be_turned_off(tracker: Tracker) -> None:
    t = Tracker(tracker.client, tracker.namespace, max_events=0)
    t.register_task_type("a", HANDLER)
    t.enqueue_many([("a", f"x{i}", i) for i in range(10)])
    assert t.get_max_events() == 0 and not tracker.client.exists(t.keys.events)
    t.set_max_events(100)
    t.set_max_queue_size(0)
    for i in range(600):
        t.enqueue_task("a", f"y{i}", i)
    assert 100 <= tracker.client.xlen(t.keys.events) < 300  # trimmed near the cap (whole nodes)
    t.enqueue_many([("a", f"z{i}", i) for i in range(1000)])
    assert tracker.client.xlen(t.keys.events) < 1300  # at most a millisecond's events above it
    with pytest.raises(InvalidInput):
        t.set_max_events(-1)


def test_the_async_face_lists_pauses_and_follows_events(tracker: Tracker, request: pytest.FixtureRequest) -> None:
    face = AsyncFace(tracker, async_client(request))
    try:
        face.register_task_type("a", HANDLER)
        tid = face.enqueue_task("a", "x", 0)
        face.pause_queue("a")
        with pytest.raises(QueueEmpty):
            face.dequeue_task("w")  # the claim sets the queued task aside
        assert face.get_pause_state()["parked"] == 1
        face.resume_queue("a")
        assert ids(face.list_tasks("a")) == [tid]

        async def collect() -> list[Event]:
            return [e async for e in face.atracker.events(since="0")]
        assert [e.task_id for e in face.loop.run_until_complete(collect())] == [tid]
        handle = face.task(tid)
        assert face.loop.run_until_complete(handle.status) == (S.ACCEPTED, "ACCEPTED")
        assert face.loop.run_until_complete(handle.cancel("stop")) is True
        assert face.loop.run_until_complete(handle.wait(1)) == (S.FAILED, "FAILED")
        assert face.loop.run_until_complete(handle.log)[-1][2] == "cancelled: stop"
    finally:
        face.close()


def test_the_task_handle_reads_through_to_redis(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    handle = tracker.task(tracker.enqueue_task("a", "x", 0))
    assert handle.status == (S.ACCEPTED, "ACCEPTED") and handle.response == (None, None)
    [run] = runs(tracker, "w")
    run.storeResponse("<ok/>")
    run.setSuccess()
    assert handle.status[1] == "FINISHED"  # nothing cached
    assert handle.wait(0) == (S.FINISHED, "FINISHED") and handle.response == ("<ok/>", "text/xml")
    assert [s[1] for _, s, _ in handle.log] == ["ACCEPTED", "SCHEDULED", "FINISHED"]
    assert handle.cancel() is False
    with pytest.raises(TaskNotFound):
        _ = tracker.task(999).status


def _race(t: Tracker, tid: int, run: Any) -> dict[str, Any]:
    """Cancel task ``tid`` while its run ends it; what each side got."""
    results: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def cancel() -> None:
        barrier.wait()
        results["cancel"] = Tracker(t.client, t.namespace).cancel_task(tid)

    def finish() -> None:
        barrier.wait()
        try:
            run.setSuccess()
            results["finish"] = True
        except Exception as exc:  # noqa: BLE001 - the loser's error is the result
            results["finish"] = exc
    threads = [threading.Thread(target=cancel), threading.Thread(target=finish)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def test_cancel_racing_a_runs_end_has_one_winner(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("a", HANDLER)
    for i in range(40):
        tid = t.enqueue_task("a", f"r{i}", i)
        [run] = runs(t, "w")
        results = _race(t, tid, run)
        end = t.wait_task(tid, 1)
        if results["cancel"] is True:
            assert end[1] == "FAILED" and type(results["finish"]).__name__ == "TaskCancelled"
        else:
            assert end[1] == "FINISHED" and results["finish"] is True
        assert [e.status[1] for e in t.events(since="0") if e.task_id == tid][-1] == end[1]


def test_wait_survives_dropped_connections_and_sees_a_lost_task_as_gone(tmp_path: Any) -> None:
    from .redisserver import RedisServer

    server = RedisServer().start()
    try:
        t = Tracker(server.client(), "w")
        t.register_task_type("a", HANDLER)
        tid = t.enqueue_task("a", "x", 0)
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(Tracker.from_url(server.url, "w").wait_task(tid, 20)))
        waiter.start()
        time.sleep(0.3)
        server.client().client_kill_filter(_type="normal", skipme=True)  # a blip under the waiter
        time.sleep(0.3)
        Tracker.from_url(server.url, "w").stop_task_success(tid)  # (t's own connection was killed too)
        waiter.join(10)
        assert got == [(S.FINISHED, "FINISHED")]
        tid2 = Tracker.from_url(server.url, "w").enqueue_task("a", "y", 0)
        errors: list[BaseException] = []

        def wait2() -> None:
            try:
                Tracker.from_url(server.url, "w").wait_task(tid2, 20)
            except BaseException as exc:  # noqa: BLE001 - checked below
                errors.append(exc)
        waiter = threading.Thread(target=wait2)
        waiter.start()
        time.sleep(0.3)
        server.stop()  # a restart of a server that keeps nothing: the task is gone
        server.start()
        waiter.join(25)
        assert not waiter.is_alive() and errors and isinstance(errors[0], (TaskNotFound, redis.ConnectionError))
    finally:
        server.close()


def test_lists_on_a_sharded_namespace_merge_the_shards(client: Any, namespace: str) -> None:
    t = Tracker(client, namespace, shards=4)
    try:
        t.register_task_type("a", HANDLER)
        made = [t.enqueue_task("a", f"x{i}", i) for i in range(20)]
        while t.get_queue_size():  # a claim takes from one shard
            for run in runs(t, "w", count=20):
                time.sleep(0.002)
                run.setFailure()
        assert len({tid % 4 for tid in made}) > 1
        failed = t.list_tasks(status=S.FAILED, limit=7)
        assert [r.updated for r in failed] == sorted((r.updated for r in failed), reverse=True)
        pages = ids(failed) + ids(t.list_tasks(status=S.FAILED, limit=100, before=failed[-1].task_id))
        assert sorted(pages) == sorted(made)
        t.pause_queue()
        t.enqueue_task("a", "held", 0)
        with pytest.raises(QueueEmpty):
            t.dequeue_task("w")
        t.resume_queue()
        assert len(t.dequeue_task("w")) == 1
        assert [e.status[1] for e in t.events(since="0")].count("FAILED") == 20
        assert t.requeue_failed("a") == 20
    finally:
        delete_namespace(client, namespace)


def test_async_events_iterate(real_tracker: Tracker, redis_url: str) -> None:
    from redis_atp.aio import AsyncTracker

    real_tracker.register_task_type("a", HANDLER)
    real_tracker.enqueue_task("a", "x", 0)

    async def main() -> list[str]:
        async with AsyncTracker.from_url(redis_url, real_tracker.namespace) as at:
            return [e.identifier async for e in at.events(since="0", block=0.1)]
    assert asyncio.run(main()) == ["x"]


def test_minute_stats_are_the_growth_of_the_counters_housekeeping_samples(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    for i in range(3):
        tracker.enqueue_task("a", f"x{i}", i)
    for run in runs(tracker, "w", count=2):
        run.setSuccess()
    tracker.enqueue_task("a", "later", 0, delay=60)
    before = int(tracker.client.time()[0]) // 60
    Fleet(tracker).housekeeping(interval=0.01)  # samples this minute
    now = int(tracker.client.time()[0]) // 60
    sample = tracker.client.hgetall(tracker.keys.minute(now)) or tracker.client.hgetall(tracker.keys.minute(before))
    assert {k.decode(): int(v) for k, v in sample.items()} == {
        "finished_total": 2, "failed_total": 0, "ready": 1, "delayed": 1, "live": 0}
    keys = tracker.keys
    for _ in range(2):  # again if the minute turned meanwhile
        now = int(tracker.client.time()[0]) // 60
        tracker.client.delete(keys.minute(now), keys.minute(now - 1))
        tracker.client.hset(keys.minute(now), mapping={"finished_total": 7, "failed_total": 1, "ready": 4})
        tracker.client.hset(keys.minute(now - 2), mapping={"finished_total": 3, "failed_total": 1})
        tracker.client.hset(keys.minute(now - 3), mapping={"finished_total": 1, "failed_total": 0, "live": 2})
        stats = tracker.minute_stats(4)
        if int(stats[-1][0].timestamp()) // 60 == now:
            break
    assert [int(m.timestamp()) // 60 for m, _ in stats] == [now - 3, now - 2, now - 1, now]
    assert [f for _, f in stats] == [{"live": 2}, {"finished": 2, "failed": 1}, {}, {"finished": 4, "failed": 0,
                                                                                    "ready": 4}]
    with pytest.raises(InvalidInput):
        tracker.minute_stats(0)


def test_housekeeping_keeps_the_newest_finished_entries_listed(real_tracker: Tracker) -> None:
    from redis_atp.keys import FINISHED_LISTED

    t = real_tracker
    t.register_task_type("a", HANDLER)
    index = t.keys.ended(t.client.hget(t.keys.types, "a").decode(), Status.FINISHED)
    pipe = t.client.pipeline(transaction=False)
    for first in range(0, FINISHED_LISTED + 1500, 10_000):  # the index as a long-kept type's would be
        pipe.zadd(index, {str(i): 1_000_000 + i for i in range(first, min(first + 10_000, FINISHED_LISTED + 1500))})
    pipe.execute()
    Fleet(t).housekeeping(interval=0.01)  # one round trims at most 1,000
    assert t.client.zcard(index) == FINISHED_LISTED + 500
    time.sleep(0.02)  # past the round's lock
    Fleet(t).housekeeping(interval=0.01)
    assert t.client.zcard(index) == FINISHED_LISTED
    assert t.client.zrange(index, 0, 0) == [b"1500"]  # the oldest went


def test_the_async_face_holds_one_connection_and_replaces_one_the_server_closed(
        real_tracker: Tracker, redis_url: str) -> None:
    from redis_atp.aio import AsyncTracker
    from redis_atp.io_sync import IDLE_CHECK

    async def main() -> None:
        async with AsyncTracker.from_url(redis_url, real_tracker.namespace) as at:
            await at.register_task_type("a", HANDLER)
            for i in range(20):
                await at.enqueue_task("a", f"x{i}", i)
            assert len(at.io._idle) == 1  # one connection, taken from the pool once
            redis.Redis.from_url(redis_url).client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(IDLE_CHECK + 0.1)
            assert await at.enqueue_task("a", "after", 0) > 0  # the closed one is noticed before sending
    asyncio.run(main())


def test_listing_a_type_with_nothing_queued_does_not_walk_other_types_queue(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("a", HANDLER)
    t.register_task_type("b", HANDLER)
    t.set_max_queue_size(0)
    done = t.enqueue_task("a", "done", 0)
    t.stop_task_success(done)
    t.enqueue_many([("b", f"x{i}", i) for i in range(3000)])
    t.enqueue_many([("b", f"y{i}", i) for i in range(2000)], delay=60)
    t.client.config_resetstat()
    assert ids(t.list_tasks("a")) == [done]
    stats = t.client.info("commandstats")
    assert "cmdstat_lrange" not in stats and "cmdstat_zrevrange" not in stats  # the queue was not read
    assert stats["cmdstat_fcall"]["calls"] == 1
