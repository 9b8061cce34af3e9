"""Worker metrics (``redis-atp worker --metrics-port P``): a real fleet runs N tasks and
its histograms count every run; off, the hooks are no-ops and nothing imports
prometheus_client."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from redis_atp import Status, Tracker  # noqa: E402
from redis_atp.cli import main  # noqa: E402
from redis_atp.daemon.metrics import outcome, wait_from_log  # noqa: E402
from redis_atp.daemon.runs import Ended  # noqa: E402
from redis_atp.models import StartedTask  # noqa: E402

from . import fleetproc  # noqa: E402
from .redisserver import free_port  # noqa: E402


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.real_redis
def test_histograms_count_every_run_of_a_real_fleet(redis_url: str, real_tracker: Tracker,
                                                    env: dict[str, Any]) -> None:
    t, ns = real_tracker, real_tracker.namespace
    t.register_task_type("ok", "handlers.count", timeret=600)
    t.register_task_type("bad", "handlers.boom", timeret=600)
    t.register_task_type("flaky", "handlers.boom", timeret=600, retries=1, retry_delay=0.01)
    port = free_port()
    worker = fleetproc.start(env, redis_url, ns, "-n", "2", "--metrics-port", str(port))
    n, m = 40, 6
    t.enqueue_many([("ok", f"ok-{i}", {"fx": env["fx"], "i": i}) for i in range(n)])
    t.enqueue_many([("bad", f"bad-{i}", {"i": i}) for i in range(m)])
    t.enqueue_task("flaky", "flaky-1", {"i": 1})
    fleetproc.wait_until(lambda: fleetproc.all_ended(t, "ok", "bad", "flaky"), 30, "every task to end")

    def counted() -> Any:
        s = scrape(port)
        runs = {(ty, o): value(s, "redis_atp_task_run_seconds_count", namespace=ns, type=ty, outcome=o)
                for ty, o in (("ok", "finished"), ("bad", "failed"), ("flaky", "retried"), ("flaky", "failed"))}
        waits = {ty: value(s, "redis_atp_task_wait_seconds_count", namespace=ns, type=ty) for ty in ("ok", "bad")}
        done = runs == {("ok", "finished"): n, ("bad", "failed"): m, ("flaky", "retried"): 1,
                        ("flaky", "failed"): 1} and waits == {"ok": n, "bad": m}
        return s if done else None

    s = fleetproc.wait_until(counted, 15, "the histograms to count every run")
    assert value(s, "redis_atp_task_retries_total", namespace=ns, type="flaky") == 1
    assert value(s, "redis_atp_task_run_seconds_bucket", namespace=ns, type="ok", outcome="finished", le="+Inf") == n
    assert value(s, "redis_atp_worker_processes", namespace=ns) == 2
    assert value(s, "redis_atp_worker_resident_memory_bytes", namespace=ns) > 0
    assert value(s, "process_cpu_seconds_total") > 0  # the supervisor's own process metrics
    labels = {k for name, key in s for k, _ in key if name.startswith("redis_atp_")}
    assert labels <= {"namespace", "type", "outcome", "reason", "le"}
    assert f"metrics on http://127.0.0.1:{port}/metrics" in worker.output()


@pytest.mark.real_redis
def test_a_killed_worker_process_counts_a_recovery(redis_url: str, real_tracker: Tracker,
                                                   env: dict[str, Any]) -> None:
    t, ns = real_tracker, real_tracker.namespace
    t.register_task_type("die", "handlers.die", maxrestart=0, timeret=600)
    port = free_port()
    fleetproc.start(env, redis_url, ns, "-n", "1", "--metrics-port", str(port))
    tid = t.enqueue_task("die", "d-1", {"fx": env["fx"], "i": 1})
    fleetproc.wait_until(lambda: t.get_task_status(tid)[0] == Status.FAILED, 20, "the task to fail")
    fleetproc.wait_until(lambda: value(scrape(port), "redis_atp_task_recoveries_total", namespace=ns, type="die",
                                       reason="worker_exited") == 1, 10, "the recovery to be counted")


def test_metrics_port_without_prometheus_client_is_a_one_line_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import redis_atp.cli.fleet as fleet

    monkeypatch.setattr(fleet, "find_spec", lambda name: None)
    assert main(["worker", "--metrics-port", "9999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'redis-atp[metrics]'" in err


def test_off_the_hooks_are_no_ops_and_prometheus_is_never_imported() -> None:
    code = ("import sys, redis_atp.cli, redis_atp.worker; from redis_atp.daemon import metrics, process; "
            "import json; print(json.dumps(['prometheus_client' in sys.modules, type(metrics.hooks).__name__]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, "Hooks"]


def _record(ms: int, status: Status, message: str = "") -> bytes:
    return f"{ms // 1000}.{ms % 1000:03d} {int(status)} {message}".encode()


def test_wait_time_from_the_log() -> None:
    base = 1_800_000_000_000
    plain = [_record(base, Status.ACCEPTED), _record(base + 250, Status.SCHEDULED), _record(base + 250, Status.RUNNING)]
    assert wait_from_log(plain) == pytest.approx(0.25)
    handed = plain[:2] + [_record(base + 400, Status.RUNNING), _record(base + 900, Status.RUNNING, "step 2")]
    assert wait_from_log(handed) == pytest.approx(0.4)  # a hand-off: claimed at once, started later
    retried = plain + [_record(base + 300, Status.ACCEPTED, "retry 1 of 3 in 2.000 s: ValueError: x"),
                       _record(base + 2500, Status.SCHEDULED), _record(base + 2500, Status.RUNNING)]
    assert wait_from_log(retried) == pytest.approx(0.2)  # counted from its due time
    assert wait_from_log(plain[:1]) is None and wait_from_log([]) is None


def test_outcome_labels() -> None:
    task = StartedTask(1, 1, "t", "i", "h", None)
    assert outcome(Ended(task, Status.FINISHED, "", 0.0), 1) == "finished"
    assert outcome(Ended(task, Status.FAILED, "x", 0.0), 1) == "failed"
    assert outcome(Ended(task, Status.FAILED, "x", 0.0, "auto"), 2) == "retried"
    assert outcome(Ended(task, Status.FINISHED, "", 0.0), 0) == "finished"
    assert outcome(Ended(task, Status.FINISHED, "", 0.0), -5) == "lost"


def test_an_empty_file_of_a_process_killed_as_it_started_does_not_break_a_scrape(tmp_path: Any) -> None:
    from redis_atp.daemon.metrics import _Merged

    (tmp_path / "histogram_4242.db").write_bytes(b"")  # opened, never sized: its process died in between
    assert list(_Merged(str(tmp_path)).collect()) == []
