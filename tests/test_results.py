"""SPEC §8: waiting for a task's end without polling, and a handler's return value
as its response."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from redis_atp import InvalidInput, QueueEmpty, StaleTask, Status, TaskCancelled, TaskNotFound, Tracker
from redis_atp.daemon.fleet import Fleet

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


# --------------------------------------------------------------------------- cancel
def test_a_queued_or_delayed_task_cancelled_never_runs(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    queued = tracker.enqueue_task("t", "q", 0)
    delayed = tracker.enqueue_task("t", "d", 0, delay=0.1)
    assert tracker.cancel_task(queued, "not needed") is True
    assert tracker.cancel_task(delayed) is True
    assert tracker.get_queue_counts() == {"ready": 0, "delayed": 0, "parked": 0}
    time.sleep(0.15)
    with pytest.raises(QueueEmpty):
        tracker.claim("w")
    for tid in (queued, delayed):
        info = tracker.describe_task(tid)
        assert info["status"] == "FAILED" and info["cancelled"] and info["log"][-1][2].startswith("cancelled")
    assert tracker.describe_task(queued)["log"][-1][2] == "cancelled: not needed"
    assert tracker.cancel_task(queued) is False  # idempotent: it had ended
    with pytest.raises(TaskNotFound):
        tracker.cancel_task(999_999)


def test_a_live_run_is_fenced_out_and_learns_it_was_cancelled(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 0)
    [run] = runs(tracker, "w")
    run.setRunning("working")
    assert not run.cancelled
    assert tracker.cancel_task(tid) is True
    assert run.cancelled and tracker.get_task_status(tid)[1] == "FAILED"
    with pytest.raises(TaskCancelled):
        run.setRunning("still working")
    with pytest.raises(StaleTask):  # a TaskCancelled is a StaleTask: code that handles one handles both
        run.setSuccess()
    assert tracker.get_task_status(tid)[1] == "FAILED"
    tracker.reenqueue_task(tid)  # an operator's re-run clears the mark
    assert not tracker.is_cancelled(tid)


def test_the_seed_face_and_the_cli_cancel(real_tracker: Tracker, redis_url: str) -> None:
    import redis_atp.tracker as seed
    from redis_atp import defaults

    from .test_cli import atp

    real_tracker.register_task_type("t", HANDLER)
    a, b = real_tracker.enqueue_task("t", "a", 0), real_tracker.enqueue_task("t", "b", 0)
    seed.configure(client=real_tracker.client, namespace=real_tracker.namespace)
    try:
        assert seed.cancelTask(a) is True and seed.cancelTask(a) is False
    finally:
        defaults._default = None
    r = atp("cancel", "t", "b", "--json", url=redis_url, ns=real_tracker.namespace)
    assert r.returncode == 0 and '"cancelled": true' in r.stdout
    assert real_tracker.get_task_status(b)[1] == "FAILED"


def test_a_handler_that_calls_back_stops_when_its_task_is_cancelled(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("loop", "handlers.looper")
    t.register_task_type("count", "handlers.count")
    tid = t.enqueue_task("loop", "l", {"fx": env["fx"], "for": 30})
    start(env, redis_url, t.namespace, "-n", "1")
    t0 = time.monotonic()
    while t.get_task_status(tid)[1] != "RUNNING":
        assert time.monotonic() - t0 < 15
        time.sleep(0.05)
    assert t.cancel_task(tid, "no longer wanted")
    after = t.enqueue_task("count", "next", {"fx": env["fx"], "i": 1})
    assert t.wait_task(after, timeout=10)[1] == "FINISHED"  # the slot is free again
    assert t.client.hget(env["fx"], "stopped") == b"cancelled"
    info = t.describe_task(tid)
    assert info["status"] == "FAILED" and info["log"][-1][2] == "cancelled: no longer wanted"


def test_a_handler_that_never_calls_back_is_stopped_after_the_cancel_grace(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count", maxrestart=0)
    stuck = t.enqueue_task("count", "stuck", {"fx": env["fx"], "i": 0, "sleep": 60})
    other = t.enqueue_task("count", "other", {"fx": env["fx"], "i": 1, "sleep": 3})
    start(env, redis_url, t.namespace, "-n", "1", "--threads", "2", "--cancel-grace", "1")
    t0 = time.monotonic()
    while t.get_task_type("count").counts["running"] < 2:
        assert time.monotonic() - t0 < 15
        time.sleep(0.05)
    [before] = Fleet(t).workers()
    assert t.cancel_task(stuck)
    assert t.wait_task(other, timeout=30)[1] == "FINISHED"  # put back uncharged, run again by the new process
    assert t.describe_task(other)["restarts"] == 0
    assert t.client.hget(env["fx"], "1") == b"2"  # it ran twice: the stopped process's run, then again
    [after] = Fleet(t).workers()
    assert after.id != before.id and time.monotonic() - t0 < 20
    assert t.get_task_status(stuck)[1] == "FAILED" and t.client.hget(env["fx"], "0") == b"1"


def test_an_async_handler_that_never_calls_back_is_cancelled_on_its_loop(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("nap", "handlers.nap", maxrestart=0)
    stuck = t.enqueue_task("nap", "stuck", {"sleep": 60})
    start(env, redis_url, t.namespace, "-n", "1", "--cancel-grace", "1")
    t0 = time.monotonic()
    while t.get_task_status(stuck)[1] != "RUNNING":
        assert time.monotonic() - t0 < 15
        time.sleep(0.05)
    [before] = Fleet(t).workers()
    assert t.cancel_task(stuck)
    time.sleep(3)  # past the grace: the coroutine is cancelled, the process lives on
    after = t.enqueue_task("nap", "after", {"sleep": 0.1})
    assert t.wait_task(after, timeout=10)[1] == "FINISHED"
    [same] = Fleet(t).workers()
    assert same.id == before.id and t.get_task_status(stuck)[1] == "FAILED"


def test_a_run_past_its_hard_timeout_is_killed_and_recovered_as_a_time_out(
        real_tracker: Tracker, redis_url: str, env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count", maxrestart=1, hard_timeout=1)
    t.register_task_type("quick", "handlers.count")
    hung = t.enqueue_task("count", "hung", {"fx": env["fx"], "i": 0, "sleep": 60})
    start(env, redis_url, t.namespace, "-n", "1")
    assert t.wait_task(hung, timeout=30)[1] == "FAILED"  # killed twice: the restart, then the limit
    info = t.describe_task(hung)
    assert info["restarts"] == 1 and t.client.hget(env["fx"], "0") == b"2"
    assert any("hard timeout" in m for _, _, m in info["log"])
    after = t.enqueue_task("quick", "after", {"fx": env["fx"], "i": 1})
    assert t.wait_task(after, timeout=15)[1] == "FINISHED"  # the fleet goes on
    assert t.get_task_type("count").hard_timeout == 1.0


def test_a_hard_timeout_must_be_positive(tracker: Tracker) -> None:
    with pytest.raises(InvalidInput):
        tracker.register_task_type("t", HANDLER, hard_timeout=0)
    tracker.register_task_type("t", HANDLER, hard_timeout=2.5)
    assert tracker.get_task_type("t").hard_timeout == 2.5
    tracker.register_task_type("t", HANDLER)
    assert tracker.get_task_type("t").hard_timeout is None
