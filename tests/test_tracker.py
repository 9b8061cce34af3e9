"""SPEC §4, call by call, through both faces (Tracker and the seed's module API),
on a real Redis and on fakeredis."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

import redis_atp.tracker as seed
from redis_atp import (
    DuplicateTask,
    InvalidInput,
    InvalidTransition,
    QueueEmpty,
    QueueFull,
    Status,
    TaskNotFound,
    TaskStatus,
    TaskTypeInUse,
    TaskTypeNotFound,
    Tracker,
    defaults,
)

from .conftest import AsyncFace, async_client, delete_namespace, live_queue, namespace_keys


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


class SeedFace:
    """The seed's module API, addressed by the Tracker's snake_case names."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        seed.configure(client=tracker.client, namespace=tracker.namespace,
                       shards=tracker.shards)

    def __getattr__(self, name: str) -> Any:
        return getattr(seed, _camel(name))


@pytest.fixture(params=[1, 8], ids=["shards1", "shards8"])
def tracker(request: pytest.FixtureRequest, client: Any, namespace: str) -> Iterator[Tracker]:
    """The conformance suite runs on one hash tag and on a namespace sharded over eight."""
    t = Tracker(client, namespace, shards=request.param)
    yield t
    delete_namespace(client, namespace)


def queue_ids(tracker: Tracker) -> list[int]:
    """The queue's task ids, shard after shard (FIFO holds within a shard)."""
    return [tid for shard in range(tracker.shards) for tid in live_queue(tracker, shard)]


@pytest.fixture(params=["Tracker", "AsyncTracker", "module"])
def api(request: pytest.FixtureRequest, tracker: Tracker) -> Iterator[Any]:
    """Every face of the API on the same namespace: sync, asyncio, the seed's module."""
    if request.param == "Tracker":
        yield tracker
    elif request.param == "AsyncTracker":
        face = AsyncFace(tracker, async_client(request))
        yield face
        face.close()
    else:
        yield SeedFace(tracker)
        defaults._default = None


HANDLER = "redis_atp.tracker.dummyHandler"


def test_every_seed_function_has_a_snake_case_twin() -> None:
    seed_functions = [
        "registerTaskType", "unregisterTaskType", "getQueueSize", "getMaxQueueSize", "getTaskInfo",
        "getTaskIdentifier", "getTaskStatus", "getTaskStatusByIdentifier", "deleteTask",
        "deleteTaskByIdentifier", "enqueueTask", "reenqueueTask", "dequeueTask", "startTask",
        "stopTaskSuccessIfNotFinished", "stopTaskSuccess", "stopTaskFailure", "pauseTask", "resumeTask",
        "setTaskResponse", "getTaskResponse", "getTaskLog", "reenqueueZombieTasks", "deleteRetiredTasks",
    ]
    for name in seed_functions:
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        assert callable(getattr(seed, name)), name
        assert callable(getattr(Tracker, snake)), snake
        assert _camel(snake) == name


def test_seed_defaults_are_kept() -> None:
    import inspect

    sig = inspect.signature(seed.registerTaskType)
    positional = [p for p in sig.parameters.values() if p.kind is not p.KEYWORD_ONLY]
    assert [(p.name, p.default) for p in positional[2:]] == [("timeout", 3600), ("timeret", -1), ("maxrestart", 2)]
    assert inspect.signature(seed.setTaskResponse).parameters["mimeType"].default == "text/xml"
    assert inspect.signature(seed.enqueueTask).parameters["message"].default == ""
    assert inspect.signature(seed.unregisterTaskType).parameters["force"].default is False
    assert seed.MAX_QUEUE_SIZE == 64


def test_register_and_update_type(api: Any, tracker: Tracker) -> None:
    api.register_task_type("render", HANDLER)
    t = tracker.get_task_type("render")
    assert (t.handler, t.timeout, t.timeret, t.maxrestart) == (HANDLER, 3600, -1, 2)
    api.register_task_type("render", seed.dummyHandler, 10, 20, -5)
    t = tracker.get_task_type("render")
    assert (t.handler, t.timeout, t.timeret, t.maxrestart) == (HANDLER, 10, 20, 0)
    assert [x.name for x in tracker.list_task_types()] == ["render"]


@pytest.mark.parametrize("handler", ["", "nodots", "a..b", "1a.b", 4.2, lambda s, i: None])
def test_register_rejects_bad_handler(api: Any, tracker: Tracker, handler: Any) -> None:
    with pytest.raises(InvalidInput):
        api.register_task_type("render", handler)
    assert namespace_keys(tracker.client, tracker.namespace) == []


def test_unregister_refuses_while_tasks_exist_and_force_deletes_them(api: Any, tracker: Tracker) -> None:
    api.register_task_type("a", HANDLER)
    api.register_task_type("b", HANDLER)
    queued = api.enqueue_task("a", "q", 1)
    taken = api.enqueue_task("a", "t", 2)
    done = api.enqueue_task("a", "d", 3)
    while api.get_queue_size():
        api.dequeue_task("srv", count=3)
    api.stop_task_success(done)
    api.reenqueue_task(queued, "back in the queue")
    keep = api.enqueue_task("b", "keep", 4)
    with pytest.raises(TaskTypeInUse):
        api.unregister_task_type("a")
    api.unregister_task_type("a", True)
    for tid in (queued, taken, done):
        with pytest.raises(TaskNotFound):
            api.get_task_status(tid)
    with pytest.raises(TaskTypeNotFound):
        tracker.get_task_type("a")
    assert api.get_task_status(keep) == (Status.ACCEPTED, "ACCEPTED")
    assert queue_ids(tracker) == [keep]
    assert tracker.count_overdue() == 0 and all(s["live"] == 0 for s in tracker.shard_stats())
    with pytest.raises(TaskTypeNotFound):
        api.unregister_task_type("a")


def test_unregister_refuses_for_finished_tasks_only(api: Any, tracker: Tracker) -> None:
    api.register_task_type("a", HANDLER)
    tid = api.enqueue_task("a", "x", None)
    api.stop_task_failure(tid, "cancelled")
    with pytest.raises(TaskTypeInUse):
        api.unregister_task_type("a")
    api.delete_task(tid)
    api.unregister_task_type("a")
    assert tracker.list_task_types() == []


def test_enqueue_returns_unique_ids_never_reused(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    first = api.enqueue_task("t", "x", {"k": [1, 2]}, "hello")
    assert isinstance(first, int)
    api.delete_task(first)
    second = api.enqueue_task("t", "x", {"k": [1, 2]})
    assert second > first
    assert api.get_task_info(second) == ("t", "x", Status.ACCEPTED, "ACCEPTED")


def test_queue_limit_and_sizes(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER)
    assert api.get_max_queue_size() == 64
    accepted = refused = 0
    for i in range(200):
        try:
            api.enqueue_task("t", f"i{i}", i)
            accepted += 1
        except QueueFull:
            refused += 1
            with pytest.raises(TaskNotFound):
                tracker.get_task_id("t", f"i{i}")
    assert api.get_queue_size() == accepted
    if tracker.shards == 1:
        assert accepted == 64
    else:  # each shard holds at most ceil(64 / shards); the first full shard refuses
        assert [s["queue"] for s in tracker.shard_stats()] == [8] * 8 and accepted == 64
    assert refused == 200 - accepted
    [taken] = api.dequeue_task("srv")
    assert api.get_queue_size() == accepted - 1
    t, ident = tracker.get_task_identifier(taken)
    api.delete_task(taken)
    api.enqueue_task(t, ident, 0)  # the freed place on that shard takes it again


def test_enqueue_refusals_write_nothing(api: Any, tracker: Tracker) -> None:
    with pytest.raises(TaskTypeNotFound):
        api.enqueue_task("nope", "x", 1)
    assert namespace_keys(tracker.client, tracker.namespace) == []
    api.register_task_type("t", HANDLER)
    api.enqueue_task("t", "x", 1)
    before = {k: tracker.client.dump(k) for k in namespace_keys(tracker.client, tracker.namespace)}
    with pytest.raises(DuplicateTask):
        api.enqueue_task("t", "x", 2)
    with pytest.raises(InvalidInput):
        api.enqueue_task("t", "y", object())
    with pytest.raises(InvalidInput):
        api.enqueue_task("t", "y", 1, 42)
    after = {k: tracker.client.dump(k) for k in namespace_keys(tracker.client, tracker.namespace)}
    assert after == before


def test_dequeue_is_fifo_and_sets_owner_and_deadline(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeout=30)
    ids = [api.enqueue_task("t", f"i{i}", i) for i in range(5)]
    taken = api.dequeue_task("srv-1")
    assert len(taken) == 1
    more = api.dequeue_task("srv-2", "took", count=3)
    assert 1 <= len(more) <= 3
    assert api.get_task_status(more[0]) == (Status.SCHEDULED, "SCHEDULED")
    info = tracker.describe_task(more[0])
    assert info["owner"] == "srv-2"
    assert info["deadline_ms"] == pytest.approx(time.time() * 1000 + 30_000, abs=5_000)
    while len(taken) + len(more) < 5:
        more += api.dequeue_task("srv-1", count=10)
    got = taken + more
    assert sorted(got) == sorted(ids)
    if tracker.shards == 1:
        assert got == ids  # FIFO; sharded, FIFO holds within each shard
    with pytest.raises(QueueEmpty):
        api.dequeue_task("srv-1")


def test_start_returns_the_task_and_marks_it_running(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", {"n": b"\x00bin", "l": [1.5, None, True]})
    api.dequeue_task("srv")
    assert api.start_task(tid, "go") == ("t", "x", HANDLER, {"n": b"\x00bin", "l": [1.5, None, True]})
    assert api.get_task_status(tid) == (Status.RUNNING, "RUNNING")
    api.stop_task_success(tid)
    with pytest.raises(InvalidTransition):
        api.start_task(tid)  # finished


def test_start_of_a_queued_task_takes_it_off_the_queue(api: Any, tracker: Tracker) -> None:
    """SPEC 5.1: the seed's daemon starts tasks from a local queue; a zombie sweep may have
    re-enqueued one meanwhile. Started by hand, it runs once, never again from the queue."""
    api.register_task_type("t", HANDLER, timeout=3600)
    tid = api.enqueue_task("t", "x", 1)
    other = api.enqueue_task("t", "y", 2)
    assert api.start_task(tid)[1] == "x"
    assert api.get_task_status(tid) == (Status.RUNNING, "RUNNING")
    assert api.get_queue_size() == 1
    assert api.dequeue_task("srv", count=5) == [other]
    with pytest.raises(QueueEmpty):
        api.dequeue_task("srv")


def test_status_changes_and_log(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", 1, "enq")
    api.dequeue_task("srv", "deq")
    api.start_task(tid, "start")
    api.pause_task(tid, "pause")
    assert api.get_task_status(tid) == (Status.PAUSED, "PAUSED")
    api.resume_task(tid, "resume")
    assert api.stop_task_success_if_not_finished(tid, "ok") in (True, None)
    assert api.get_task_status_by_identifier("t", "x") == (Status.FINISHED, "FINISHED")
    api.stop_task_success_if_not_finished(tid, "again")  # no-op once finished
    with pytest.raises(InvalidTransition):
        api.pause_task(tid)
    log = api.get_task_log("t", "x")
    assert [(s, m) for _, s, m in log] == [
        ((1, "ACCEPTED"), "enq"), ((2, "SCHEDULED"), "deq"), ((3, "RUNNING"), "start"),
        ((4, "PAUSED"), "pause"), ((3, "RUNNING"), "resume"), ((5, "FINISHED"), "ok")]
    times = [t for t, _, _ in log]
    assert all(isinstance(t, datetime) and t.tzinfo == timezone.utc for t in times)
    assert times == sorted(times) and abs(times[0].timestamp() - time.time()) < 60
    api.stop_task_failure(tid, "operator says no")
    assert api.get_task_status(tid) == (Status.FAILED, "FAILED")


def test_stop_failure_cancels_a_queued_task(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", 1)
    api.stop_task_failure(tid, "cancelled")
    assert api.get_queue_size() == 0
    with pytest.raises(QueueEmpty):
        api.dequeue_task("srv")


def test_response_str_bytes_and_replace(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", 1)
    assert api.get_task_response("t", "x") == (None, None)
    api.set_task_response(tid, "<a>é</a>")
    assert api.get_task_response("t", "x") == ("<a>é</a>", "text/xml")
    api.set_task_response(tid, b"\x89PNG\x00", "image/png")
    assert api.get_task_response("t", "x") == (b"\x89PNG\x00", "image/png")


def test_info_identifier_status(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", 1)
    assert api.get_task_info(tid) == ("t", "x", 1, "ACCEPTED")
    assert api.get_task_identifier(tid) == ("t", "x")
    assert api.get_task_status(tid) == (1, "ACCEPTED")
    code, name = api.get_task_status(tid)
    assert type(code) is Status


def test_reenqueue(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeret=100)
    a = api.enqueue_task("t", "a", 1)
    b = api.enqueue_task("t", "b", 2)
    api.reenqueue_task(a, "already queued")  # a queued task keeps its place: never queued twice
    assert sorted(queue_ids(tracker)) == sorted([a, b])
    assert api.get_task_log("t", "a")[-1][1:] == ((1, "ACCEPTED"), "already queued")
    while api.get_queue_size():
        api.dequeue_task("srv", count=2)
    api.stop_task_success(a)
    key = tracker.describe_task(a)["key"]
    assert tracker.client.ttl(key) > 0
    api.reenqueue_task(a, "re-run")
    assert api.get_task_status(a) == (Status.ACCEPTED, "ACCEPTED")
    assert tracker.client.ttl(key) == -1
    assert api.dequeue_task("srv") == [a]  # b finished; a is the only task queued


def test_reenqueue_ignores_the_limit(tracker: Tracker) -> None:
    small = Tracker(tracker.client, tracker.namespace, max_queue_size=1, shards=tracker.shards)
    small.register_task_type("t", HANDLER)
    a = small.enqueue_task("t", "a", 1)
    small.dequeue_task("srv")
    small.enqueue_task("t", "b", 2)
    small.reenqueue_task(a)
    assert small.get_queue_size() == 2


def test_delete_removes_every_key(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeout=60)
    base = set(namespace_keys(tracker.client, tracker.namespace))
    a = api.enqueue_task("t", "a", 1)
    b = api.enqueue_task("t", "b", 2)
    api.dequeue_task("srv")
    api.set_task_response(a, "r")
    api.delete_task(a)
    api.delete_task_by_identifier("t", "b")
    for tid in (a, b):
        with pytest.raises(TaskNotFound):
            api.get_task_info(tid)
    left = set(namespace_keys(tracker.client, tracker.namespace)) - base
    left = {k for k in left if b":minute:" not in k}  # per-minute counts of runs: they expire by themselves
    assert {k.decode().rsplit(":", 1)[-1] for k in left} <= {"seq", "config", "events"}
    with pytest.raises(TaskNotFound):
        api.delete_task(a)
    with pytest.raises(TaskNotFound):
        api.delete_task_by_identifier("t", "b")
    assert tracker.get_task_type("t").counts["accepted"] == 0
    assert tracker.get_task_type("t").counts["scheduled"] == 0


def test_zombies_are_reenqueued_then_failed(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeout=0.2, maxrestart=1)
    tid = api.enqueue_task("t", "x", 1)
    api.dequeue_task("srv")
    assert api.reenqueue_zombie_tasks() == []
    time.sleep(0.3)
    assert api.reenqueue_zombie_tasks("sweep") == [(tid, "t::x")]
    assert api.get_task_status(tid) == (Status.ACCEPTED, "ACCEPTED")
    api.dequeue_task("srv")
    api.start_task(tid)
    time.sleep(0.3)
    assert api.reenqueue_zombie_tasks() == [(tid, "t::x")]
    assert api.get_task_status(tid) == (Status.FAILED, "FAILED")
    messages = [m for _, _, m in api.get_task_log("t", "x")]
    assert messages[2] == "sweep; re-enqueued (restart 1 of 1)"
    assert "restart limit reached" in messages[-1]
    assert api.reenqueue_zombie_tasks() == []


def test_status_changes_refresh_the_deadline(api: Any) -> None:
    api.register_task_type("t", HANDLER, timeout=0.4)
    tid = api.enqueue_task("t", "x", 1)
    api.dequeue_task("srv")
    for _ in range(3):
        time.sleep(0.2)
        api.resume_task(tid, "progress")
    assert api.reenqueue_zombie_tasks() == []
    assert api.get_task_status(tid) == (Status.RUNNING, "RUNNING")


def test_zero_timeout_never_times_out(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeout=0)
    api.enqueue_task("t", "x", 1)
    api.dequeue_task("srv")
    assert tracker.count_overdue() == 0 and api.reenqueue_zombie_tasks() == []
    assert sum(s["live"] for s in tracker.shard_stats()) == 1


def test_delete_retired_tasks(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER, timeret=-1)
    old = api.enqueue_task("t", "old", 1)
    live = api.enqueue_task("t", "live", 1)
    api.stop_task_success(old)
    assert api.delete_retired_tasks() == []
    api.register_task_type("t", HANDLER, timeret=0.1)  # a shorter retention applies to old tasks too
    time.sleep(0.2)
    assert api.delete_retired_tasks() == [(old, "t::old")]
    with pytest.raises(TaskNotFound):
        api.get_task_status(old)
    assert api.get_task_status(live) == (Status.ACCEPTED, "ACCEPTED")


@pytest.mark.parametrize("bad", [0, -1, 10**12, "1", 1.0, None, True])
def test_unknown_task_ids(api: Any, bad: Any) -> None:
    api.register_task_type("t", HANDLER)
    api.enqueue_task("t", "x", 1)
    for call in (api.get_task_info, api.get_task_status, api.get_task_identifier, api.delete_task,
                 api.start_task, api.stop_task_success, api.pause_task, api.reenqueue_task):
        with pytest.raises(TaskNotFound) as err:
            call(bad)
        assert isinstance(err.value, LookupError)


def test_unknown_identifiers(api: Any) -> None:
    api.register_task_type("t", HANDLER)
    api.enqueue_task("t", "x", 1)
    for call in (api.get_task_status_by_identifier, api.get_task_log, api.get_task_response,
                 api.delete_task_by_identifier):
        with pytest.raises(TaskNotFound):
            call("t", "y")
        with pytest.raises(TaskNotFound):
            call("u", "x")


def test_task_status_handle(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER)
    tid = api.enqueue_task("t", "x", 1)
    api.dequeue_task("srv")
    api.start_task(tid)
    calls: list[str] = []

    class Lock:
        def acquire(self) -> None:
            calls.append("acquire")

        def release(self) -> None:
            calls.append("release")

    ts = TaskStatus(tid, Lock(), tracker=tracker)
    assert ts.getInfo() == ("t", "x", Status.RUNNING, "RUNNING")
    assert ts.getIdentifier() == ("t", "x")
    ts.setPaused("p")
    assert ts.getStatus() == (Status.PAUSED, "PAUSED")
    ts.setRunning("r")
    ts.storeResponse("<r/>")
    ts.setFailure("f")
    assert ts.getStatus() == (Status.FAILED, "FAILED")
    ts.setSuccess("s")
    assert ts.getStatus() == (Status.FINISHED, "FINISHED")
    assert calls == ["acquire", "release"] * 10
    assert TaskStatus.ACCEPTED == 1 and TaskStatus.FAILED == 6


def test_db_locker_and_dummy_lock() -> None:
    assert seed.dbLocker(seed.DummyLock(), lambda a, b=0: a + b, 1, b=2) == 3
    assert seed.dbLocker(None, lambda: "x") == "x"
    assert seed.dummyHandler(None, None) is None  # type: ignore[arg-type]


def test_module_api_uses_the_environment(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                                         namespace: str) -> None:
    monkeypatch.setenv("REDIS_ATP_URL", redis_url)
    monkeypatch.setenv("REDIS_ATP_NAMESPACE", namespace)
    monkeypatch.setattr(defaults, "_default", None)
    try:
        seed.registerTaskType("t", HANDLER)
        tid = seed.enqueueTask("t", "x", 1)
        assert seed.get_default_tracker().namespace == namespace
        assert TaskStatus(tid).getStatus() == (Status.ACCEPTED, "ACCEPTED")
    finally:
        seed.unregisterTaskType("t", force=True)
        seed.get_default_tracker().close()


def test_cancelling_queued_tasks_keeps_the_order_of_the_rest(api: Any, tracker: Tracker) -> None:
    api.register_task_type("t", HANDLER)
    ids = [api.enqueue_task("t", f"i{i}", i) for i in range(10)]
    api.stop_task_failure(ids[2], "cancel near the head")
    api.delete_task(ids[8])  # near the tail
    api.reenqueue_task(ids[2], "re-run at the tail")
    expected = [*ids[:2], *ids[3:8], ids[9], ids[2]]
    assert api.get_queue_size() == 9
    if tracker.shards == 1:
        assert queue_ids(tracker) == expected
        assert api.dequeue_task("w", count=10) == expected
    else:
        for keys in tracker.shard_keys:  # each shard keeps the order of its own tasks
            mine = live_queue(tracker, keys.shard)
            assert mine == [i for i in expected if i % tracker.shards == keys.shard]
