"""EOxServer's own clients of the seed tracker, re-told call by call (SPEC 5, 5.1): the
ATPD daemon's loop, the WCS-T asynchronous producer and handler, the seed's unit
tests; and the settings a namespace keeps for every client (queue limit, serializer)."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import redis_atp.tracker as seed
from redis_atp import InvalidInput, QueueEmpty, QueueFull, Status, Tracker, defaults
from redis_atp.daemon.protocol import Claims
from redis_atp.keys import Keys

from .conftest import delete_namespace, runs

HANDLER = "redis_atp.tracker.dummyHandler"


@dataclass
class ParsedRequest:
    """What the WCS-T producer enqueues: an object of its own class."""

    coverage: str
    bbox: tuple[float, float, float, float]
    when: dt.datetime
    tags: frozenset[str]


def wcst_handler(ts: seed.TaskStatus, req: ParsedRequest) -> None:
    """The WCS-T handler's order of calls: success first, then the response."""
    ts.setSuccess("coverage inserted")
    ts.storeResponse(f"<ok coverage='{req.coverage}'/>")


@pytest.fixture
def module_face(real_client: Any, namespace: str) -> Iterator[Tracker]:
    tracker = seed.configure(client=real_client, namespace=namespace)
    yield tracker
    delete_namespace(real_client, namespace)
    defaults._default = None


def _atpd_round(server_id: int, handlers: dict[str, Any]) -> int:
    """One pass of tools/eoxserver-atpd.py's loop: dequeue, start, run, finish."""
    ran = 0
    try:
        ids = seed.dequeueTask(server_id)
    except QueueEmpty:
        return 0
    for tid in ids:
        type_, ident, handler, data = seed.startTask(tid)
        try:
            handlers[handler](seed.TaskStatus(tid), data)
            seed.stopTaskSuccessIfNotFinished(tid)
        except Exception as exc:
            seed.stopTaskFailure(tid, str(exc))
        ran += 1
    return ran


def test_the_atpd_loop_with_a_random_signed_64_bit_server_id(module_face: Tracker) -> None:
    server_id = random.randint(-(2**63), 2**63 - 1)
    seen: list[Any] = []
    seed.registerTaskType("echo", "myapp.echo", timeout=60)
    ids = [seed.enqueueTask("echo", f"job-{i}", {"i": i}) for i in range(5)]
    while _atpd_round(server_id, {"myapp.echo": lambda ts, inp: seen.append(inp["i"])}):
        pass
    assert seen == [0, 1, 2, 3, 4]
    assert seed.getQueueSize() == 0
    assert seed.getTaskStatusByIdentifier("echo", "job-4") == (Status.FINISHED, "FINISHED")
    assert module_face.describe_task(ids[-1])["last_owner"] == str(server_id)


def test_the_seed_unit_tests_int_identifiers_and_server_id(module_face: Tracker) -> None:
    seed.registerTaskType(7, 123)  # stored as str(value), as the seed's Django fields did
    assert module_face.get_task_type("7").handler == "123"
    tid = seed.enqueueTask(7, 1, None)
    assert seed.getTaskIdentifier(tid) == ("7", "1")
    assert seed.dequeueTask(1) == [tid]
    assert module_face.describe_task(tid)["owner"] == "1"
    assert seed.getTaskStatusByIdentifier(7, 1) == (Status.SCHEDULED, "SCHEDULED")


def test_start_of_a_task_re_enqueued_from_a_daemon_s_local_queue_runs_it_once(module_face: Tracker) -> None:
    seed.registerTaskType("t", HANDLER, timeout=0.001)
    tid = seed.enqueueTask("t", "x", 1)
    [taken] = seed.dequeueTask(42)  # into the daemon's local queue
    time.sleep(0.01)
    assert seed.reenqueueZombieTasks() == [(tid, "t::x")]  # the sweep puts it back meanwhile
    seed.registerTaskType("t", HANDLER, timeout=3600)
    assert seed.startTask(taken)[1] == "x"  # the daemon gets to it: it runs, from here
    assert seed.getQueueSize() == 0
    with pytest.raises(QueueEmpty):
        seed.dequeueTask(43)  # never again from the stale queue entry


def test_wcst_with_pickle_objects_and_response_after_success(real_client: Any, namespace: str) -> None:
    producer = seed.configure(client=real_client, namespace=namespace, serializer="pickle")
    try:
        seed.registerTaskType("wcst", "eoxserver.wcst.handler")
        req = ParsedRequest("cov-1", (0.0, 1.5, 2.0, 3.5), dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc),
                            frozenset({"a", "b"}))
        tid = seed.enqueueTask("wcst", "req-1", req)
        [run] = runs(producer, "atpd")
        type_, ident, handler, data = producer.start_task(tid, token=run.token)
        assert data == req and type(data) is ParsedRequest
        wcst_handler(run, data)
        assert seed.getTaskResponse("wcst", "req-1") == ("<ok coverage='cov-1'/>", "text/xml")
        assert seed.getTaskStatus(tid) == (Status.FINISHED, "FINISHED")
    finally:
        delete_namespace(real_client, namespace)
        defaults._default = None


@pytest.mark.parametrize("value", [(1, "a"), {1, 2}, dt.datetime(2026, 1, 1), 2**64 + 5, -(2**70),
                                   {"k": (1, 2)}, b"\x00raw"])
def test_pickle_gives_values_back_equal_and_of_the_same_type(real_client: Any, namespace: str, value: Any) -> None:
    t = Tracker(real_client, namespace, serializer="pickle")
    t.register_task_type("t", HANDLER)
    tid = t.enqueue_task("t", "x", value)
    got = t.get_task_input(tid)
    assert got == value and type(got) is type(value)
    delete_namespace(real_client, namespace)


def test_msgpack_refuses_what_it_could_not_give_back(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    for bad in ({(1, 2): "tuple key"}, {1, 2}, object()):
        with pytest.raises(InvalidInput):
            tracker.enqueue_task("t", "x", bad)
    assert tracker.get_queue_size() == 0


def test_an_unreadable_stored_input_is_a_clear_error_not_a_crash(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    key = tracker.describe_task(tid)["key"]
    tracker.client.hset(key, "input", b"\xc1")  # never valid msgpack: written by hand
    [started] = Claims(tracker).claim_started("w")
    with pytest.raises(ValueError):
        tracker.serializer.unpack(started.raw_input)
    assert tracker.describe_task(tid)["input"] == b"\xc1"  # show falls back to the raw bytes
    with pytest.raises(InvalidInput, match="cannot be decoded"):
        tracker.get_task_input(tid)


def test_a_namespace_keeps_its_serializer(real_client: Any, namespace: str) -> None:
    Tracker(real_client, namespace, serializer="pickle").register_task_type("t", HANDLER)
    with pytest.raises(InvalidInput, match="pickle"):
        Tracker(real_client, namespace).get_queue_size()  # msgpack: refused before it reads anything
    assert real_client.hget(Keys(namespace).config, "serializer") == b"pickle"
    delete_namespace(real_client, namespace)


def test_configure_arguments_left_out_take_their_defaults(real_client: Any, namespace: str) -> None:
    try:
        first = seed.configure(client=real_client, namespace=namespace, max_queue_size=2, serializer="pickle")
        first.register_task_type("t", HANDLER)
        other = seed.configure(client=real_client, namespace=namespace + "-b")
        other.register_task_type("t", HANDLER)
        assert seed.getMaxQueueSize() == 64 and other.serializer.name == "msgpack"
        assert first.get_max_queue_size() == 2
    finally:
        delete_namespace(real_client, namespace)
        delete_namespace(real_client, namespace + "-b")
        defaults._default = None


# ---------------------------------------------------------------- one queue limit for everyone
def test_the_queue_limit_is_the_namespace_s(client: Any, namespace: str) -> None:
    a = Tracker(client, namespace)
    a.register_task_type("t", HANDLER)
    assert a.get_max_queue_size() == 64  # the first registration recorded the seed's default
    Tracker(client, namespace, max_queue_size=3).get_queue_size()  # sets it for every producer
    b = Tracker(client, namespace)
    assert a.get_max_queue_size() == b.get_max_queue_size() == 3
    for i in range(3):
        b.enqueue_task("t", str(i), i)
    with pytest.raises(QueueFull, match="3 tasks waiting, limit 3"):
        a.enqueue_task("t", "more", 0)
    [r] = a.enqueue_many([("t", "bulk", 0)])
    assert isinstance(r, QueueFull)
    a.set_max_queue_size(0)
    assert b.enqueue_task("t", "more", 0) > 0
    delete_namespace(client, namespace)


def test_a_namespace_from_before_the_record_stays_msgpack(real_client: Any, namespace: str) -> None:
    Tracker(real_client, namespace).register_task_type("t", HANDLER)
    real_client.hdel(Keys(namespace).config, "serializer", "max_queue_size")  # as an older version left it
    with pytest.raises(InvalidInput, match="msgpack"):
        Tracker(real_client, namespace, serializer="pickle").register_task_type("u", HANDLER)
    assert real_client.hget(Keys(namespace).config, "serializer") == b"msgpack"
    delete_namespace(real_client, namespace)
