"""Prometheus metrics of a worker fleet: ``redis-atp worker --metrics-port P``.

Off (the default), :data:`hooks` is a :class:`Hooks` whose every method does nothing,
and ``prometheus_client`` is never imported: the worker's path pays one call of an
empty method per run. :func:`serve` turns them on before the supervisor forks.

**Multiprocess mode, not reports to the supervisor.** The fleet is a supervisor
that forks worker processes, and a run ends in the child that ran it. We use
``prometheus_client``'s multiprocess mode: :func:`serve` makes a temporary
``PROMETHEUS_MULTIPROC_DIR`` (removed at exit), each child writes its samples to
memory-mapped files of its own there (a few microseconds per run, no I/O wait, no
IPC), and the supervisor's HTTP server merges the files at scrape time. Children
reporting to the supervisor over a pipe would need a reader thread and a wire
format of our own, and would lose what a child counted when it is killed; with
files, a dead child's counts stay in the totals, so counters never go backwards
when the supervisor replaces a process.

**Wait time** is read from the task's log, whose records carry the Redis clock:
from the record that last made the task ACCEPTED (enqueue, re-enqueue, retry,
recovery; a retry's record says its delay, which is added: the wait starts at its
due time) to the RUNNING record of the run. A thread of each child reads the logs
of the runs it started (script ``read_task``, pipelined for all starts since its
last read), so the run's own path waits for nothing. A task enqueued with
``delay=``/``eta=`` counts from its enqueue (its due time is not kept once it
passed), and a run whose log is gone by the time it is read (deleted at once) is
not counted.

Labels are bounded: ``namespace``, ``type``, ``outcome``, ``reason``; never a task
id, an identifier or a host name.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import Code
from ..models import StartedTask, parse_record
from ..protocol.admin import Recovered
from ..protocol.requests import Batch, Op
from ..status import Status
from .config import WorkerConfig
from .runs import Ended

if TYPE_CHECKING:
    from ..client import Tracker

__all__ = ["Hooks", "hooks", "serve", "MetricsServer", "wait_from_log", "outcome", "BUCKETS"]

log = logging.getLogger("redis_atp.worker")

#: Histogram buckets (seconds) of wait and run times: 5 ms to an hour.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Most logs one read of the wait-time thread asks for.
READ_BATCH = 200
_RETRY = re.compile(r"retry \d+ of \d+ in ([0-9.]+) s")


class Hooks:
    """What the worker tells the metrics; this base does nothing (metrics off)."""

    def started(self, task: StartedTask) -> None:
        """A run's handler is about to start."""

    def ended(self, ended: Ended, ending: int) -> None:
        """Redis recorded a run's end (``ending``: the ``advance``/``finish`` reply code)."""

    def cancelled(self, task: StartedTask, started: float) -> None:
        """A run stopped because its task was cancelled (``started``: monotonic start)."""

    def recovered(self, tasks: Iterable[Recovered], reason: str) -> None:
        """Tasks went back to the queue (or FAILED) for ``reason``, against ``maxrestart``."""


#: The hooks the worker calls; replaced by :func:`serve`.
hooks: Hooks = Hooks()


def outcome(ended: Ended, ending: int) -> str:
    """The ``outcome`` label of a run: ``finished``/``failed`` (as the handler returned or
    raised; a handler that ended its task itself is labelled by how it returned),
    ``retried`` (failed, a retry scheduled) or ``lost`` (the run no longer owned its
    task: recovered, cancelled or deleted meanwhile)."""
    if ending < 0:
        return "lost"
    if ending == 2:
        return "retried"
    return "finished" if ended.outcome is Status.FINISHED else "failed"


def wait_from_log(records: list[bytes]) -> float | None:
    """Seconds from the record that last made the task ACCEPTED (plus a retry's delay)
    to the RUNNING record of the run that followed it; None if the log does not show one."""
    parsed = [parse_record(r) for r in records if r]
    claim = next((i for i in range(len(parsed) - 1, -1, -1) if parsed[i][1][0] == Status.SCHEDULED), None)
    if claim is None:
        return None
    start = next((p[0] for p in parsed[claim + 1:] if p[1][0] == Status.RUNNING), None)
    queued = next((p for p in reversed(parsed[:claim]) if p[1][0] == Status.ACCEPTED), None)
    if start is None or queued is None:
        return None
    retry = _RETRY.match(queued[2])
    due = queued[0].timestamp() + (float(retry[1]) if retry else 0.0)
    return max(0.0, start.timestamp() - due)


class _WaitReader:
    """The thread of a worker process that reads started runs' logs for their wait times.
    Started in each process by its first run (the supervisor forks after :func:`serve`)."""

    def __init__(self, tracker: Callable[[], Tracker], observe: Callable[[str, float], None]) -> None:
        self._tracker = tracker
        self._observe = observe
        self._cond = threading.Condition()
        self._pending: list[StartedTask] = []
        self._pid = -1

    def add(self, task: StartedTask) -> None:
        with self._cond:
            if self._pid != os.getpid():  # the first run of this process
                self._pid, self._pending = os.getpid(), []
                threading.Thread(target=self._loop, name="metrics-waits", daemon=True).start()
            self._pending.append(task)
            self._cond.notify()

    def _loop(self) -> None:
        tracker = self._tracker()
        ns = tracker.ns
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending[:READ_BATCH], self._pending[READ_BATCH:]
            try:
                replies = tracker.io.run(_read_logs(ns, batch))
            except Exception as exc:  # noqa: BLE001 - metrics never stop a worker; these waits go uncounted
                log.debug("metrics: cannot read %d logs for wait times: %s", len(batch), exc)
                continue
            for task, reply in zip(batch, replies, strict=True):
                wait = wait_from_log(reply) if isinstance(reply, list) else None
                if wait is not None:
                    self._observe(task.type, wait)


def _read_logs(ns: Any, tasks: list[StartedTask]) -> Op[list[Any]]:
    """The logs of ``tasks`` in one pipelined round trip (None for a task that is gone)."""
    replies = yield Batch([ns.call("read_task", t.task_id, "", "", "", "log", shard=ns.shard_of_id(t.task_id))
                           for t in tasks])
    return [r if not (isinstance(r, int) and r == Code.TASK_NOT_FOUND) else None for r in replies]


class _Prometheus(Hooks):
    """The hooks with metrics on: histograms and counters in multiprocess mode. Every
    write holds ``lock``, which a fork waits for, so no child starts with a lock of
    ``prometheus_client`` held by another thread of its parent."""

    def __init__(self, config: WorkerConfig, tracker: Callable[[], Tracker]) -> None:
        from prometheus_client import Counter, Histogram

        self.ns = config.namespace
        self.lock = threading.Lock()
        os.register_at_fork(before=self.lock.acquire, after_in_parent=self.lock.release,
                            after_in_child=self.lock.release)
        self.run_time = Histogram("redis_atp_task_run_seconds", "Run time of a task's handler, start to end",
                                  ["namespace", "type", "outcome"], buckets=BUCKETS, registry=None)
        self.wait_time = Histogram("redis_atp_task_wait_seconds", "Time from queued (or due) to the run's start",
                                   ["namespace", "type"], buckets=BUCKETS, registry=None)
        self.retries = Counter("redis_atp_task_retries", "Failed runs whose task was scheduled to run again",
                               ["namespace", "type"], registry=None)
        self.recoveries = Counter("redis_atp_task_recoveries", "Tasks recovered against maxrestart "
                                  "(worker exited, heartbeat lost, timeout, hard timeout)",
                                  ["namespace", "type", "reason"], registry=None)
        self.cancellations = Counter("redis_atp_task_cancellations", "Runs stopped because their task was cancelled",
                                     ["namespace", "type"], registry=None)
        self.waits = _WaitReader(tracker, self._wait)

    def _wait(self, type_name: str, seconds: float) -> None:
        with self.lock:
            self.wait_time.labels(self.ns, type_name).observe(seconds)

    def started(self, task: StartedTask) -> None:
        self.waits.add(task)

    def ended(self, ended: Ended, ending: int) -> None:
        label = outcome(ended, ending)
        with self.lock:
            self.run_time.labels(self.ns, ended.task.type, label).observe(ended.duration)
            if label == "retried":
                self.retries.labels(self.ns, ended.task.type).inc()

    def cancelled(self, task: StartedTask, started: float) -> None:
        with self.lock:
            self.cancellations.labels(self.ns, task.type).inc()
            self.run_time.labels(self.ns, task.type, "cancelled").observe(time.monotonic() - started)

    def recovered(self, tasks: Iterable[Recovered], reason: str) -> None:
        with self.lock:
            for _, type_name, _, _ in tasks:
                self.recoveries.labels(self.ns, type_name, reason).inc()


class MetricsServer:
    """The supervisor's ``/metrics`` endpoint over the fleet's multiprocess directory;
    ``close()`` stops it and removes the directory. Without a port, it does nothing."""

    def __init__(self, server: Any = None, directory: str | None = None) -> None:
        self.server = server
        self.directory = directory

    def close(self) -> None:
        global hooks
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.directory is not None:
            hooks = Hooks()
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Children:
    """Process metrics of the live worker processes, summed (no pid label: bounded),
    read from ``/proc`` by ``prometheus_client``'s own process collector."""

    def __init__(self, namespace: str, pids: Callable[[], list[int]]) -> None:
        self.ns = namespace
        self.pids = pids

    def collect(self) -> Iterator[Any]:
        from prometheus_client import ProcessCollector
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        pids = self.pids()
        procs = GaugeMetricFamily("redis_atp_worker_processes", "Live worker processes of this supervisor",
                                  labels=["namespace"])
        procs.add_metric([self.ns], len(pids))
        yield procs
        sums = {"process_cpu_seconds_total": 0.0, "process_resident_memory_bytes": 0.0}
        for pid in pids:
            for family in ProcessCollector(pid=lambda p=pid: p, registry=None).collect():  # type: ignore[misc]
                for s in family.samples:
                    if s.name in sums:
                        sums[s.name] += s.value
        cpu = CounterMetricFamily("redis_atp_worker_cpu_seconds", "CPU seconds of the live worker processes",
                                  labels=["namespace"])
        cpu.add_metric([self.ns], sums["process_cpu_seconds_total"])
        rss = GaugeMetricFamily("redis_atp_worker_resident_memory_bytes",
                                "Resident memory of the live worker processes", labels=["namespace"])
        rss.add_metric([self.ns], sums["process_resident_memory_bytes"])
        yield from (cpu, rss)


class _Merged:
    """The processes' samples, merged as ``MultiProcessCollector`` does, but without the
    files that are still empty: prometheus_client creates a process's file empty and
    sizes it after, so a scrape in between, or after a process killed in between (a
    handler that kills its worker), failed with a struct error (a 500, seen in the
    tests). A file that fails anyway is read again a few times."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Any]:
        from prometheus_client import multiprocess

        for attempt in range(10):
            files = [f for f in glob.glob(os.path.join(self.directory, "*.db")) if os.path.getsize(f) >= 8]
            try:
                return iter(list(multiprocess.MultiProcessCollector.merge(files, accumulate=True)))  # type: ignore[no-untyped-call]
            except (struct.error, ValueError, OSError):
                if attempt == 9:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")  # pragma: no cover


def serve(config: WorkerConfig, children: Callable[[], list[int]],
          tracker: Callable[[], Tracker]) -> MetricsServer:
    """Turn the hooks on and serve ``/metrics`` on ``config.metrics_host:metrics_port``
    (the supervisor, before it forks); with no port, a server that does nothing.
    ``children``: the pids of the live worker processes; ``tracker``: makes a tracker
    for a child's wait-time reads.

    Raises:
        OSError: the port cannot be bound (nothing is left turned on).
    """
    global hooks
    if config.metrics_port is None:
        return MetricsServer()
    directory = tempfile.mkdtemp(prefix="redis-atp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    if "prometheus_client.values" in sys.modules:  # imported before: its value class is chosen at import
        values: Any = importlib.import_module("prometheus_client.values")
        values.ValueClass = values.get_value_class()
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

    registry = CollectorRegistry()
    registry.register(_Merged(directory))
    ProcessCollector(registry=registry)
    registry.register(_Children(config.namespace, children))
    try:
        server, _ = start_http_server(config.metrics_port, config.metrics_host, registry=registry)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    hooks = _Prometheus(config, tracker)
    log.info("metrics on http://%s:%d/metrics", config.metrics_host, server.server_port)
    return MetricsServer(server, directory)
