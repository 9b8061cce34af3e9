"""SPEC §8: waiting for a task's end without polling, and a handler's return value
as its response."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from redis_atp import Status, TaskNotFound, Tracker

from .conftest import AsyncFace, async_client, runs
from .fleetproc import start

HANDLER = "redis_atp.tracker.dummyHandler"


def _end_later(tracker: Tracker, tid: int, after: float, how: str = "success") -> threading.Thread:
    def end() -> None:
        time.sleep(after)
        {"success": tracker.stop_task_success, "failure": tracker.stop_task_failure,
         "delete": tracker.delete_task}[how](tid)
    th = threading.Thread(target=end)
    th.start()
    return th


def test_wait_returns_an_end_that_came_before_during_or_after_the_call(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    done = tracker.enqueue_task("t", "done", 0)
    tracker.stop_task_success(done)
    assert tracker.wait_task(done, timeout=0) == (Status.FINISHED, "FINISHED")  # ended before
    tid = tracker.enqueue_task("t", "x", 0)
    th = _end_later(tracker, tid, 0.3, "failure")
    t0 = time.monotonic()
    assert tracker.wait_task(tid, timeout=10) == (Status.FAILED, "FAILED")
    assert 0.25 < time.monotonic() - t0 < 2  # woken by the end, not by polling or the timeout
    th.join()


def test_many_waiters_are_all_woken(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("t", HANDLER)
    tid = t.enqueue_task("t", "x", 0)
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(Tracker(t.client, t.namespace).wait_task(tid, 10)))
               for _ in range(5)]
    for w in waiters:
        w.start()
    time.sleep(0.3)
    t.stop_task_success(tid)
    for w in waiters:
        w.join(5)
    assert got == [(Status.FINISHED, "FINISHED")] * 5


def test_wait_times_out_and_a_deleted_task_is_not_found(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 0)
    with pytest.raises(TimeoutError):
        tracker.wait_task(tid, timeout=0.2)
    th = _end_later(tracker, tid, 0.2, "delete")
    with pytest.raises(TaskNotFound):
        tracker.wait_task(tid, timeout=10)
    th.join()
    with pytest.raises(TaskNotFound):
        tracker.wait_task(999_999, timeout=1)


def test_a_retried_or_rerun_task_is_waited_for_to_its_final_end(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 0)
    tracker.stop_task_failure(tid)
    tracker.reenqueue_task(tid)  # a re-run: the old end must not answer the new wait
    th = _end_later(tracker, tid, 0.3)
    assert tracker.wait_task(tid, timeout=10) == (Status.FINISHED, "FINISHED")
    th.join()


def test_the_async_face_waits_too(tracker: Tracker, request: pytest.FixtureRequest) -> None:
    face = AsyncFace(tracker, async_client(request))
    try:
        tracker.register_task_type("t", HANDLER)
        tid = tracker.enqueue_task("t", "x", 0)
        [run] = runs(tracker, "w")
        th = _end_later(tracker, tid, 0.3)
        assert face.wait_task(tid, timeout=10) == (Status.FINISHED, "FINISHED")
        th.join()
        assert run.getStatus()[1] == "FINISHED"
    finally:
        face.close()


def test_return_values_become_responses_unless_one_was_stored(real_tracker: Tracker, redis_url: str,
                                                              env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("answer", "handlers.answer")
    t.register_task_type("async_answer", "handlers.async_answer")
    cases = {"json": {"a": 2, "b": 3}, "text": {"value": "plain words"}, "none": {"value": None},
             "stored": {"store": "<mine/>", "value": "ignored"}, "bad": {"value": float("nan")}}
    ids = {name: t.enqueue_task("answer", name, inp) for name, inp in cases.items()}
    ids["async"] = t.enqueue_task("async_answer", "async", {"a": 7})
    start(env, redis_url, t.namespace, "-n", "1")
    for tid in ids.values():
        t.wait_task(tid, timeout=20)
    assert t.get_task_response("answer", "json") == ('{"sum": 5}', "application/json")
    assert t.get_task_response("answer", "text") == ("plain words", "text/plain")
    assert t.get_task_response("answer", "none") == (None, None)
    assert t.get_task_response("answer", "stored") == ("<mine/>", "text/x-stored")
    assert t.get_task_status(ids["bad"])[1] == "FAILED"  # NaN is not JSON
    assert t.get_task_response("async_answer", "async") == ('{"async": 7}', "application/json")
