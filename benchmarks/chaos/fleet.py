"""The fleet under test and the faults: supervisors (one behind a delay proxy), the
fault injector, the producer that trickles tasks in, the monitor of heartbeats."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from redis_atp import Tracker
from redis_atp.daemon.fleet import Fleet
from redis_atp.errors import DuplicateTask, TaskNotFound
from tests.redisserver import RedisServer, free_port

from .common import (
    FAULTY,
    GRACE_S,
    HANDLERS,
    HEARTBEAT_S,
    KINDS,
    LIVE,
    PROCESSES,
    PROXY_DELAY_S,
    REPO_ROOT,
    STALL_S,
    THREADS,
    TYPES,
    EventLog,
    best_effort,
    child_pids,
    kill_group,
    new_client,
    restart_same_port,
    retrying,
)


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
        """What a restart of a Redis that keeps nothing does to scripts: the script cache
        and the functions' libraries emptied (``SCRIPT FLUSH`` + ``FUNCTION FLUSH``)."""
        failed = [what for what, flush in (("SCRIPT", self.admin.script_flush), ("FUNCTION", self.admin.function_flush))
                  if best_effort(flush) is None]
        self.events.add("script_flush", "SCRIPT FLUSH + FUNCTION FLUSH"
                        + (f" ({' and '.join(failed)} FLUSH failed)" if failed else ""))

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


