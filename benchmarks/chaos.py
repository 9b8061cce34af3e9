"""Chaos and soak runs of a real ``redis-atp worker`` fleet.

    python -m benchmarks.chaos [--minutes M] [--tasks N] [--json OUT] [--seed S]
    python -m benchmarks.chaos --soak [--minutes M]     # M defaults to $SOAK_MINUTES or 30

Setup: a throwaway redis-server (loopback, free port, AOF with ``appendfsync always``,
so a SIGKILL loses nothing acknowledged); four task types whose handlers
(:mod:`benchmarks.chaos_handlers`) record every execution in a run file outside
Redis; two supervisors (``redis-atp worker -n 3 --heartbeat 2``, each its own process
group), one of them always connected through :mod:`benchmarks.delayproxy` (1 ms each
way). N tasks are enqueued with ``enqueue_many``: half at the start (the soak: a
tenth), the rest in bursts during the fault window, one just before each fault, so
faults meet a busy fleet as often as an idle one.

Faults, one every 1-3 s (seeded; in shuffled rounds, so every kind comes up), each
logged with its time:

* ``kill_child``: SIGKILL of a worker process, three times in four one that holds a
  task (its supervisor replaces it);
* ``kill_supervisor``: SIGKILL of a supervisor's whole group, then a new supervisor;
* ``client_kill``: 3-5 ``CLIENT KILL TYPE normal`` in a row;
* ``redis_restart``: SIGKILL of redis-server, restarted at once on the same port from its AOF;
* ``stop_child``: SIGSTOP of a worker process (chosen likewise) for 1-3 s, then SIGCONT;
* ``oom``: ``maxmemory`` just above ``used_memory`` (``noeviction``) for 1-2 s;
* ``script_flush``: ``SCRIPT FLUSH``.

Then the faults stop, the fleet drains (bounded by ``--drain``), the supervisors get
SIGTERM, and these invariants are checked, each reported with its numbers:

* ``all_terminal``: the task of every acknowledged enqueue exists, FINISHED or FAILED;
* ``no_infra_failures``: no task of a normal type FAILED (``maxrestart`` is 10, so
  not even repeated crashes may fail one); ``boom`` tasks FAILED with their ValueError;
* ``executions_bounded``: run files of a task <= 1 + the recoveries in its log
  (records that put it back to ACCEPTED);
* ``reruns_explained``: every run but a task's last is followed, in the task's log,
  after its own claim and before the next run's claim, by a recovery that says the
  run is over (its process died or stopped, its heartbeat or time-out lapsed, or,
  for a run whose handler raised, its handler lost Redis) -- not by a live worker's
  uncharged put-back, which would mean a task ran twice;
* ``fencing``: one run file per fencing token; the task's final token (the hash's
  ``token`` field) is its last run's, that run ran to its end before the terminal
  record; no fenced call of a run succeeded after a later run of the task had started;
* ``counters_exact``: per type ``finished_total`` / ``failed_total`` equal the tasks
  found FINISHED / FAILED, and every log holds exactly one terminal record;
* ``nothing_owned``: after shutdown, live counters 0, no task in an owner set, no
  live worker holding a task;
* ``no_timeouts``: no task needed its type's time-out (60 s; handlers take <= 50 ms);
* ``fleet_healthy``: no supervisor or worker process exited unless killed here, no
  supervisor went 10 s without renewing heartbeats, all exited 0 on SIGTERM;
* soak only: ``keys_bounded`` (worker/owned/mailbox keys at the last sample <= 2x the
  live supervisors' slots) and ``memory_flat`` (Redis memory per stored task, last
  vs first third of the samples, <= 1.5x). Tasks are kept forever so they can be
  checked, so memory is per stored task, not per live one.

Exit code 0 only if every invariant held. Worker logs, run files and the report stay
in a temp directory (printed); it is removed after a passing run unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_atp import Tracker
from redis_atp.errors import DuplicateTask, TaskNotFound
from redis_atp.fleet import Fleet
from redis_atp.models import LogRecord
from tests.redisserver import REDIS_SERVER, RedisServer, free_port

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLERS = "benchmarks.chaos_handlers"
#: task type -> (handler, share of the tasks)
TYPES: dict[str, tuple[str, float]] = {
    "quick": (f"{HANDLERS}.quick", 0.40),
    "progress": (f"{HANDLERS}.progress", 0.30),
    "respond": (f"{HANDLERS}.respond", 0.27),
    "boom": (f"{HANDLERS}.boom", 0.03),
}
BOOM = "boom"
BOOM_MESSAGE = "ValueError: chaos boom"
MAXRESTART = 10
TIMEOUT_S = 60.0
HEARTBEAT_S = 2.0
PROCESSES = 3
THREADS = 1
GRACE_S = 10.0
PROXY_DELAY_S = 0.001
FAULT_EVERY_S = (1.0, 3.0)
#: A supervisor whose workers' newest heartbeat is older than this has stalled.
STALL_S = 10.0
#: Clock slack when comparing handler times (time.time()) with log times (Redis TIME, ms).
SLACK_S = 0.01
#: Log records a task keeps (the workers' Tracker default): a longer log lost its start.
LOG_CAP = 100
KINDS = ("kill_child", "kill_supervisor", "client_kill", "redis_restart", "stop_child", "oom", "script_flush")
LIVE = ("accepted", "scheduled", "running", "paused")
#: Connection loss, and Redis loading its AOF (BusyLoadingError is a ConnectionError).
TRANSIENT: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
#: What a harness call may meet during a fault: that, or an OOM refusal.
FAULTY: tuple[type[BaseException], ...] = (*TRANSIENT, redis.exceptions.OutOfMemoryError)


# ---------------------------------------------------------------------------- small helpers
def new_client(port: int, timeout: float = 10.0) -> redis.Redis:
    """A harness client that never retries by itself: this harness decides what to retry."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=2,
                       retry=Retry(NoBackoff(), 0))


def retrying(fn: Callable[[], T], timeout: float = 20.0) -> T:
    """``fn()``, retried across connection loss, AOF loading and OOM for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except FAULTY:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def best_effort(fn: Callable[[], T]) -> T | None:
    """``fn()``, or None if Redis refused or was unreachable."""
    try:
        return fn()
    except (redis.RedisError, OSError):
        return None


def wall_stamp(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def child_pids(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.append(int(entry))
    return sorted(out)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class EventLog:
    """Faults and notable events, each with wall time and offset, printed as they happen."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, detail: str, fault: bool = True) -> None:
        wall = time.time()
        event = {"t": round(time.monotonic() - self.t0, 3), "wall": wall, "kind": kind, "detail": detail,
                 "fault": fault}
        with self._lock:
            self.events.append(event)
        print(f"[{wall_stamp(wall)} +{event['t']:7.2f}s] {'fault' if fault else 'event'} {kind:<17} {detail}",
              flush=True)

    def faults(self) -> dict[str, int]:
        counted = Counter(e["kind"] for e in self.events if e["fault"])
        return {k: counted.get(k, 0) for k in KINDS}

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


# ---------------------------------------------------------------------------- processes
def start_redis() -> RedisServer:
    """The throwaway server: AOF, fsync on every write, so a SIGKILL loses nothing acknowledged."""
    return RedisServer("--appendfsync", "always", appendonly=True).start()


def restart_same_port(server: RedisServer, timeout: float = 15.0) -> None:
    """Start ``server`` again on its port, dir and AOF (it was SIGKILLed); ``server.proc``
    becomes the new process, so ``server.close()`` stops it."""
    args = [REDIS_SERVER, "--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(server.dir),
            "--save", "", "--appendonly", "yes", "--logfile", str(server.dir / "redis.log"), *server.extra]
    deadline = time.monotonic() + timeout
    while True:
        server.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
        if _wait_ping(server, deadline):
            return
        server.kill()
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not restart on port {server.port}: "
                               f"{(server.dir / 'redis.log').read_text()[-1500:]}")
        time.sleep(0.1)


def _wait_ping(server: RedisServer, deadline: float) -> bool:
    client = new_client(server.port, timeout=2)
    try:
        while time.monotonic() < deadline:
            if server.proc is None or server.proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


class Supervisor:
    """One ``redis-atp worker`` process group, logging to a file of its own."""

    def __init__(self, number: int, url: str, namespace: str, workdir: Path, via_proxy: bool) -> None:
        self.number = number
        self.via_proxy = via_proxy
        self.name = f"sup{number}{'/proxy' if via_proxy else ''}"
        self.log_path = workdir / f"supervisor-{number}.log"
        argv = [sys.executable, "-m", "redis_atp", "worker", "--url", url, "--namespace", namespace,
                "-n", str(PROCESSES), "--threads", str(THREADS), "--heartbeat", str(HEARTBEAT_S),
                "--grace", str(GRACE_S), "-p", str(REPO_ROOT), "--allow", HANDLERS, "--log-level", "INFO"]
        env = {**os.environ, "CHAOS_DIR": str(workdir / "runs")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.started = time.monotonic()
        self.killed = False  # its group was SIGKILLed here
        self.stopping = False  # SIGTERM sent at the end
        self.reported = False  # its unexpected exit was logged
        self.exit_code: int | None = None
        self.stalled = False
        self.stalls = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        return child_pids(self.pid) if self.alive() else []

    def kill(self) -> list[int]:
        """SIGKILL the whole group; returns the worker pids it had."""
        kids = self.children()
        self.killed = True
        kill_group(self.pid)
        self.exit_code = self.proc.wait(10)
        return kids

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Proxy:
    """``benchmarks.delayproxy`` in a process group of its own, in front of the server."""

    def __init__(self, upstream: int, workdir: Path) -> None:
        self.port = free_port()
        with open(workdir / "proxy.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.delayproxy", str(self.port),
                                          str(upstream), str(PROXY_DELAY_S)], cwd=REPO_ROOT,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        client = new_client(self.port, timeout=2)
        try:
            retrying(client.ping, timeout=10)
        finally:
            client.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        kill_group(self.proc.pid)
        self.proc.wait(10)


class Supervisors:
    """The fleet: two supervisors (the second through the proxy), replaced when killed."""

    def __init__(self, direct_url: str, proxy_url: str, namespace: str, workdir: Path, events: EventLog) -> None:
        self.urls = {False: direct_url, True: proxy_url}
        self.namespace = namespace
        self.workdir = workdir
        self.events = events
        self.all: list[Supervisor] = []
        #: Whether a supervisor has registered its workers (set by the harness).
        self.registered: Callable[[Supervisor], bool] = lambda sup: True
        self.replacements = 0  # of supervisors that exited on their own
        self._next_replacement = 0.0

    def start(self, via_proxy: bool) -> Supervisor:
        """Start a supervisor and wait (bounded) until it has registered its workers: a
        supervisor gives up at once if it cannot reach Redis at start, so no fault may
        come before that."""
        sup = Supervisor(len(self.all) + 1, self.urls[via_proxy], self.namespace, self.workdir, via_proxy)
        self.all.append(sup)
        deadline = time.monotonic() + 20
        while sup.alive() and not self.registered(sup) and time.monotonic() < deadline:
            time.sleep(0.05)
        return sup

    def live(self) -> list[Supervisor]:
        return [s for s in self.all if not s.killed and not s.stopping and s.alive()]

    def watch(self) -> None:
        """Log a supervisor that exited on its own; keep two running (one through the
        proxy), starting at most one every 2 s and 20 in all (a fleet that cannot start
        must not turn into a fork loop)."""
        for sup in self.all:
            if sup.killed or sup.stopping or sup.reported or sup.alive():
                continue
            sup.reported = True
            sup.exit_code = sup.proc.returncode
            tail = " | ".join(sup.log_text().strip().splitlines()[-3:])[-400:]
            self.events.add("supervisor_exit", f"{sup.name} pid {sup.pid} exited on its own with code "
                                               f"{sup.exit_code}; log: {tail}", fault=False)
        live = self.live()
        if len(live) >= 2 or time.monotonic() < self._next_replacement:
            return
        if self.replacements >= 20:
            if self.replacements == 20:
                self.events.add("supervisor_exit", "20 supervisors replaced; no more", fault=False)
                self.replacements += 1
            return
        self.replacements += 1
        self._next_replacement = time.monotonic() + 2.0
        self.start(via_proxy=not any(s.via_proxy for s in live))

    def stop_all(self, timeout: float) -> None:
        """SIGTERM every live supervisor, wait for all; SIGKILL the group of any still running."""
        stopping = self.live()
        for sup in stopping:
            sup.stopping = True
            sup.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for sup in stopping:
            try:
                sup.exit_code = sup.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.events.add("shutdown_timeout", f"{sup.name} pid {sup.pid} still running {timeout:.0f}s "
                                                    "after SIGTERM; killing its group", fault=False)
                kill_group(sup.pid)
                sup.exit_code = sup.proc.wait(10)
            if sup.exit_code != 0:
                self.events.add("shutdown_unclean", f"{sup.name} exited with {sup.exit_code} on SIGTERM", fault=False)

    def kill_all(self) -> None:
        """SIGKILL every group ever started (an exited supervisor may have left workers)."""
        for sup in self.all:
            kill_group(sup.pid)
            try:
                sup.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------------------- faults
class Chaos:
    """Injects one fault at a time; what must be undone later (SIGCONT, maxmemory) is pending."""

    def __init__(self, server: RedisServer, namespace: str, sups: Supervisors, events: EventLog,
                 rng: random.Random) -> None:
        self.server = server
        self.sups = sups
        self.events = events
        self.rng = rng
        self.admin = new_client(server.port, timeout=5)
        self.tracker = Tracker(self.admin, namespace, max_queue_size=0)
        self.deck: list[str] = []
        self.pending: list[tuple[float, str, Callable[[], None]]] = []
        self.stopped: set[int] = set()
        self.oom_active = False
        #: pid -> wall time of the SIGKILL sent here (a worker, or every worker of a killed group)
        self.killed_pids: dict[int, float] = {}
        self.redis_down_s: list[float] = []

    def next_kind(self) -> str:
        if not self.deck:
            self.deck = list(KINDS)
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def inject(self, kind: str) -> None:
        getattr(self, kind)()

    def tick(self, force: bool = False) -> None:
        """Run the pending actions that are due (all of them with ``force``)."""
        now = time.monotonic()
        due = [p for p in self.pending if force or p[0] <= now]
        self.pending = [p for p in self.pending if p not in due]
        for _, _, action in due:
            action()

    def _pick_child(self) -> tuple[Supervisor, int, bool] | None:
        """A worker process of a live supervisor, three times in four one holding a task
        if any does (an idle fleet would mostly lose idle processes); and whether it holds one."""
        choices = [(s, pid) for s in self.sups.live() for pid in s.children() if pid not in self.stopped]
        if not choices:
            return None
        busy = best_effort(lambda: {w.pid for w in Fleet(self.tracker).workers() if w.tasks}) or set()
        holding = [c for c in choices if c[1] in busy]
        sup, pid = self.rng.choice(holding if holding and self.rng.random() < 0.75 else choices)
        return sup, pid, pid in busy

    def kill_child(self) -> None:
        picked = self._pick_child()
        if picked is None:
            self.events.add("kill_child", "no worker process to kill (skipped)")
            return
        sup, pid, busy = picked
        self.killed_pids[pid] = time.time()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.events.add("kill_child", f"SIGKILL worker pid {pid} of {sup.name}{' (holding a task)' if busy else ''}")

    def kill_supervisor(self) -> None:
        live = self.sups.live()
        if not live:
            self.events.add("kill_supervisor", "no supervisor to kill (skipped)")
            return
        sup = self.rng.choice(live)
        kids = sup.children()
        now = time.time()
        self.killed_pids.update({pid: now for pid in [sup.pid, *kids]})
        sup.kill()
        self.stopped.difference_update(kids)
        new = self.sups.start(sup.via_proxy)
        self.events.add("kill_supervisor", f"SIGKILL group of {sup.name} (pid {sup.pid}, workers {kids}); "
                                           f"started {new.name} pid {new.pid}")

    def client_kill(self) -> None:
        killed = []
        for _ in range(self.rng.randint(3, 5)):
            n = best_effort(lambda: self.admin.client_kill_filter(_type="normal"))
            killed.append(n if n is not None else "err")
            time.sleep(self.rng.uniform(0.05, 0.2))
        self.events.add("client_kill", f"CLIENT KILL TYPE normal x{len(killed)}: killed {killed}")

    def redis_restart(self) -> None:
        t0 = time.monotonic()
        self.server.kill()
        restart_same_port(self.server)
        down = time.monotonic() - t0
        self.redis_down_s.append(down)
        self.oom_active = False  # a new server starts with maxmemory 0
        self.events.add("redis_restart", f"SIGKILL redis-server, restarted on port {self.server.port} from AOF "
                                         f"(pid {self.server.proc.pid if self.server.proc else '?'}); "
                                         f"down {down:.2f}s")

    def stop_child(self) -> None:
        picked = self._pick_child()
        if picked is None:
            self.events.add("stop_child", "no worker process to stop (skipped)")
            return
        sup, pid, busy = picked
        hold = self.rng.uniform(1.0, 3.0)
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.stopped.add(pid)
        self.pending.append((time.monotonic() + hold, f"SIGCONT {pid}", lambda: self._cont(sup, pid)))
        self.events.add("stop_child", f"SIGSTOP worker pid {pid} of {sup.name}{' (holding a task)' if busy else ''} "
                                      f"for {hold:.1f}s")

    def _cont(self, sup: Supervisor, pid: int) -> None:
        self.stopped.discard(pid)
        if pid in sup.children():  # not reaped and reused meanwhile
            os.kill(pid, signal.SIGCONT)

    def oom(self) -> None:
        if self.oom_active:
            self.events.add("oom", "an OOM window is open (skipped)")
            return
        info = best_effort(lambda: self.admin.info("memory"))
        if info is None:
            self.events.add("oom", "INFO failed (skipped)")
            return
        limit = int(info["used_memory"]) + 64 * 1024
        hold = self.rng.uniform(1.0, 2.0)
        ok = best_effort(lambda: (self.admin.config_set("maxmemory-policy", "noeviction"),
                                  self.admin.config_set("maxmemory", limit)))
        if ok is None:
            self.events.add("oom", "CONFIG SET failed (skipped)")
            return
        self.oom_active = True
        self.pending.append((time.monotonic() + hold, "maxmemory 0", self.end_oom))
        self.events.add("oom", f"maxmemory {limit} (used_memory + 64 KiB, noeviction) for {hold:.1f}s")

    def end_oom(self) -> None:
        if self.oom_active:
            retrying(lambda: self.admin.config_set("maxmemory", 0), timeout=15)
            self.oom_active = False
            self.events.add("oom_end", "maxmemory 0", fault=False)

    def script_flush(self) -> None:
        ok = best_effort(lambda: self.admin.script_flush())
        self.events.add("script_flush", "SCRIPT FLUSH" + ("" if ok is not None else " (failed)"))

    def close(self) -> None:
        self.tick(force=True)
        self.admin.close()


# ---------------------------------------------------------------------------- producing tasks
Item = tuple[str, str, dict[str, Any]]


def make_items(n: int, rng: random.Random) -> list[Item]:
    """``n`` tasks of the four types, in the types' shares, shuffled."""
    names = list(TYPES)
    weights = [share for _, share in TYPES.values()]
    return [(rng.choices(names, weights)[0], f"c-{i}", {"n": i}) for i in range(n)]


class Producer:
    """Enqueues with ``enqueue_many`` on a client of its own, retrying across faults; a
    retried batch whose first reply was lost gets DuplicateTask for what it created."""

    def __init__(self, port: int, namespace: str, events: EventLog) -> None:
        self.client = new_client(port)
        self.tracker = Tracker(self.client, namespace, max_queue_size=0)
        self.events = events
        self.ids: dict[str, int] = {}  # identifier -> task id, acknowledged
        self.types: dict[str, str] = {}  # identifier -> type, of every item sent
        self.gave_up: list[Item] = []  # outcome unknown: looked up at the end
        self.refused: list[str] = []
        self.retries = 0
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._go = threading.Semaphore(0)

    def enqueue(self, items: list[Item], give_up_s: float = 60.0) -> None:
        for item in items:
            self.types[item[1]] = item[0]
        pending, deadline = list(items), time.monotonic() + give_up_s
        while pending:
            try:
                results = self.tracker.enqueue_many(pending)
            except FAULTY:
                if time.monotonic() > deadline or self.stop.is_set():
                    self.gave_up.extend(pending)
                    return
                self.retries += 1
                time.sleep(0.2)
                continue
            for (type_, ident, _), res in zip(pending, results, strict=True):
                if isinstance(res, int):
                    self.ids[ident] = res
                elif isinstance(res, DuplicateTask):  # created by an attempt whose reply was lost
                    self.ids[ident] = retrying(partial(self.tracker.get_task_id, type_, ident), 60)
                else:
                    self.refused.append(f"{ident}: {res!r}")
            pending = []

    def trickle(self, items: list[Item], batches: int) -> None:
        """Enqueue ``items`` in ``batches`` equal bursts, in a thread, one per
        :meth:`release`: the fault loop releases one just before each fault, so faults
        meet a busy fleet as often as an idle one (hand-offs)."""
        size = -(-len(items) // max(1, batches))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        self.types.update((ident, type_) for type_, ident, _ in items)
        self._go = threading.Semaphore(0)

        def run() -> None:
            for n, chunk in enumerate(chunks):
                while not self._go.acquire(timeout=0.2):
                    if self.stop.is_set():
                        self.gave_up.extend(item for rest in chunks[n:] for item in rest)
                        return
                self.enqueue(chunk)

        self._thread = threading.Thread(target=run, name="producer", daemon=True)
        self._thread.start()

    def release(self, bursts: int = 1) -> None:
        """Let the next ``bursts`` bursts go."""
        self._go.release(bursts)

    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def settle(self) -> int:
        """Look up the tasks whose enqueue outcome is unknown; returns how many do not exist."""
        missing = 0
        for type_, ident, _ in self.gave_up:
            try:
                self.ids[ident] = retrying(partial(self.tracker.get_task_id, type_, ident), 30)
            except TaskNotFound:
                missing += 1
        self.gave_up = []
        return missing

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(70)
        self.client.close()


# ---------------------------------------------------------------------------- watching
class Monitor:
    """Samples Redis memory and key counts, and watches supervisors' heartbeats."""

    def __init__(self, port: int, namespace: str, sups: Supervisors, events: EventLog, sample_s: float) -> None:
        self.client = new_client(port, timeout=5)
        self.tracker = Tracker(self.client, namespace, max_queue_size=0)
        self.keys = self.tracker.keys
        self.sups = sups
        self.events = events
        self.sample_s = sample_s
        self.samples: list[dict[str, Any]] = []
        self.baseline_memory = 0
        self.next_sample = time.monotonic() + sample_s
        self.next_beat_check = time.monotonic() + 1.0

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_beat_check:
            best_effort(self.check_heartbeats)
            self.next_beat_check = now + 1.0
        if now >= self.next_sample and best_effort(self.sample) is not None:
            self.next_sample = now + self.sample_s

    def count(self, prefix: str) -> int:
        return sum(1 for _ in self.client.scan_iter(match=prefix + "*", count=1000))

    def sample(self) -> dict[str, Any]:
        live_tasks = sum(self.tracker.get_task_type(t).counts[c] for t in TYPES for c in LIVE)
        sample = {
            "t": round(time.monotonic() - self.events.t0, 1),
            "used_memory": int(self.client.info("memory")["used_memory"]),
            "tasks": self.count(self.keys.task_prefix), "live_tasks": live_tasks,
            "worker_keys": self.count(self.keys.worker_prefix), "owned_keys": self.count(self.keys.owned_prefix),
            "mailbox_keys": self.count(self.keys.mailbox_prefix), "registry": self.client.hlen(self.keys.workers),
            "waiters": self.client.llen(self.keys.waiters), "live_slots": len(self.sups.live()) * PROCESSES * THREADS,
        }
        self.samples.append(sample)
        return sample

    def check_heartbeats(self) -> None:
        """Flag a supervisor whose workers' newest heartbeat is older than STALL_S."""
        newest = self._newest_beats()
        for sup in self.sups.live():
            if time.monotonic() - sup.started < STALL_S:
                continue
            age = time.time() - newest.get(sup.pid, 0.0)
            if age > STALL_S and not sup.stalled:
                sup.stalled, sup.stalls = True, sup.stalls + 1
                beat = "none of its workers is registered" if age > 1e6 else f"newest heartbeat {age:.1f}s ago"
                self.events.add("supervisor_stall", f"{sup.name} pid {sup.pid}: {beat}", fault=False)
            elif age <= STALL_S and sup.stalled:
                sup.stalled = False
                self.events.add("supervisor_resumed", f"{sup.name} pid {sup.pid} beats again", fault=False)

    def registered(self, sup: Supervisor) -> bool:
        return bool(best_effort(lambda: sup.pid in self._newest_beats()))

    def _newest_beats(self) -> dict[int, float]:
        registry = self.client.hgetall(self.keys.workers)
        pipe = self.client.pipeline(transaction=False)
        for raw in registry.values():
            pipe.hmget(self.keys.worker(json.loads(raw)["digest"]), "supervisor", "beat")
        newest: dict[int, float] = {}
        for sup_pid, beat in pipe.execute():
            if sup_pid and beat:
                newest[int(sup_pid)] = max(newest.get(int(sup_pid), 0.0), float(beat))
        return newest

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------------- evidence
@dataclass
class RunFile:
    """One execution, as its handler recorded it (see :mod:`benchmarks.chaos_handlers`)."""

    name: str
    tid: int
    token: str
    pid: int
    start: float
    end: float | None = None
    outcome: str | None = None  # returned, stale, raised; None: the process died mid-run
    calls: list[dict[str, Any]] = field(default_factory=list)


def read_runs(runs_dir: Path) -> dict[int, list[RunFile]]:
    """Every run file, by task id, each task's runs in start order."""
    runs: dict[int, list[RunFile]] = {}
    for path in runs_dir.iterdir():
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
        if not lines or lines[0]["ev"] != "start":
            continue
        s = lines[0]
        run = RunFile(path.name, int(s["tid"]), str(s["token"]), int(s["pid"]), float(s["t"]))
        for line in lines[1:]:
            if line["ev"] == "call":
                run.calls.append(line)
            elif line["ev"] == "end":
                run.end, run.outcome = float(line["t"]), line["outcome"]
        runs.setdefault(run.tid, []).append(run)
    for task_runs in runs.values():
        task_runs.sort(key=lambda r: r.start)
    return runs


@dataclass
class TaskView:
    """One task as Redis has it after the run."""

    id: int
    type: str
    ident: str
    status: str
    token: str | None
    nlog: int
    log: list[LogRecord]

    def truncated(self) -> bool:
        return self.nlog > LOG_CAP

    def recoveries(self) -> list[tuple[int, str]]:
        """(log index, message) of each record putting the task back to ACCEPTED."""
        return [(i, msg) for i, (_, (_, name), msg) in enumerate(self.log) if name == "ACCEPTED" and i > 0]

    def terminal_records(self) -> list[int]:
        return [i for i, (_, (_, name), _) in enumerate(self.log) if name in ("FINISHED", "FAILED")]

    def claim_index(self, run: RunFile) -> int | None:
        """Index of the run's own claim/start record: the last SCHEDULED/RUNNING record
        not later than the handler's start."""
        found = None
        for i, (when, (_, name), _) in enumerate(self.log):
            if when.timestamp() > run.start + SLACK_S:
                break
            if name in ("SCHEDULED", "RUNNING"):
                found = i
        return found

    def show_log(self, limit: int = 14) -> str:
        lines = [f"{wall_stamp(w.timestamp())} {name} {msg}".rstrip() for w, (_, name), msg in self.log]
        if len(lines) > limit:
            lines = lines[:3] + ["..."] + lines[-(limit - 4):]
        return " | ".join(lines)


def read_tasks(tracker: Tracker, ids: Iterable[int]) -> tuple[dict[int, TaskView], list[int]]:
    """Every task by id (``describe_task``, and its hash's ``token``/``nlog`` read directly);
    and the ids that no longer exist."""
    views: dict[int, TaskView] = {}
    lost: list[int] = []
    described: dict[int, dict[str, Any]] = {}
    for tid in ids:
        try:
            described[tid] = retrying(partial(tracker.describe_task, tid))
        except TaskNotFound:
            lost.append(tid)
    order = list(described)
    for start in range(0, len(order), 500):
        pipe = tracker.client.pipeline(transaction=False)
        for tid in order[start:start + 500]:
            pipe.hmget(described[tid]["key"], "token", "nlog")
        for tid, (token, nlog) in zip(order[start:start + 500], retrying(pipe.execute), strict=True):
            d = described[tid]
            views[tid] = TaskView(tid, d["type"], d["identifier"], d["status"],
                                  token.decode() if token else None, int(nlog or 0), d["log"])
    return views, lost


@dataclass
class Evidence:
    """Everything the invariants look at."""

    tasks: dict[int, TaskView]
    lost: list[int]
    never_enqueued: int
    refused: list[str]
    runs: dict[int, list[RunFile]]
    counts: dict[str, dict[str, int]]
    owned: dict[str, int]  # owner key -> members
    live_workers: list[tuple[str, list[int]]]
    events: EventLog
    sups: Supervisors
    killed_pids: dict[int, float]
    worker_log: dict[str, Any]
    samples: list[dict[str, Any]]
    soak: bool
    expected: int


@dataclass
class Invariant:
    name: str
    held: bool
    numbers: dict[str, Any]
    examples: list[str] = field(default_factory=list)


def _example(view: TaskView | None, tid: int, what: str, runs: list[RunFile] | None = None) -> str:
    head = f"task {tid}" + (f" ({view.type}::{view.ident}, {view.status})" if view else "")
    run_text = ""
    if runs:
        run_text = " runs: " + "; ".join(
            f"{r.name} token={r.token} {wall_stamp(r.start)}-{wall_stamp(r.end) if r.end else '?'} "
            f"{r.outcome or 'cut short'}" + "".join(f" [{c['what']} raised {c['error'][:100]}]"
                                                     for c in r.calls if not c["ok"])
            for r in runs)
    return f"{head}: {what}.{run_text}" + (f" log: {view.show_log()}" if view else "")


# ---------------------------------------------------------------------------- invariants
def all_terminal(ev: Evidence) -> Invariant:
    live = [v for v in ev.tasks.values() if v.status not in ("FINISHED", "FAILED")]
    examples = [_example(None, tid, "acknowledged enqueue, task missing") for tid in ev.lost[:5]]
    examples += [_example(v, v.id, "not terminal", ev.runs.get(v.id)) for v in live[:5]]
    examples += [f"enqueue refused: {r}" for r in ev.refused[:3]]
    held = not ev.lost and not live and not ev.never_enqueued and not ev.refused and ev.expected == len(ev.tasks)
    return Invariant("all_terminal", held, {"tasks": ev.expected, "found": len(ev.tasks), "lost": len(ev.lost),
                                            "not_terminal": len(live), "never_enqueued": ev.never_enqueued,
                                            "refused": len(ev.refused)}, examples)


def failure_reason(view: TaskView) -> str:
    """The message of the task's FAILED record, with numbers blanked (for grouping)."""
    msgs = [msg for _, (_, name), msg in view.log if name == "FAILED"]
    return re.sub(r"\d+", "N", msgs[-1])[:90] if msgs else "(no FAILED record)"


def no_infra_failures(ev: Evidence) -> Invariant:
    bad: list[TaskView] = []
    crash_limited = 0
    boom_ok = 0
    for v in ev.tasks.values():
        reason = failure_reason(v) if v.status == "FAILED" else ""
        if v.type == BOOM:
            if v.status == "FAILED" and reason.startswith(BOOM_MESSAGE):
                boom_ok += 1
            elif v.status in ("FINISHED", "FAILED"):
                bad.append(v)
        elif v.status == "FAILED":
            crash_limited += "restart limit reached" in reason
            bad.append(v)
    reasons = Counter(failure_reason(v) if v.status == "FAILED" else v.status for v in bad)
    return Invariant("no_infra_failures", not bad,
                     {"failed_by_infrastructure": len(bad), "failed_after_repeated_crashes": crash_limited,
                      "boom_failed_as_expected": boom_ok, "reasons": dict(reasons.most_common(5))},
                     [_example(v, v.id, f"FAILED by the infrastructure: {failure_reason(v)}", ev.runs.get(v.id))
                      for v in bad[:5]])


def executions_bounded(ev: Evidence) -> Invariant:
    over: list[tuple[TaskView, int, int]] = []
    truncated = 0
    for v in ev.tasks.values():
        if v.truncated():
            truncated += 1
            continue
        n, rec = len(ev.runs.get(v.id, [])), len(v.recoveries())
        if n > 1 + rec:
            over.append((v, n, rec))
    executions = sum(len(r) for r in ev.runs.values())
    reruns = sum(max(0, len(r) - 1) for r in ev.runs.values())
    unknown = sorted(set(ev.runs) - set(ev.tasks))
    examples = [_example(v, v.id, f"{n} runs but {rec} recoveries", ev.runs.get(v.id)) for v, n, rec in over[:5]]
    examples += [f"run files for task {tid}, which is not one of ours" for tid in unknown[:3]]
    return Invariant("executions_bounded", not over and not unknown,
                     {"executions": executions, "reruns": reruns, "over_bound": len(over),
                      "logs_truncated": truncated, "runs_of_unknown_tasks": len(unknown)}, examples)


#: What a recovery record says, from its message: the first needle found names it (a
#: cause first; "charged" for a recovery counted against maxrestart that names none).
RECOVERY_KINDS = (
    ("timed out", "timeout"), ("lost its heartbeat", "heartbeat"), ("exited with code", "crash"),
    ("cold shutdown", "cold"), ("stopped; put back", "exited"), ("never started", "exited"),
    ("Redis could not serve the handler", "handler_lost_redis"), ("claim reply lost", "reply_lost"),
    ("stopping; put back", "stopping"), ("re-enqueued (restart", "charged"),
)
#: Recoveries saying a run is over whatever it did (its process, heartbeat or deadline).
RUN_OVER = {"charged", "timeout", "heartbeat", "crash", "cold", "exited"}


def recovery_kind(message: str) -> str:
    return next((kind for needle, kind in RECOVERY_KINDS if needle in message), "other")


def explains(kind: str, run: RunFile) -> bool:
    """Whether a recovery of this kind may end this run (so the task may run again)."""
    return kind in RUN_OVER or (kind == "handler_lost_redis" and run.outcome == "raised")


def reruns_explained(ev: Evidence) -> Invariant:
    bad: list[str] = []
    good: list[str] = []  # a few explained ones, for the JSON report
    superseded = 0
    kinds: Counter[str] = Counter()
    for v in ev.tasks.values():
        kinds.update(recovery_kind(msg) for _, msg in v.recoveries())
        runs = ev.runs.get(v.id, [])
        if len(runs) < 2 or v.truncated():
            continue
        for a, b in zip(runs, runs[1:], strict=False):
            superseded += 1
            ia, ib = v.claim_index(a), v.claim_index(b)
            if ia is None or ib is None:
                bad.append(_example(v, v.id, f"no claim record found for run {a.name if ia is None else b.name}",
                                    runs))
                continue
            between = [recovery_kind(msg) for i, msg in v.recoveries() if ia < i < ib]
            if not any(explains(k, a) for k in between):
                bad.append(_example(v, v.id, f"run {a.name} ({a.outcome or 'cut short'}) was followed by "
                                             f"another run with only {between or 'no'} recoveries between", runs))
            elif len(good) < 3:
                good.append(_example(v, v.id, f"explained by {between}", runs))
    return Invariant("reruns_explained", not bad,
                     {"superseded_runs": superseded, "unexplained": len(bad), "recoveries": dict(kinds)},
                     bad[:5] or good)


def fencing(ev: Evidence) -> Invariant:
    dup_tokens: list[str] = []
    final_bad: list[str] = []
    stale_writes: list[str] = []
    for v in ev.tasks.values():
        runs = ev.runs.get(v.id, [])
        tokens = Counter(r.token for r in runs)
        if any(n > 1 for n in tokens.values()):
            dup_tokens.append(_example(v, v.id, "one token ran more than once", runs))
        for i, a in enumerate(runs):
            later = [b.start for b in runs[i + 1:]]
            if later and any(c["ok"] and c["t0"] > min(later) for c in a.calls):
                stale_writes.append(_example(v, v.id, f"run {a.name}'s call succeeded after a later run started",
                                             runs))
        problem = _final_run_problem(v, runs)
        if problem:
            final_bad.append(_example(v, v.id, problem, runs))
    bad = dup_tokens + final_bad + stale_writes
    return Invariant("fencing", not bad, {"tokens_run_twice": len(dup_tokens), "final_run_wrong": len(final_bad),
                                          "stale_writes_accepted": len(stale_writes)}, bad[:5])


def _final_run_problem(v: TaskView, runs: list[RunFile]) -> str:
    """Why the task's terminal state does not come from its last run ('' if it does).
    Checked for FINISHED tasks and ``boom`` tasks FAILED by their handler."""
    expected = "returned" if v.status == "FINISHED" else "raised"
    if not (v.status == "FINISHED" or (v.type == BOOM and failure_reason(v).startswith(BOOM_MESSAGE))):
        return ""
    if not runs:
        return f"{v.status} without any run"
    last = runs[-1]
    if v.token != last.token:
        owner = next((r.name for r in runs if r.token == v.token), None)
        return f"final token {v.token} is not the last run's ({last.token}); it is {owner or 'no run'}'s"
    if last.outcome != expected:
        return f"the last run's outcome is {last.outcome}, not {expected}"
    terminal = v.terminal_records()
    if terminal and last.end is not None and v.log[terminal[-1]][0].timestamp() < last.end - SLACK_S:
        return "the terminal record is older than the last run's end"
    return ""


def counters_exact(ev: Evidence) -> Invariant:
    found: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    for v in ev.tasks.values():
        found[v.type][v.status] += 1
    mismatch = {}
    for t in TYPES:
        got = {"finished_total": ev.counts[t]["finished_total"], "failed_total": ev.counts[t]["failed_total"]}
        want = {"finished_total": found[t]["FINISHED"], "failed_total": found[t]["FAILED"]}
        if got != want:
            mismatch[t] = {"counters": got, "tasks": want}
    twice = [v for v in ev.tasks.values() if v.status in ("FINISHED", "FAILED") and len(v.terminal_records()) != 1
             and not v.truncated()]
    examples = [f"type {t}: counters {m['counters']} but tasks {m['tasks']}" for t, m in mismatch.items()]
    examples += [_example(v, v.id, f"{len(v.terminal_records())} terminal records", ev.runs.get(v.id))
                 for v in twice[:5]]
    totals = " ".join(f"{t}={ev.counts[t]['finished_total']}/{ev.counts[t]['failed_total']}" for t in TYPES)
    return Invariant("counters_exact", not mismatch and not twice,
                     {"types_mismatched": len(mismatch), "ended_twice": len(twice),
                      "finished/failed_totals": totals}, examples)


def nothing_owned(ev: Evidence) -> Invariant:
    live = {t: {c: ev.counts[t][c] for c in LIVE if ev.counts[t][c]} for t in TYPES}
    live = {t: c for t, c in live.items() if c}
    holding = [(w, tasks) for w, tasks in ev.live_workers if tasks]
    owned_tasks = sum(ev.owned.values())
    examples = [f"type {t}: live counters {c}" for t, c in live.items()]
    examples += [f"owner set {k}: {n} members" for k, n in list(ev.owned.items())[:3] if n]
    examples += [f"live worker {w} holds {tasks[:10]}" for w, tasks in holding[:3]]
    return Invariant("nothing_owned", not live and not holding and not owned_tasks,
                     {"live_counters": sum(sum(c.values()) for c in live.values()), "owned_tasks": owned_tasks,
                      "live_workers": len(ev.live_workers), "workers_holding_tasks": len(holding)}, examples)


def no_timeouts(ev: Evidence) -> Invariant:
    timed_out = [v for v in ev.tasks.values() if any(recovery_kind(m) == "timeout" for _, m in v.recoveries())]
    return Invariant("no_timeouts", not timed_out, {"tasks_timed_out": len(timed_out)},
                     [_example(v, v.id, "recovered by its time-out", ev.runs.get(v.id)) for v in timed_out[:5]])


def fleet_healthy(ev: Evidence) -> Invariant:
    exits = ev.events.of("supervisor_exit")
    stalls = ev.events.of("supervisor_stall")
    unclean = ev.events.of("shutdown_timeout") + ev.events.of("shutdown_unclean")
    worker_exits = ev.worker_log["unexpected_worker_exits"]
    cut_short = [r for runs in ev.runs.values() for r in runs if r.outcome is None and r.pid not in ev.killed_pids]
    examples = [e["detail"] for e in exits + stalls + unclean][:6]
    examples += worker_exits[:3]
    examples += [f"{e} (x{n})" for e, n in ev.worker_log["exceptions"][:5]]
    examples += [f"run {r.name} of pid {r.pid} was cut short, no kill of that pid here" for r in cut_short[:3]]
    held = not exits and not stalls and not unclean and not worker_exits
    return Invariant("fleet_healthy", held,
                     {"supervisors_started": len(ev.sups.all), "supervisor_exits": len(exits), "stalls": len(stalls),
                      "unclean_shutdowns": len(unclean), "unexpected_worker_exits": len(worker_exits),
                      "runs_cut_short_unkilled": len(cut_short),
                      "worker_log_exceptions": sum(n for _, n in ev.worker_log["exceptions"]),
                      "tasks_lost_by_runs": ev.worker_log["task_lost"]}, examples)


def _field(name: str, sample: dict[str, Any]) -> float:
    return float(sample[name])


def _thirds(samples: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> tuple[float, float]:
    k = max(1, len(samples) // 3)
    first, last = [value(s) for s in samples[:k]], [value(s) for s in samples[-k:]]
    return sum(first) / len(first), sum(last) / len(last)


def keys_bounded(ev: Evidence) -> Invariant:
    if not ev.samples:
        return Invariant("keys_bounded", False, {"samples": 0}, ["no sample was taken"])
    last = ev.samples[-1]
    limit = 2 * max(last["live_slots"], PROCESSES * THREADS)
    numbers: dict[str, Any] = {"samples": len(ev.samples), "limit": limit}
    examples = []
    for kind in ("worker_keys", "owned_keys", "mailbox_keys"):
        first, end = _thirds(ev.samples, partial(_field, kind))
        numbers[kind] = {"last": last[kind], "first_third": round(first, 1), "last_third": round(end, 1),
                         "ratio": round(end / first, 2) if first else None}
        if last[kind] > limit:
            examples.append(f"{kind}: {last[kind]} at the last sample > {limit}")
    return Invariant("keys_bounded", not examples, numbers, examples)


def memory_flat(ev: Evidence, baseline: int) -> Invariant:
    usable = [s for s in ev.samples if s["tasks"]]
    if len(usable) < 3:
        return Invariant("memory_flat", True, {"samples": len(usable), "note": "fewer than 3 samples"})
    first, last = _thirds(usable, lambda s: (s["used_memory"] - baseline) / s["tasks"])
    ratio = last / first if first > 0 else 1.0
    return Invariant("memory_flat", ratio <= 1.5,
                     {"samples": len(usable), "bytes_per_task_first_third": round(first),
                      "bytes_per_task_last_third": round(last), "ratio": round(ratio, 2)},
                     [] if ratio <= 1.5 else [f"memory per stored task grew {ratio:.2f}x"])


def scan_worker_logs(sups: Supervisors) -> dict[str, Any]:
    """Counts from the supervisors' logs: worker processes that exited other than by a
    SIGKILL before shutdown began, exception lines (but the boom handler's), lost runs."""
    exits: list[str] = []
    exceptions: Counter[str] = Counter()
    lost = 0
    for sup in sups.all:
        text = sup.log_text()
        before_shutdown = text.split("warm shutdown", 1)[0]
        for m in re.finditer(r"worker process (\S+) exited with code (-?\d+)", before_shutdown):
            if m.group(2) != "-9":
                exits.append(f"{sup.name}: worker process {m.group(1)} exited with code {m.group(2)}")
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                exc = next((x for x in lines[i + 1:] if x and not x.startswith((" ", "Traceback"))), "?")
                if not exc.startswith(BOOM_MESSAGE) and "During handling" not in exc:
                    exceptions[re.sub(r"\d+", "N", exc)[:140]] += 1
        lost += sum(1 for line in lines if "task lost" in line)
    return {"unexpected_worker_exits": exits, "exceptions": exceptions.most_common(), "task_lost": lost}


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
