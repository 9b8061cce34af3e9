"""Bad input gets a clear error and writes nothing; hostile identifiers are plain
text that cannot collide with or escape into other keys."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from redis_atp import DuplicateTask, InvalidInput, TaskNotFound, TaskTypeNotFound, Tracker

from .conftest import namespace_keys, runs

HANDLER = "redis_atp.tracker.dummyHandler"
HOSTILE = ["a:b", "{x}", "}{", "*", "?[a]", "with space", "line\nbreak", "tab\t", "ünïcødé ✓", "日本語",
           "🙂", "x" * 1000, "é" * 1000, "atp:{other}:t:AAAA", "\x00nul", "::", "-1", "0"]


def _snapshot(tracker: Tracker) -> dict[bytes, Any]:
    return {k: tracker.client.dump(k) for k in namespace_keys(tracker.client, tracker.namespace)}


@pytest.mark.parametrize("ident", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_identifiers_round_trip(tracker: Tracker, ident: str) -> None:
    tracker.register_task_type(ident, HANDLER)
    tid = tracker.enqueue_task(ident, ident, {ident: ident})
    assert tracker.get_task_info(tid) == (ident, ident, 1, "ACCEPTED")
    assert tracker.get_task_status_by_identifier(ident, ident)[1] == "ACCEPTED"
    [run] = runs(tracker, ident)
    assert tracker.start_task(tid, token=run.token) == (ident, ident, HANDLER, {ident: ident})
    run.setSuccess(ident)
    assert tracker.get_task_log(ident, ident)[-1][2] == ident
    keys = namespace_keys(tracker.client, tracker.namespace)
    prefix = f"atp:{{{tracker.namespace}}}:".encode()
    assert all(k.startswith(prefix) for k in keys)
    assert not any(ident.encode() in k for k in keys if len(ident) > 2)
    assert len({key_slot(k) for k in keys}) == 1
    tracker.unregister_task_type(ident, force=True)


def test_identifiers_that_look_alike_do_not_collide(tracker: Tracker) -> None:
    tracker.register_task_type("a", HANDLER)
    tracker.register_task_type("a:b", HANDLER)
    ids = {tracker.enqueue_task("a", "b:c", 1), tracker.enqueue_task("a:b", "c", 2),
           tracker.enqueue_task("a", "b:c ", 3)}
    assert len(ids) == 3
    assert tracker.get_task_input(tracker.get_task_id("a:b", "c")) == 2


@pytest.mark.parametrize("bad", ["", None, True, 4.2, b"bytes", "\udc80", "x" * 5000])
def test_bad_names_are_refused_and_write_nothing(tracker: Tracker, bad: Any) -> None:
    tracker.register_task_type("t", HANDLER)
    tracker.enqueue_task("t", "existing", 1)
    before = _snapshot(tracker)
    with pytest.raises(InvalidInput):
        tracker.enqueue_task("t", bad, 1)
    with pytest.raises(InvalidInput):
        tracker.enqueue_task(bad, "x", 1)
    with pytest.raises(InvalidInput):
        tracker.register_task_type(bad, HANDLER)
    with pytest.raises(InvalidInput):
        tracker.dequeue_task(bad)
    assert _snapshot(tracker) == before


@pytest.mark.parametrize("value", [object(), {1, 2}, 2**70, {"f": lambda: 0}, [b"x", complex(1, 2)]])
def test_unencodable_input_is_refused(tracker: Tracker, value: Any) -> None:
    tracker.register_task_type("t", HANDLER)
    before = _snapshot(tracker)
    with pytest.raises(InvalidInput, match="msgpack"):
        tracker.enqueue_task("t", "x", value)
    assert _snapshot(tracker) == before
    ok, bad = tracker.enqueue_many([("t", "ok", 1), ("t", "bad", value)])  # each task on its own
    assert isinstance(ok, int) and isinstance(bad, InvalidInput) and "msgpack" in str(bad)
    with pytest.raises(TaskNotFound):
        tracker.get_task_id("t", "bad")  # nothing of the bad task was written
    assert tracker.get_queue_size() == 1
    for chunk in (0, -1, 1.5, True):
        with pytest.raises(InvalidInput):
            tracker.enqueue_many([("t", "c", 1)], chunk=chunk)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tracker.enqueue_many([("t", "c")])  # not a task: nothing is sent
    assert tracker.get_queue_size() == 1


def test_refusals_write_nothing(tracker: Tracker) -> None:
    with pytest.raises(TaskTypeNotFound):
        tracker.enqueue_task("unknown", "x", 1)
    assert namespace_keys(tracker.client, tracker.namespace) == []
    tracker.register_task_type("t", HANDLER)
    tracker.enqueue_task("t", "x", 1)
    before = _snapshot(tracker)
    with pytest.raises(DuplicateTask, match="already exists"):
        tracker.enqueue_task("t", "x", 1)
    for bad_id in (999, -3, "1", None):
        with pytest.raises(TaskNotFound):
            tracker.stop_task_success(bad_id)  # type: ignore[arg-type]
        with pytest.raises(TaskNotFound):
            tracker.set_task_response(bad_id, "r")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tracker.set_task_response(1, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tracker.register_task_type("t", HANDLER, timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tracker.dequeue_task("w", count=0)
    assert _snapshot(tracker) == before


def test_error_messages_name_the_subject(tracker: Tracker) -> None:
    with pytest.raises(TaskTypeNotFound, match="'nope'"):
        tracker.enqueue_task("nope", "x", 1)
    with pytest.raises(TaskNotFound, match="task 12345 does not exist"):
        tracker.get_task_info(12345)


@pytest.mark.parametrize("ns", ["", "a{b}", "a b", "a*", "x" * 65, "ü"])
def test_bad_namespaces_are_refused(client: Any, ns: str) -> None:
    with pytest.raises(InvalidInput):
        Tracker(client, ns)
