"""SPEC §8 from the command line: ``ls``, ``requeue --failed``, ``pause``/``resume``,
``events`` (and ``--follow``), ``config set max-events``, and what ``info`` says of pauses;
each a subprocess against the real test server."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from redis_atp import QueueEmpty, Tracker

from .conftest import runs
from .test_cli import atp

HANDLER = "redis_atp.tracker.dummyHandler"


@pytest.fixture
def cli(redis_url: str, real_tracker: Tracker) -> Any:
    """``redis-atp ARGS --url <test server> --namespace <the test's>``."""
    return lambda *args: atp(*args, url=redis_url, ns=real_tracker.namespace)


def fail(tracker: Tracker, owner: str, count: int) -> list[int]:
    """Claim ``count`` tasks and end them FAILED; their ids, in claim order."""
    claimed = runs(tracker, owner, count=count)
    for run in claimed:
        time.sleep(0.002)  # distinct times of last change: a known order
        run.setFailure("boom")
    return [run.task_id for run in claimed]


def test_ls_lists_newest_first_filters_and_pages(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("a", HANDLER)
    real_tracker.register_task_type("b", HANDLER)
    queued = [real_tracker.enqueue_task("a", f"q{i}", i) for i in range(3)]
    evil = real_tracker.enqueue_task("b", "evil\nID  fake\x1b[2J", 0)
    real_tracker.pause_queue("b")
    failed = fail(real_tracker, "w", 2)  # q0, q1: the newest changes
    assert failed == queued[:2]
    r = cli("ls")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "IDENTIFIER", "STATUS", "UPDATED"]
    assert [int(line.split()[0]) for line in lines[1:]] == [failed[1], failed[0], evil, queued[2]]
    assert "\x1b" not in r.stdout and "evil\\nID" in r.stdout and "(more:" not in r.stdout
    assert lines[1].split()[1:4] == ["a", "q1", "FAILED"] and lines[1].endswith(" UTC")
    page = json.loads(cli("ls", "--status", "failed", "--json").stdout)
    assert [t["id"] for t in page] == failed[::-1]
    assert set(page[0]) == {"id", "type", "identifier", "status", "code", "updated"}
    assert (page[0]["status"], page[0]["code"], page[0]["type"]) == ("FAILED", 6, "a")
    assert page[0]["updated"].endswith("+00:00")
    assert cli("ls", "--status", "FAILED", "--json").stdout == cli("ls", "--status", "6", "--json").stdout \
        == json.dumps(page, indent=2) + "\n"
    r = cli("ls", "--type", "a", "--limit", "2")
    assert r.stdout.splitlines()[-1] == f"(more: --before {failed[0]})"
    rest = json.loads(cli("ls", "--type", "a", "--limit", "2", "--before", str(failed[0]), "--json").stdout)
    assert [(t["id"], t["status"]) for t in rest] == [(queued[2], "ACCEPTED")]
    assert cli("ls", "--status", "running").stdout.strip() == "no tasks"


@pytest.mark.parametrize("args, code, message", [
    (("ls", "--status", "bogus"), 2, "--status 'bogus': not a status"),
    (("ls", "--status", "0"), 2, "not a status"),
    (("ls", "--limit", "5000"), 2, "limit must be an int from 1 to 1000"),
    (("ls", "--type", "nope"), 1, "TaskTypeNotFound: task type 'nope'"),
    (("requeue", "--failed", "t", "x"), 2, "give either --failed or a task"),
    (("requeue", "--failed", "--id", "1"), 2, "give either --failed or a task"),
    (("requeue", "t", "x", "--type", "t"), 2, "--type goes with --failed"),
    (("requeue", "--failed", "--type", "nope"), 1, "TaskTypeNotFound"),
    (("pause", "nope"), 1, "TaskTypeNotFound"),
    (("events", "--since", "yesterday"), 2, "an event id is"),
    (("config", "set", "max-events", "-1"), 2, "max_events must be an int >= 0"),
])
def test_bad_input_is_one_line_with_its_exit_code(cli: Any, real_tracker: Tracker, args: tuple[str, ...], code: int,
                                                  message: str) -> None:
    real_tracker.register_task_type("t", HANDLER)
    real_tracker.enqueue_task("t", "x", 1)
    r = cli(*args)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert real_tracker.get_task_status(1)[1] == "ACCEPTED" and real_tracker.get_pause_state()["types"] == []


def test_requeue_failed_reruns_every_failed_task(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("a", HANDLER)
    real_tracker.register_task_type("b", HANDLER)
    for name in ("a", "b"):
        real_tracker.enqueue_many([(name, f"{name}{i}", i) for i in range(3)])
    failed = fail(real_tracker, "w", 5)  # a0-a2, b0, b1; b2 stays queued
    r = cli("requeue", "--failed", "--type", "a", "--message", "second try")
    assert r.returncode == 0 and r.stdout.strip() == "3 failed tasks back in the queue"
    assert [real_tracker.get_task_status(t)[1] for t in failed] == ["ACCEPTED"] * 3 + ["FAILED"] * 2
    assert real_tracker.get_task_log("a", "a0")[-1][1:] == ((1, "ACCEPTED"), "second try")
    assert json.loads(cli("requeue", "--failed", "--json").stdout) == {"requeued": 2}
    assert real_tracker.list_tasks(status=6) == [] and real_tracker.get_queue_size() == 6
    assert cli("requeue", "--failed").stdout.strip() == "0 failed tasks back in the queue"
    assert cli("requeue", "--id", str(failed[0])).returncode == 0  # one task, as before


def test_pause_and_resume_show_in_info_and_stop_dequeues(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("a", HANDLER)
    real_tracker.register_task_type("b", HANDLER)
    ta = real_tracker.enqueue_task("a", "x", 1)
    r = cli("pause", "a")
    assert r.returncode == 0 and r.stdout.strip() == "paused type a; paused now: types a"
    with pytest.raises(QueueEmpty):
        real_tracker.dequeue_task("w")  # sets a's task aside: parked
    info = json.loads(cli("info", "--json").stdout)
    assert info["paused"] == {"namespace": False, "types": ["a"], "parked": 1}
    assert info["queue"]["parked"] == 1 and info["queue"]["size"] == 1
    text = cli("info").stdout
    assert "queue      1 waiting: 0 ready, 0 delayed, 1 parked (limit 64)" in text
    assert "paused     types a (1 tasks parked)" in text
    tb = real_tracker.enqueue_task("b", "y", 1)
    assert cli("pause").returncode == 0  # the whole namespace
    with pytest.raises(QueueEmpty):
        real_tracker.dequeue_task("w")
    assert json.loads(cli("info", "--json").stdout)["paused"]["namespace"] is True
    assert "paused     the namespace; types a (1 tasks parked)" in cli("info").stdout
    assert json.loads(cli("resume", "a", "--json").stdout) == {"namespace": True, "types": [], "parked": 0}
    with pytest.raises(QueueEmpty):
        real_tracker.dequeue_task("w")  # the namespace still is
    assert cli("resume").stdout.strip() == "resumed the namespace; paused now: nothing"
    assert real_tracker.dequeue_task("w") == [ta] and real_tracker.dequeue_task("w") == [tb]
    assert "paused     nothing" in cli("info").stdout


def test_events_print_the_kept_history(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", HANDLER)
    real_tracker.enqueue_task("t", "a", 1, "first")
    real_tracker.enqueue_task("t", "bad\x1b[2J", 1)
    fail(real_tracker, "w", 1)
    r = cli("events")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[0].endswith(" UTC       1  t::a  ACCEPTED   first")
    assert "t::bad\\x1b[2J  ACCEPTED" in lines[1] and "\x1b" not in r.stdout
    assert lines[3].endswith("t::a  FAILED     boom")
    events = [json.loads(line) for line in cli("events", "--json").stdout.splitlines()]
    assert [(e["task_id"], e["status"], e["code"]) for e in events] == [
        (1, "ACCEPTED", 1), (2, "ACCEPTED", 1), (1, "SCHEDULED", 2), (1, "FAILED", 6)]
    assert set(events[0]) == {"id", "task_id", "type", "identifier", "status", "code", "time", "message"}
    assert events[0]["message"] == "first" and events[0]["time"].endswith("+00:00")
    after = cli("events", "--json", "--since", events[1]["id"]).stdout.splitlines()
    assert [json.loads(line)["id"] for line in after] == [e["id"] for e in events[2:]]
    assert cli("events", "--since", events[3]["id"]).stdout.strip() == "no events"


def test_config_sets_and_shows_max_events(cli: Any, real_tracker: Tracker) -> None:
    assert json.loads(cli("config", "--json").stdout)["max_events"] == 10_000
    r = cli("config", "set", "max-events", "0")
    assert r.returncode == 0 and "max-events      0 (events off)" in r.stdout
    assert real_tracker.get_max_events() == 0
    real_tracker.register_task_type("t", HANDLER)
    real_tracker.enqueue_task("t", "a", 1)
    assert "events are off" in cli("events").stdout
    assert json.loads(cli("config", "set", "max-events", "50", "--json").stdout)["max_events"] == 50


class Follower:
    """``redis-atp events --follow --json ...`` in the background, its lines in a queue."""

    def __init__(self, redis_url: str, ns: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "redis_atp", "events", "--follow", "--json", *args, "--url", redis_url,
             "--namespace", ns], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout or ()],
                                       daemon=True)
        self.reader.start()

    def next(self, timeout: float) -> dict[str, Any]:
        return json.loads(self.lines.get(timeout=timeout))  # type: ignore[no-any-return]

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(10)
        return code, (self.proc.stderr.read() if self.proc.stderr else "")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)  # at the end of the output
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()


def test_events_follow_prints_new_events_until_ctrl_c(redis_url: str, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", HANDLER)
    old = real_tracker.enqueue_task("t", "before", 1)
    ns = real_tracker.namespace
    now, history = Follower(redis_url, ns), Follower(redis_url, ns, "--since", "0")
    try:
        first = history.next(timeout=10)  # --since 0: the kept history first
        assert (first["task_id"], first["identifier"], first["status"]) == (old, "before", "ACCEPTED")
        deadline, seen = time.monotonic() + 10, None
        for i in range(100):  # from now on: enqueue until the follower has started reading
            tid = real_tracker.enqueue_task("t", f"after-{i}", i)
            try:
                seen = now.next(timeout=0.3)
                break
            except queue.Empty:
                assert time.monotonic() < deadline, "events --follow printed nothing"
        assert seen is not None and seen["identifier"].startswith("after-") and seen["status"] == "ACCEPTED"
        assert history.next(timeout=5)["identifier"] == "after-0"
        assert now.interrupt() == (0, "") and history.interrupt() == (0, "")
    finally:
        now.close()
        history.close()
    assert tid >= seen["task_id"]
