"""Settings of the chaos run and the helpers every part uses: clients, process
groups, the event log, a redis-server restarted on its own port."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redisserver import REDIS_SERVER, RedisServer

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
HANDLERS = "benchmarks.chaos_handlers"
#: task type -> (handler, share of the tasks)
TYPES: dict[str, tuple[str, float]] = {
    "quick": (f"{HANDLERS}.quick", 0.32),
    "progress": (f"{HANDLERS}.progress", 0.25),
    "respond": (f"{HANDLERS}.respond", 0.22),
    "arespond": (f"{HANDLERS}.arespond", 0.18),
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


