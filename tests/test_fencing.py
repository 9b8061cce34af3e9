"""SPEC §5: a run that lost its task cannot change it any more (StaleTask), and
the task's new run is left untouched."""

from __future__ import annotations

import time

import pytest

from redis_atp import AsyncTaskStatus, StaleTask, Status, Tracker
from redis_atp.daemon.protocol import Claims

from .conftest import AsyncFace, async_client, bound, runs

HANDLER = "redis_atp.tracker.dummyHandler"


def _lose_to_zombie_recovery(tracker: Tracker) -> tuple[int, object]:
    tracker.register_task_type("t", HANDLER, timeout=0.1, maxrestart=3)
    tid = tracker.enqueue_task("t", "x", 1)
    [old] = runs(tracker, "w1")
    tracker.start_task(tid, token=old.token)
    time.sleep(0.2)
    assert tracker.reenqueue_zombie_tasks() == [(tid, "t::x")]
    return tid, old


def test_stale_run_is_refused_while_task_is_queued_again(tracker: Tracker) -> None:
    tid, old = _lose_to_zombie_recovery(tracker)
    for call in (old.setSuccess, old.setFailure, old.setPaused, old.setRunning):  # type: ignore[attr-defined]
        with pytest.raises(StaleTask, match="no longer owns"):
            call("late")
    with pytest.raises(StaleTask):
        old.storeResponse("late")  # type: ignore[attr-defined]
    assert tracker.get_task_status(tid) == (Status.ACCEPTED, "ACCEPTED")
    assert tracker.get_task_response("t", "x") == (None, None)


def test_stale_run_cannot_touch_the_new_run(tracker: Tracker) -> None:
    tid, old = _lose_to_zombie_recovery(tracker)
    tracker.register_task_type("t", HANDLER, timeout=60, maxrestart=3)
    [new] = runs(tracker, "w2")
    assert new.token != old.token  # type: ignore[attr-defined]
    tracker.start_task(tid, token=new.token)
    new.setPaused("step 1")
    before = tracker.describe_task(tid)
    with pytest.raises(StaleTask):
        old.setSuccess("late")  # type: ignore[attr-defined]
    with pytest.raises(StaleTask):
        tracker.start_task(tid, token=old.token)  # type: ignore[attr-defined]
    with pytest.raises(StaleTask):
        tracker.reenqueue_task(tid, token=old.token)  # type: ignore[attr-defined]
    assert tracker.describe_task(tid) == before
    new.setSuccess("done")
    assert tracker.get_task_status(tid) == (Status.FINISHED, "FINISHED")


def test_run_ends_with_its_terminal_status(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w1")
    run.setSuccess("ok")
    with pytest.raises(StaleTask):
        run.setFailure("second thoughts")
    # the worker's closing call is a no-op for the run that finished it
    assert tracker.stop_task_success_if_not_finished(tid, token=run.token) is False
    assert tracker.get_task_status(tid) == (Status.FINISHED, "FINISHED")


def test_operator_path_stays_unfenced(tracker: Tracker) -> None:
    tid, old = _lose_to_zombie_recovery(tracker)
    tracker.stop_task_failure(tid, "operator cancels")
    assert tracker.get_task_status(tid) == (Status.FAILED, "FAILED")


def test_operator_requeue_fences_out_the_running_worker(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tid = tracker.enqueue_task("t", "x", 1)
    [run] = runs(tracker, "w1")
    tracker.reenqueue_task(tid, "operator moves it")
    with pytest.raises(StaleTask):
        run.setRunning("still here")
    assert tracker.get_task_status(tid) == (Status.ACCEPTED, "ACCEPTED")


def test_advance_ends_a_run_and_starts_the_next_in_one_call(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    a, b = tracker.enqueue_task("t", "a", {"n": 1}), tracker.enqueue_task("t", "b", {"n": 2})
    ending, _, [first], _ = Claims(tracker).advance("w")
    assert ending == 0 and first.task_id == a and tracker.serializer.unpack(first.raw_input) == {"n": 1}
    assert tracker.get_task_status(a) == (Status.RUNNING, "RUNNING")
    ending, _, [second], _ = Claims(tracker).advance("w", (first, Status.FAILED, "ValueError: x"))
    assert ending == 1 and second.task_id == b
    assert tracker.get_task_log("t", "a")[-1][1:] == ((Status.FAILED, "FAILED"), "ValueError: x")
    bound(tracker, second).setSuccess("the handler ended it")
    ending, _, rest, _ = Claims(tracker).advance("w", (second, Status.FINISHED, ""))
    assert ending == 0 and rest == []  # already ended by its handler; queue empty
    assert [m for _, _, m in tracker.get_task_log("t", "b")][-1] == "the handler ended it"


def test_advance_reports_a_stale_ending_and_leaves_the_new_run_alone(tracker: Tracker) -> None:
    tid, old = _lose_to_zombie_recovery(tracker)
    ending, _, [new], _ = Claims(tracker).advance("w2", None)
    assert new.task_id == tid
    ending, _, _, _ = Claims(tracker).advance("w1", (old, Status.FINISHED, "late"))  # type: ignore[arg-type]
    assert ending == -5  # Code.STALE
    assert tracker.get_task_status(tid) == (Status.RUNNING, "RUNNING")


def test_an_async_task_status_is_fenced_like_a_sync_one(tracker: Tracker, request: pytest.FixtureRequest) -> None:
    face = AsyncFace(tracker, async_client(request))
    try:
        tracker.register_task_type("t", HANDLER)
        tid = tracker.enqueue_task("t", "x", 1)
        [old] = tracker.claim("w1")
        run = AsyncTaskStatus(tid, tracker=face.atracker, token=old.token)
        face.loop.run_until_complete(run.setRunning("working"))
        assert face.loop.run_until_complete(run.getStatus()) == (Status.RUNNING, "RUNNING")
        tracker.reenqueue_task(tid, "operator")  # unfenced: the run loses its task
        [new] = tracker.claim("w2")
        with pytest.raises(StaleTask):
            face.loop.run_until_complete(run.setSuccess("late"))
        with pytest.raises(StaleTask):
            face.loop.run_until_complete(run.storeResponse("late"))
        assert tracker.get_task_status(tid) == (Status.SCHEDULED, "SCHEDULED")
        assert tracker.describe_task(tid)["response_bytes"] == 0
        assert new.token != old.token
    finally:
        face.close()
