"""The CLI driven as a user drives it: a subprocess against a throwaway Redis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from redis_atp import Tracker
from redis_atp.worker import DEFAULT_THREADS

from .conftest import delete_namespace, runs
from .fleetproc import handler_dir


def atp(*args: str, url: str | None = None, ns: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = [sys.executable, "-m", "redis_atp", *args]
    if url:
        full += ["--url", url]
    if ns:
        full += ["--namespace", ns]
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


@pytest.fixture
def cli(redis_url: str, real_tracker: Tracker) -> Any:
    ns = real_tracker.namespace

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return atp(*args, url=redis_url, ns=ns)
    return run


def test_types_enqueue_show_lifecycle(cli: Any, real_tracker: Tracker) -> None:
    r = cli("types", "register", "render", "os.path.join", "--timeout", "60", "--timeret", "600")
    assert r.returncode == 0 and "registered render -> os.path.join" in r.stdout
    r = cli("types", "--json")
    assert json.loads(r.stdout)[0]["timeout"] == 60
    r = cli("enqueue", "render", "job 1", "--input", '{"scale": 2}', "--message", "from the cli")
    assert r.returncode == 0 and r.stdout.strip() == "enqueued task 1 (render::job 1)"
    assert json.loads(cli("enqueue", "render", "job-2", "--json").stdout) == {"id": 2}
    [run] = runs(real_tracker, "w")
    run.storeResponse("<ok/>", "text/xml")
    run.setSuccess("done")
    r = cli("show", "render", "job 1")
    assert r.returncode == 0
    for line in ("task 1  render::job 1", "status     FINISHED (5)",
                 "owner      -   run 1   restarts 0   retries 0   (last run's owner w)",
                 'input      {"scale": 2}', "response   5 bytes, text/xml", "retention  expires in"):
        assert line in r.stdout
    assert "ACCEPTED   from the cli" in r.stdout and "FINISHED   done" in r.stdout
    shown = json.loads(cli("show", "--id", "1", "--json").stdout)
    assert shown["status"] == "FINISHED" and [e["status"] for e in shown["log"]] == ["ACCEPTED", "SCHEDULED",
                                                                                     "FINISHED"]
    assert cli("response", "render", "job 1").stdout == "<ok/>\n"
    assert json.loads(cli("response", "--id", "1", "--json").stdout)["response"] == "<ok/>"


def test_response_to_file(cli: Any, real_tracker: Tracker, tmp_path: Path) -> None:
    real_tracker.register_task_type("t", "os.path.join")
    tid = real_tracker.enqueue_task("t", "x", 1)
    real_tracker.set_task_response(tid, b"\x89PNG\x00\xff", "image/png")
    out = tmp_path / "r.png"
    r = cli("response", "t", "x", "-o", str(out))
    assert r.returncode == 0 and "wrote 6 bytes (image/png)" in r.stdout
    assert out.read_bytes() == b"\x89PNG\x00\xff"
    real_tracker.enqueue_task("t", "none", 1)
    r = cli("response", "t", "none")
    assert r.returncode == 1 and "has no response" in r.stderr


def test_info_text_and_json(cli: Any, real_tracker: Tracker, redis_url: str, tmp_path: Path) -> None:
    real_tracker.register_task_type("t", "handlers.count", timeout=0.01)
    real_tracker.enqueue_task("t", "a", {"fx": "unused", "i": 0})
    real_tracker.enqueue_task("t", "b", 1)
    real_tracker.dequeue_task("manual")
    import time

    time.sleep(0.05)
    r = cli("info")
    assert r.returncode == 0
    assert "queue      1 waiting: 1 ready, 0 delayed (limit 64)" in r.stdout
    assert "overdue    1 live tasks past their deadline" in r.stdout
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines() if line.strip()}
    assert rows["TYPE"] == ["ACCEPTED", "SCHEDULED", "RUNNING", "PAUSED", "FINISHED*", "FAILED*"]
    assert rows["t"] == ["1", "1", "0", "0", "0", "0"]
    data = json.loads(cli("info", "--json").stdout)
    assert data["queue"] == {"size": 1, "limit": 64, "ready": 1, "delayed": 0, "parked": 0} and data["overdue"] == 1
    assert data["types"]["t"]["scheduled"] == 1 and data["workers"] == []
    r = cli("zombies")
    assert r.returncode == 0 and "t::a" in r.stdout and "ACCEPTED" in r.stdout


def test_info_lists_live_workers(cli: Any, real_tracker: Tracker, redis_url: str, tmp_path: Path) -> None:
    worker = subprocess.Popen([sys.executable, "-m", "redis_atp", "worker", "--url", redis_url, "--namespace",
                               real_tracker.namespace, "-n", "2", "-p", str(handler_dir(tmp_path))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from .fleetproc import wait_until

        def workers() -> list[dict[str, Any]]:
            return [w for w in json.loads(cli("info", "--json").stdout)["workers"] if w["pid"]]
        live = wait_until(lambda: len(workers()) == 2 and workers(), 20, "two registered workers")
        assert {w["host"] for w in live} == {os.uname().nodename} and all(w["threads"] == DEFAULT_THREADS for w in live)
        assert "WORKER" in cli("info").stdout
    finally:
        worker.terminate()
        assert worker.wait(20) == 0


def test_requeue_delete_retire(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", "os.path.join", timeret=-1)
    a = real_tracker.enqueue_task("t", "a", 1)
    real_tracker.stop_task_failure(a, "cancelled")
    assert cli("requeue", "t", "a").stdout.strip() == f"task {a} is back in the queue"
    assert real_tracker.get_task_status(a)[1] == "ACCEPTED"
    assert cli("delete", "--id", str(a)).stdout.strip() == f"deleted task {a}"
    assert cli("retire").stdout.strip() == "nothing to retire"
    r = cli("types", "unregister", "t")
    assert r.returncode == 0 and r.stdout.strip() == "unregistered t"


@pytest.mark.parametrize("args, code, message", [
    (("enqueue", "nope", "x"), 1, "TaskTypeNotFound: task 'nope'::'x': task type is not registered"),
    (("enqueue", "t", "x", "--input", "{bad"), 2, "--input is not valid JSON"),
    (("show", "t", "missing"), 1, "TaskNotFound: task 't'::'missing' does not exist"),
    (("show", "--id", "999"), 1, "TaskNotFound: task 999 does not exist"),
    (("show",), 2, "give TYPE IDENTIFIER, or --id ID"),
    (("show", "t", "x", "--id", "1"), 2, "not both"),
    (("types", "unregister", "t"), 1, "TaskTypeInUse"),
    (("enqueue", "t", "x"), 1, "DuplicateTask"),
    (("enqueue", "t", "y" * 5000), 2, "limit is 4096"),
])
def test_errors_are_one_line_with_exit_codes(cli: Any, real_tracker: Tracker, args: tuple[str, ...], code: int,
                                             message: str) -> None:
    real_tracker.register_task_type("t", "os.path.join")
    real_tracker.enqueue_task("t", "x", 1)
    r = cli(*args)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_unreachable_redis_masks_the_password() -> None:
    r = atp("info", url="redis://admin:s3cret-pw@127.0.0.1:1/0")
    assert r.returncode == 1
    assert r.stderr.startswith("redis-atp: error: cannot reach Redis at redis://admin:***@127.0.0.1:1/0")
    assert "s3cret-pw" not in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_usage_errors_exit_2() -> None:
    assert atp().returncode == 2
    assert atp("bogus").returncode == 2
    assert atp("worker", "-n", "0").returncode == 2


def test_demo_on_a_given_redis(redis_url: str, namespace: str) -> None:
    r = atp("demo", "--tasks", "200", url=redis_url, ns=namespace, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"redis-atp demo: 200 tasks, 2 worker processes, namespace '{namespace}', Redis at {redis_url}" in r.stdout
    assert "finished         198" in r.stdout and "failed           2 (multiples of 97" in r.stdout
    assert re.search(r"^\$ \S*redis-atp show demo item-97$", r.stdout, re.M)  # as this user can run it
    assert "FAILED     ValueError: 97 is a multiple" in r.stdout
    assert f"redis-cli -h 127.0.0.1 -p {redis_url.rsplit(':', 1)[1].split('/')[0]} HGETALL" in r.stdout
    t = Tracker.from_url(redis_url, namespace)
    try:
        assert t.get_task_type("demo").counts["finished_total"] == 198
        assert t.get_task_response("demo", "item-2")[1] == "application/json"
    finally:
        t.unregister_task_type("demo", force=True)
        t.close()


def test_demo_on_embedded_fakeredis() -> None:
    r = atp("demo", "--tasks", "120", "--embedded", "fakeredis", env={"REDIS_ATP_URL": ""}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "embedded fakeredis TCP server" in r.stdout and "as asked" in r.stdout
    assert "no redis-server installed" not in r.stdout  # it is installed: fakeredis was asked for
    assert "finished         119" in r.stdout and "fleet exit code  0" in r.stdout
    assert "the embedded Redis stops with the demo" in r.stdout and "--keep" in r.stdout


def test_info_shows_per_shard_figures(redis_url: str, namespace: str) -> None:
    t = Tracker.from_url(redis_url, namespace, max_queue_size=0, shards=4)
    try:
        t.register_task_type("t", "os.path.join")
        t.enqueue_many([("t", f"i{i}", i) for i in range(40)])
        data = json.loads(atp("info", "--json", "--shards", "4", url=redis_url, ns=namespace).stdout)
        assert [s["prefix"] for s in data["shards"]] == [f"atp:{{{namespace}}}:"] + [
            f"atp:{{{namespace}/{i}}}:" for i in range(1, 4)]
        assert sum(s["queue"] for s in data["shards"]) == data["queue"]["size"] == 40
        text = atp("info", "--shards", "4", url=redis_url, ns=namespace).stdout
        assert "SHARD" in text and f"atp:{{{namespace}/3}}:" in text
        r = atp("info", url=redis_url, ns=namespace)  # a tracker with the wrong shard count is refused
        assert r.returncode == 2 and "has 4 shards" in r.stderr
    finally:
        t.unregister_task_type("t", force=True)
        t.close()


# ---------------------------------------------------------------- a new user's first hour
def test_version() -> None:
    r = atp("--version")
    assert r.returncode == 0 and r.stdout.startswith("redis-atp ")


def test_every_flag_has_help() -> None:
    from redis_atp.cli import build_parser

    def walk(parser: Any) -> Any:
        for action in parser._actions:
            yield parser.prog, action
            for sub in (getattr(action, "choices", None) or {}).values() if action.nargs == "A..." else ():
                yield from walk(sub)

    missing = [f"{prog} {a.option_strings or a.dest}" for prog, a in walk(build_parser())
               if a.help is None and a.dest not in ("help", "version")]
    assert missing == []
    assert build_parser()._subparsers._group_actions[0].choices["worker"].description  # type: ignore[union-attr]


def test_errors_as_json_under_json(cli: Any) -> None:
    r = cli("show", "--id", "99", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["type"] == "TaskNotFound"


def test_types_register_changes_only_what_it_is_given(cli: Any, real_tracker: Tracker) -> None:
    assert cli("types", "register", "t", "os.path.join", "--timeout", "60", "--maxrestart", "5").returncode == 0
    assert cli("types", "register", "t", "--timeret", "30").returncode == 0
    t = real_tracker.get_task_type("t")
    assert (t.handler, t.timeout, t.timeret, t.maxrestart) == ("os.path.join", 60, 30, 5)
    r = cli("types", "register", "new")
    assert r.returncode == 2 and "HANDLER" in r.stderr


def test_enqueue_input_from_a_file_or_stdin(cli: Any, real_tracker: Tracker, redis_url: str,
                                            tmp_path: Path) -> None:
    cli("types", "register", "t", "os.path.join")
    big = {"rows": list(range(20_000))}
    (tmp_path / "in.json").write_text(json.dumps(big))
    assert cli("enqueue", "t", "file", "--input", f"@{tmp_path / 'in.json'}").returncode == 0
    r = subprocess.run([sys.executable, "-m", "redis_atp", "enqueue", "t", "stdin", "--input", "-", "--url", redis_url,
                        "--namespace", real_tracker.namespace], input='{"a": 1}', capture_output=True, text=True)
    assert r.returncode == 0
    assert real_tracker.get_task_input(real_tracker.get_task_id("t", "file")) == big
    assert real_tracker.get_task_input(real_tracker.get_task_id("t", "stdin")) == {"a": 1}


@pytest.mark.parametrize("bad", ["NaN", "1e400", '{"x": -Infinity}'])
def test_non_finite_json_numbers_are_refused(cli: Any, real_tracker: Tracker, bad: str) -> None:
    cli("types", "register", "t", "os.path.join")
    r = cli("enqueue", "t", "x", "--input", bad)
    assert r.returncode == 2 and real_tracker.get_queue_size() == 0


def test_hostile_identifiers_and_bytes_inputs_are_shown_unambiguously(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", "os.path.join")
    tid = real_tracker.enqueue_task("t", "evil\nstatus     FINISHED (5)\x1b[2J", {"blob": b"\x00\xff", "s": "b'x'"})
    r = cli("show", "--id", str(tid))
    assert r.returncode == 0
    assert "\x1b" not in r.stdout and "evil\\nstatus" in r.stdout
    assert [line for line in r.stdout.splitlines() if line.startswith("status")] == ["status     ACCEPTED (1)"]
    shown = json.loads(cli("show", "--id", str(tid), "--json").stdout)
    assert shown["input"] == {"blob": {"$bytes": "AP8="}, "s": "b'x'"}


def test_key_prints_a_task_s_key_names(cli: Any, real_tracker: Tracker) -> None:
    from redis_atp.keys import Keys

    real_tracker.register_task_type("t", "os.path.join")
    tid = real_tracker.enqueue_task("t", "job 1", None)
    data = json.loads(cli("key", "t", "job 1", "--json").stdout)
    assert data["task"] == real_tracker.keys.task(Keys.task_digest(b"t", b"job 1"))
    assert data["id"] == tid and real_tracker.client.hget(data["id_bucket"], str(tid)) == data["digest"].encode()
    assert real_tracker.client.exists(data["task"])


def test_show_of_a_requeued_task_names_no_current_owner(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", "os.path.join")
    tid = real_tracker.enqueue_task("t", "x", None)
    runs(real_tracker, "old-worker")
    real_tracker.reenqueue_task(tid)
    r = cli("show", "--id", str(tid))
    assert "owner      -" in r.stdout and "last run's owner old-worker" in r.stdout


@pytest.mark.parametrize("url", ["http://localhost:6379", "localhost:6379"])
def test_a_bad_url_scheme_lists_every_form(url: str) -> None:
    r = atp("info", url=url)
    assert r.returncode == 2 and "redis+cluster://" in r.stderr and "redis+sentinel://" in r.stderr


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/mymaster"])
def test_unreachable_cluster_and_sentinel_are_one_clear_line(url: str) -> None:
    r = atp("info", url=url)
    assert r.returncode == 1
    assert r.stderr.startswith("redis-atp: error: cannot reach Redis at") and len(r.stderr.splitlines()) == 1
    assert "internal error" not in r.stderr and len(r.stderr) < 300


def test_a_missing_path_is_warned_about(redis_url: str, namespace: str) -> None:
    r = atp("worker", "--burst", "-n", "1", "-p", "/no/such/dir", url=redis_url, ns=namespace)
    assert r.returncode == 0 and "-p /no/such/dir: no such directory" in r.stderr


def test_config_sets_the_limit_for_every_producer(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", "os.path.join")
    assert cli("config", "set", "max-queue-size", "1").returncode == 0
    assert json.loads(cli("config", "--json").stdout)["max_queue_size"] == 1
    assert cli("enqueue", "t", "a").returncode == 0
    r = cli("enqueue", "t", "b")
    assert r.returncode == 1 and "limit 1" in r.stderr and "1 tasks waiting" in r.stderr


def test_the_readme_library_example_runs(redis_url: str, namespace: str) -> None:
    """The front door's first example, as written, against a real Redis."""
    import redis as redis_py

    text = (Path(__file__).parent.parent / "README.md").read_text()
    code = text.split("## Library", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = code.replace("redis.Redis()", f"redis.Redis.from_url({redis_url!r})")
    code = code.replace('namespace="orders"', f"namespace={namespace!r}")
    seen: list[str] = []
    exec(compile(code, "README.md", "exec"), {"print": lambda *a: seen.append(" ".join(map(str, a)))})
    assert seen and "ACCEPTED" in seen[-1] and not any("not enqueued" in line for line in seen)
    delete_namespace(redis_py.Redis.from_url(redis_url), namespace)


def test_enqueue_with_a_delay_or_a_time_and_types_with_retries(cli: Any, real_tracker: Tracker) -> None:
    r = cli("types", "register", "t", "redis_atp.tracker.dummyHandler", "--retries", "3", "--retry-delay", "500ms",
            "--retry-max-delay", "2m")
    assert r.returncode == 0, r.stderr
    t = real_tracker.get_task_type("t")
    assert (t.retries, t.retry_delay, t.retry_backoff, t.retry_max_delay) == (3, 0.5, 2.0, 120.0)
    assert cli("types", "register", "t", "--timeout", "60").returncode == 0
    assert real_tracker.get_task_type("t").retries == 3  # what is not given keeps its value
    r = cli("enqueue", "t", "a", "--delay", "2m", "--json")
    due = json.loads(r.stdout)["due_ms"] / 1000
    assert 115 < due - time.time() < 125
    assert cli("enqueue", "t", "b", "--at", "2030-01-01T00:00:00").returncode == 0
    assert real_tracker.describe_task(real_tracker.get_task_id("t", "b"))["due_ms"] == 1893456000000
    r = cli("enqueue", "t", "c", "--delay", "soon")
    assert r.returncode == 2 and "not a duration" in r.stderr
    r = cli("enqueue", "t", "d", "--delay", "1s", "--at", "2030-01-01")
    assert r.returncode == 2
    info = json.loads(cli("info", "--json").stdout)
    assert info["queue"] == {"size": 2, "limit": 64, "ready": 0, "delayed": 2, "parked": 0}
    assert "retries 0" in cli("show", "t", "a").stdout


def test_schedules_add_list_remove(cli: Any, real_tracker: Tracker) -> None:
    assert cli("types", "register", "t", "redis_atp.tracker.dummyHandler").returncode == 0
    r = cli("schedules", "add", "nightly", "t", "--cron", "0 3 * * *", "--tz", "Europe/Vienna", "--input", '{"a": 1}')
    assert r.returncode == 0 and "schedule nightly: next tick" in r.stdout, r.stderr
    assert cli("schedules", "add", "often", "t", "--every", "5m", "--overlap", "allow").returncode == 0
    listed = json.loads(cli("schedules", "--json").stdout)
    assert [(s["name"], s["cron"], s["every"], s["overlap"]) for s in listed] == [
        ("nightly", "0 3 * * *", None, "skip"), ("often", None, 300.0, "allow")]
    assert listed[0]["input"] == {"a": 1}
    assert "every 300s" in cli("schedules").stdout
    r = cli("schedules", "add", "bad", "t", "--cron", "61 * * * *")
    assert r.returncode == 2 and "bad cron expression" in r.stderr
    assert cli("schedules", "add", "both", "t").returncode == 2  # --cron or --every is required
    assert cli("schedules", "rm", "nightly").returncode == 0
    r = cli("schedules", "rm", "nightly")
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert [s.name for s in real_tracker.list_schedules()] == ["often"]


def test_wait_exits_by_the_task_s_end(cli: Any, real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", "redis_atp.tracker.dummyHandler")
    ok, bad, open_ = (real_tracker.enqueue_task("t", n, 0) for n in ("ok", "bad", "open"))
    real_tracker.stop_task_success(ok)
    real_tracker.stop_task_failure(bad)
    r = cli("wait", "t", "ok", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "FINISHED"
    assert cli("wait", "--id", str(bad)).returncode == 1
    r = cli("wait", "t", "open", "--timeout", "0.2")
    assert r.returncode == 1 and "did not end within" in r.stdout
    assert open_ > 0
