"""SPEC §7, schedules: a task per tick, exactly once, with overlap and misfire
policies, whichever workers or producers run housekeeping."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from redis_atp import InvalidInput, Status, TaskTypeNotFound, Tracker
from redis_atp.protocol import schedules

from .conftest import namespace_keys
from .fleetproc import start, wait_until

HANDLER = "redis_atp.tracker.dummyHandler"


def _ticks(t: Tracker, type_: str = "t") -> list[str]:
    """Identifiers of the type's tasks, by id (the queue holds them all: no worker)."""
    out = []
    for tid in range(1, t.last_task_id() + 1):
        try:
            kind, ident = t.get_task_identifier(tid)
        except LookupError:
            continue
        if kind == type_:
            out.append(ident)
    return out


def _run(t: Tracker, now: datetime | None = None) -> list[tuple[str, str | None]]:
    return t.io.run(schedules.run_due(t.ns, now))


def test_add_list_and_remove(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    s = tracker.add_schedule("nightly", "t", cron="0 3 * * *", input={"full": True}, tz="Europe/Vienna")
    assert (s.name, s.type, s.cron, s.every, s.tz, s.overlap, s.misfire) == (
        "nightly", "t", "0 3 * * *", None, "Europe/Vienna", "skip", "skip")
    assert s.next_run is not None and s.next_run.astimezone(s.next_run.tzinfo).minute == 0
    local = s.next_run.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Vienna"))
    assert (local.hour, local.minute) == (3, 0) and s.next_run > datetime.now(timezone.utc)
    tracker.add_schedule("often", "t", every=60)
    assert [x.name for x in tracker.list_schedules()] == ["nightly", "often"]
    assert tracker.list_schedules()[0].input == {"full": True}
    assert tracker.remove_schedule("nightly") is True
    assert tracker.remove_schedule("nightly") is False
    assert [x.name for x in tracker.list_schedules()] == ["often"]


@pytest.mark.parametrize("kwargs", [{}, {"cron": "* * * * *", "every": 5}, {"cron": "61 * * * *"},
                                    {"every": 0.5}, {"every": float("nan")}, {"every": 5, "tz": "Mars/Olympus"},
                                    {"every": 5, "overlap": "never"}, {"every": 5, "misfire": "all"},
                                    {"every": 5, "input": object()}])
def test_bad_schedules_are_refused_and_write_nothing(tracker: Tracker, kwargs: dict[str, Any]) -> None:
    tracker.register_task_type("t", HANDLER)
    before = namespace_keys(tracker.client, tracker.namespace)
    with pytest.raises(InvalidInput):
        tracker.add_schedule("s", "t", **kwargs)
    with pytest.raises(TaskTypeNotFound):
        tracker.add_schedule("s", "no-such-type", every=5)
    assert namespace_keys(tracker.client, tracker.namespace) == before


def test_every_tick_is_one_task_under_concurrent_housekeeping(real_tracker: Tracker) -> None:
    t = real_tracker
    t.register_task_type("t", HANDLER, timeret=-1)
    t.set_max_queue_size(0)
    t.add_schedule("beat", "t", every=1, overlap="allow")
    stop = time.monotonic() + 3.5

    def keeper() -> None:
        other = Tracker(t.client, t.namespace)
        while time.monotonic() < stop:
            _run(other)
            time.sleep(0.005)

    threads = [threading.Thread(target=keeper) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ticks = _ticks(t)
    assert len(ticks) == len(set(ticks)) >= 3  # one task per tick, none twice
    stamps = sorted(datetime.fromisoformat(x.split("@")[1].replace("Z", "+00:00")) for x in ticks)
    assert all((b - a).total_seconds() == 1 for a, b in zip(stamps, stamps[1:], strict=False))  # none skipped


def test_overlap_skip_waits_for_the_last_tick_s_task(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    s = tracker.add_schedule("s", "t", every=60)
    assert s.next_run is not None
    first = s.next_run
    [(_, ident)] = _run(tracker, first + timedelta(seconds=1))
    assert ident == f"s@{first:%Y-%m-%dT%H:%M:%S}Z"
    assert _run(tracker, first + timedelta(seconds=61)) == [("s", None)]  # the first still queued: skipped
    tracker.stop_task_success(tracker.get_task_id("t", ident))
    [(_, third)] = _run(tracker, first + timedelta(seconds=121))
    assert third == f"s@{first + timedelta(seconds=120):%Y-%m-%dT%H:%M:%S}Z"
    assert tracker.list_schedules()[0].last_task == third


@pytest.mark.parametrize("misfire, created", [("skip", 0), ("once", 1)])
def test_a_fleet_down_for_hours_does_not_flood_the_queue(tracker: Tracker, misfire: str, created: int) -> None:
    tracker.register_task_type("t", HANDLER)
    s = tracker.add_schedule("hourly", "t", every=3600, misfire=misfire)
    assert s.next_run is not None
    back = s.next_run + timedelta(hours=5, minutes=10)  # the fleet returns 10 minutes past a tick
    [(_, ident)] = _run(tracker, back)
    assert len(_ticks(tracker)) == created
    if created:
        assert ident == f"hourly@{s.next_run + timedelta(hours=5):%Y-%m-%dT%H:%M:%S}Z"  # the latest missed tick
    assert tracker.list_schedules()[0].next_run == s.next_run + timedelta(hours=6)
    assert _run(tracker, back) == []  # nothing more is due


def test_a_removed_schedule_makes_no_more_tasks(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    s = tracker.add_schedule("s", "t", every=60, overlap="allow")
    assert s.next_run is not None
    _run(tracker, s.next_run)
    tracker.remove_schedule("s")
    assert _run(tracker, s.next_run + timedelta(hours=1)) == []
    assert len(_ticks(tracker)) == 1


def test_two_fleets_and_a_producer_create_each_tick_once(real_tracker: Tracker, redis_url: str,
                                                         env: dict[str, Any]) -> None:
    t = real_tracker
    t.register_task_type("count", "handlers.count", timeret=-1)
    t.add_schedule("beat", "count", every=1, overlap="allow", input={"fx": env["fx"], "i": 0})
    for _ in range(2):
        start(env, redis_url, t.namespace, "-n", "1", "--heartbeat", "2")
    stop = time.monotonic() + 5
    while time.monotonic() < stop:
        _run(t)  # a library producer's housekeeping too
        time.sleep(0.05)
    t.remove_schedule("beat")
    wait_until(lambda: t.get_task_type("count").counts["accepted"] + t.get_task_type("count").counts["running"] == 0,
               15, "the ticks to run")
    ticks = _ticks(t, "count")
    assert len(ticks) == len(set(ticks)) >= 4
    assert int(t.client.hget(env["fx"], "0") or 0) == len(ticks)  # each tick's task ran once
    for ident in ticks:
        assert t.get_task_status_by_identifier("count", ident)[0] == Status.FINISHED
