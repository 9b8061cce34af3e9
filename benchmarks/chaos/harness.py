"""The run from start to end, its report, and the command line."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis_atp import Tracker
from redis_atp.daemon.fleet import Fleet
from tests.redisserver import RedisServer

from .common import (
    FAULT_EVERY_S,
    GRACE_S,
    HEARTBEAT_S,
    LIVE,
    MAXRESTART,
    TIMEOUT_S,
    TYPES,
    EventLog,
    best_effort,
    new_client,
    retrying,
    start_redis,
)
from .evidence import (
    Evidence,
    Invariant,
    all_terminal,
    counters_exact,
    executions_bounded,
    fencing,
    fleet_healthy,
    keys_bounded,
    memory_flat,
    no_infra_failures,
    no_timeouts,
    nothing_owned,
    read_runs,
    read_tasks,
    reruns_explained,
    scan_worker_logs,
)
from .fleet import Chaos, Monitor, Producer, Proxy, Supervisors, make_items


# ---------------------------------------------------------------------------- the run
@dataclass
class Config:
    minutes: float
    tasks: int
    seed: int
    soak: bool
    drain_s: float
    sample_s: float
    json_out: Path | None
    workdir: Path | None
    keep: bool


@dataclass
class Report:
    config: dict[str, Any]
    workdir: str
    faults: dict[str, int]
    invariants: list[Invariant]
    summary: dict[str, Any]
    events: list[dict[str, Any]]
    samples: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return all(i.held for i in self.invariants)


class Harness:
    """One chaos (or soak) run: setup, fault window, drain, shutdown, checks."""

    def __init__(self, cfg: Config, workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.rng = random.Random(cfg.seed)
        self.events = EventLog()
        self.namespace = f"chaos-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:8]}"
        self.server: RedisServer | None = None
        self.proxy: Proxy | None = None
        self.sups: Supervisors | None = None
        self.chaos: Chaos | None = None
        self.producer: Producer | None = None
        self.monitor: Monitor | None = None

    # -- setup
    def setup(self) -> None:
        (self.workdir / "runs").mkdir(parents=True, exist_ok=True)
        self.server = start_redis()
        self.proxy = Proxy(self.server.port, self.workdir)
        print(f"chaos: redis-server pid {self.server.proc.pid if self.server.proc else '?'} on {self.server.url}, "
              f"proxy {self.proxy.url}, namespace {self.namespace}, logs in {self.workdir}", flush=True)
        admin = Tracker(new_client(self.server.port), self.namespace, max_queue_size=0)
        for name, (handler, _) in TYPES.items():
            admin.register_task_type(name, handler, timeout=TIMEOUT_S, timeret=-1, maxrestart=MAXRESTART)
        admin.client.close()
        self.sups = Supervisors(self.server.url, self.proxy.url, self.namespace, self.workdir, self.events)
        self.chaos = Chaos(self.server, self.namespace, self.sups, self.events, self.rng)
        self.producer = Producer(self.server.port, self.namespace, self.events)
        self.monitor = Monitor(self.server.port, self.namespace, self.sups, self.events, self.cfg.sample_s)
        self.sups.registered = self.monitor.registered
        self.monitor.baseline_memory = int(self.monitor.client.info("memory")["used_memory"])

    def start(self) -> None:
        assert self.producer and self.sups
        items = make_items(self.cfg.tasks, self.rng)
        first = len(items) // 10 if self.cfg.soak else len(items) // 2
        window = self.cfg.minutes * 60
        self.producer.enqueue(items[:first])
        self.events.add("enqueued", f"{first} tasks at the start; {len(items) - first} to trickle in", fault=False)
        self.sups.start(via_proxy=False)
        self.sups.start(via_proxy=True)
        faults = window / (sum(FAULT_EVERY_S) / 2)
        self.producer.trickle(items[first:], max(1, int(faults * (0.95 if self.cfg.soak else 0.8))))

    def tick(self) -> None:
        assert self.chaos and self.sups and self.monitor
        self.chaos.tick()
        self.sups.watch()
        self.monitor.tick()

    # -- phases
    def fault_window(self) -> None:
        assert self.chaos and self.producer
        end = time.monotonic() + self.cfg.minutes * 60
        next_fault = time.monotonic() + 2.0
        while time.monotonic() < end:
            self.tick()
            if time.monotonic() >= next_fault:
                self.producer.release()
                time.sleep(self.rng.uniform(0.05, 0.3))  # the burst lands: the fleet is busy
                self.chaos.inject(self.chaos.next_kind())
                next_fault = time.monotonic() + self.rng.uniform(*FAULT_EVERY_S)
            time.sleep(0.05)
        self.chaos.tick(force=True)
        self.producer.release(1 << 20)  # what is left goes now
        self.events.add("faults_stopped", f"{sum(self.events.faults().values())} faults injected", fault=False)

    def drain(self) -> bool:
        """Wait (bounded) until every task is enqueued and terminal; True if they are."""
        assert self.producer and self.monitor and self.sups
        tracker = self.monitor.tracker
        deadline = time.monotonic() + self.cfg.drain_s
        while time.monotonic() < deadline:
            self.tick()
            counts = best_effort(lambda: [tracker.get_task_type(t).counts for t in TYPES])
            if self.producer.done() and counts is not None and not any(c[k] for c in counts for k in LIVE):
                self.events.add("drained", "every task is terminal", fault=False)
                return True
            time.sleep(0.2)
        self.events.add("drain_timeout", f"tasks still live after {self.cfg.drain_s:.0f}s", fault=False)
        return False

    def shutdown(self) -> None:
        assert self.sups and self.monitor
        best_effort(self.monitor.sample)
        self.sups.stop_all(GRACE_S + 15)
        self.events.add("stopped", "supervisors stopped", fault=False)
        time.sleep(HEARTBEAT_S + 0.5)  # heartbeats of killed supervisors' workers expire

    # -- checks
    def collect(self) -> Evidence:
        assert self.producer and self.monitor and self.sups and self.chaos
        self.producer.close()
        never = self.producer.settle()
        tracker = self.monitor.tracker
        tasks, lost = read_tasks(tracker, sorted(self.producer.ids.values()))
        keys = tracker.keys
        client = self.monitor.client
        owned = {k.decode(): int(client.scard(k)) for k in client.scan_iter(match=keys.owned_prefix + "*")}
        live_workers = [(w.id, w.tasks) for w in retrying(lambda: Fleet(tracker).workers())]
        return Evidence(
            tasks=tasks, lost=lost, never_enqueued=never, refused=self.producer.refused,
            runs=read_runs(self.workdir / "runs"), counts={t: tracker.get_task_type(t).counts for t in TYPES},
            owned=owned, live_workers=live_workers, events=self.events, sups=self.sups,
            killed_pids=self.chaos.killed_pids, worker_log=scan_worker_logs(self.sups),
            samples=self.monitor.samples, soak=self.cfg.soak, expected=len(self.producer.types))

    def check(self, ev: Evidence) -> Report:
        assert self.monitor and self.chaos
        invariants = [all_terminal(ev), no_infra_failures(ev), executions_bounded(ev), reruns_explained(ev),
                      fencing(ev), counters_exact(ev), nothing_owned(ev), no_timeouts(ev), fleet_healthy(ev)]
        if ev.soak:
            invariants += [keys_bounded(ev), memory_flat(ev, self.monitor.baseline_memory)]
        by_name = {i.name: i for i in invariants}
        failed = by_name["no_infra_failures"].numbers["failed_by_infrastructure"]
        summary = {
            "tasks": ev.expected, "executions": by_name["executions_bounded"].numbers["executions"],
            "duplicates": by_name["executions_bounded"].numbers["reruns"],
            "unexplained_duplicates": by_name["reruns_explained"].numbers["unexplained"],
            "lost": len(ev.lost), "failed_by_infrastructure": failed,
            "redis_down_s_max": round(max(self.chaos.redis_down_s, default=0.0), 2),
            "enqueue_retries": self.producer.retries if self.producer else 0,
        }
        cfg = asdict(self.cfg)
        cfg.update(json_out=str(self.cfg.json_out) if self.cfg.json_out else None,
                   workdir=str(self.workdir), namespace=self.namespace)
        return Report(cfg, str(self.workdir), self.events.faults(), invariants, summary, self.events.events,
                      self.monitor.samples)

    def close(self) -> None:
        """Stop everything this run started, whatever state it is in."""
        steps = [None if self.chaos is None else self.chaos.close,
                 None if self.producer is None else self.producer.close,
                 None if self.monitor is None else self.monitor.close,
                 None if self.sups is None else self.sups.kill_all,
                 None if self.proxy is None else self.proxy.close,
                 None if self.server is None else self.server.close]
        for step in steps:
            try:
                if step is not None:
                    step()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"chaos: cleanup step failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def run(cfg: Config) -> Report:
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="redis-atp-chaos-"))
    harness = Harness(cfg, workdir)
    try:
        harness.setup()
        harness.start()
        harness.fault_window()
        harness.drain()
        harness.shutdown()
        report = harness.check(harness.collect())
    finally:
        harness.close()
    return report


# ---------------------------------------------------------------------------- output
def render(report: Report) -> str:
    c = report.config
    lines = [f"chaos {'soak ' if c['soak'] else ''}run: {c['minutes']:g} min of faults, {c['tasks']} tasks, "
             f"seed {c['seed']}; logs and run files: {report.workdir}", "", "faults injected"]
    lines += [f"  {kind:<18} {n:>5}" for kind, n in report.faults.items()]
    lines += [f"  {'total':<18} {sum(report.faults.values()):>5}", "", "invariants"]
    for inv in report.invariants:
        nums = ", ".join(f"{k}={v}" for k, v in inv.numbers.items())
        lines.append(f"  {'HELD  ' if inv.held else 'BROKEN'} {inv.name:<20} {nums}")
        if not inv.held or inv.name == "fleet_healthy":
            lines += [f"         - {e}" for e in inv.examples]
    s = report.summary
    lines += ["", "summary  " + "  ".join(f"{k} {v}" for k, v in s.items()),
              f"RESULT: {'PASS' if report.passed else 'FAIL'}"]
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    return {"config": report.config, "workdir": report.workdir, "passed": report.passed, "faults": report.faults,
            "invariants": [asdict(i) for i in report.invariants], "summary": report.summary,
            "events": report.events, "samples": report.samples}


def parse_args(argv: list[str] | None) -> Config:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, help="fault window (default 2; --soak: $SOAK_MINUTES or 30)")
    ap.add_argument("--tasks", type=int, help="tasks to enqueue (default 3000; --soak: 200 per minute, >= 3000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and the task mix")
    ap.add_argument("--soak", action="store_true", help="trickle tasks over the whole run, sample memory and keys")
    ap.add_argument("--drain", type=float, default=120.0, help="seconds the fleet gets to finish after the faults")
    ap.add_argument("--sample-every", type=float, help="seconds between samples (default 30 soak, 5 otherwise)")
    ap.add_argument("--json", type=Path, help="write the report as JSON here")
    ap.add_argument("--workdir", type=Path, help="directory for logs and run files (kept); default: a temp dir")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir after a passing run")
    a = ap.parse_args(argv)
    minutes = a.minutes if a.minutes is not None else (
        float(os.environ.get("SOAK_MINUTES", "30")) if a.soak else 2.0)
    tasks = a.tasks if a.tasks is not None else (max(3000, int(200 * minutes)) if a.soak else 3000)
    if minutes <= 0 or tasks <= 0:
        ap.error("--minutes and --tasks must be positive")
    return Config(minutes=minutes, tasks=tasks, seed=a.seed, soak=a.soak, drain_s=a.drain,
                  sample_s=a.sample_every or (30.0 if a.soak else 5.0), json_out=a.json, workdir=a.workdir,
                  keep=a.keep)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run(cfg)
    except KeyboardInterrupt:
        print("chaos: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print()
    print(render(report), flush=True)
    data = to_json(report)
    if cfg.json_out:
        cfg.json_out.write_text(json.dumps(data, indent=2, default=str))
    if report.passed and not cfg.keep and cfg.workdir is None:
        shutil.rmtree(report.workdir, ignore_errors=True)
    else:
        (Path(report.workdir) / "report.json").write_text(json.dumps(data, indent=2, default=str))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
