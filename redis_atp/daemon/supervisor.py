"""The supervisor of a worker fleet: spawns and watches the worker processes, renews
their heartbeats, reaps the ones that die, runs housekeeping, turns signals into
warm and cold shutdown (see :mod:`redis_atp.worker`)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import wait
from typing import Any

import redis

from . import metrics
from .config import WorkerConfig, mask_url
from .fleet import Fleet
from .process import CANCEL_EXIT, CHILD_SIGNALS, WorkerProcess, worker_tracker
from .retry import TRANSIENT, retry_transient

__all__ = ["Supervisor"]

log = logging.getLogger("redis_atp.worker")


def _child_main(config: WorkerConfig, worker_id: str) -> None:
    code = 1
    try:
        code = WorkerProcess(config, worker_id).run()
    except BaseException:
        log.exception("worker process %s failed", worker_id)
    finally:
        logging.shutdown()
        os._exit(code)


@dataclass
class _Child:
    id: str
    process: multiprocessing.process.BaseProcess


class Supervisor:
    """Spawns and watches the worker processes, renews their heartbeats, reaps the
    ones that die, runs housekeeping (in a thread of its own), and turns signals into
    warm/cold shutdown. No Redis error stops it: each is logged and retried."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.host = socket.gethostname()
        self.id = f"{self.host}-{os.getpid()}-{random.randrange(16**4):04x}"
        self.children: list[_Child] = []
        self.spawned = 0
        self.signals = 0
        self.pending_reaps: list[tuple[str, bool, str]] = []
        self._ctx = multiprocessing.get_context("fork")
        self._stop_housekeeping = threading.Event()

    def banner(self) -> None:
        c = self.config
        log.info("redis-atp worker id=%s host=%s pid=%d redis=%s namespace=%s shards=%d processes=%d threads=%d "
                 "concurrency=%d serializer=%s%s", self.id, self.host, os.getpid(), mask_url(c.url), c.namespace,
                 c.shards, c.processes, c.threads, c.concurrency, c.serializer, " burst" if c.burst else "")
        if c.allow:
            log.info("handlers allowed from: %s", ", ".join(c.allow))
        else:
            log.warning("no --allow given: any handler path written to Redis will be imported and run")

    def connect(self) -> None:
        """Reach Redis, waiting up to ``wait_for_redis`` seconds; raises the last
        connection error when it cannot (the CLI prints it on one line)."""
        self.tracker = worker_tracker(self.config)
        self.fleet = Fleet(self.tracker, self.config.heartbeat)

        def reach() -> None:
            self.tracker.client.ping()
            self.tracker.io.run(self.tracker.ns.check())  # the namespace's shard count and serializer

        try:
            retry_transient(reach, self.config.wait_for_redis, f"waiting for redis at {mask_url(self.config.url)}")
        except TRANSIENT:
            self.tracker.close()
            raise

    def run(self) -> int:
        """Run the fleet until shutdown; returns the exit code (0 on a clean shutdown)."""
        for path in reversed(self.config.paths):
            if os.path.abspath(path) not in sys.path:
                sys.path.insert(0, os.path.abspath(path))
        self.connect()
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        self.banner()
        for _ in range(self.config.processes):
            self._spawn()
        keeper = threading.Thread(target=self._housekeeping_loop, name="housekeeping", daemon=True)
        keeper.start()
        try:
            return self._watch(rfd)
        finally:
            self._stop_housekeeping.set()
            self._signal_children(signal.SIGKILL)  # only children still running: after an unexpected error
            keeper.join(5)
            self.tracker.close()

    def _watch(self, rfd: int) -> int:
        beat_every = self.config.heartbeat / 4
        next_beat = 0.0
        stop_at = kill_at = float("inf")
        handled = 0
        while True:
            now = time.monotonic()
            if handled < self.signals:
                handled = self.signals
                self._stop_housekeeping.set()
                if handled == 1:
                    log.info("warm shutdown: no new tasks; running ones get %.0fs to finish", self.config.grace)
                    stop_at = now + self.config.grace
                    self._signal_children(signal.SIGTERM)
                else:
                    stop_at = now
            if now >= stop_at and kill_at == float("inf"):
                log.info("cold shutdown: running tasks go back to the queue")
                self._signal_children(signal.SIGUSR1)
                kill_at = now + 10
            if now >= kill_at:
                self._signal_children(signal.SIGKILL)
            if now >= next_beat:
                self._try("heartbeat", lambda: self.fleet.beat(
                    [(c.id, c.process.pid or 0, self.config.threads) for c in self.children], os.getpid()))
                next_beat = now + beat_every
            self._reap_pending()
            if not self.children and (self.signals or self.config.burst):
                self._reap_pending()
                log.info("worker id=%s stopped", self.id)
                return 0
            timeout = max(0.0, min(next_beat, stop_at, kill_at) - time.monotonic())
            ready = wait([c.process.sentinel for c in self.children] + [rfd], timeout)
            if rfd in ready:
                os.read(rfd, 512)
            for child in [c for c in self.children if not c.process.is_alive()]:
                self._exited(child)

    def child_pids(self) -> list[int]:
        """The pids of the live worker processes (the metrics' process figures)."""
        return [c.process.pid for c in self.children if c.process.pid]

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1

    def _signal_children(self, sig: int) -> None:
        for child in self.children:
            if child.process.pid and child.process.is_alive():
                try:
                    os.kill(child.process.pid, sig)
                except ProcessLookupError:
                    pass

    def _spawn(self) -> None:
        self.spawned += 1
        worker_id = f"{self.id}.{self.spawned}"
        # registered before it starts, so tasks it claims are never unknown to the reaper
        self._try("register", lambda: self.fleet.beat([(worker_id, 0, self.config.threads)], os.getpid()))
        process = self._ctx.Process(target=_child_main, args=(self.config, worker_id), name=worker_id)
        # A signal between the fork and the child's own handlers would reach the copy of
        # this supervisor's handler and be lost: the child starts with them blocked.
        signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
        try:
            process.start()
        except OSError as exc:  # out of processes or memory: the next exit or round tries again
            log.error("cannot start worker process %s: %s", worker_id, exc)
            self.pending_reaps.append((worker_id, False, f"worker {worker_id} never started; put back"))
            return
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)
        self.children.append(_Child(worker_id, process))

    def _exited(self, child: _Child) -> None:
        child.process.join()
        code = child.process.exitcode
        self.children.remove(child)
        # Out of shutdown, a process that ends holding started tasks died while running
        # them, whatever its exit code (a clean exit hands its tasks back first).
        charged = not self.signals and code != CANCEL_EXIT  # that one handed its tasks back
        (log.warning if code != 0 and charged else log.info)("worker process %s exited with code %s", child.id, code)
        message = (f"worker {child.id} exited with code {code} while running it" if charged
                   else f"worker {child.id} stopped; put back")
        self.pending_reaps.append((child.id, charged, message))
        if not self.signals and not (self.config.burst and code == 0):
            self._spawn()

    def _reap_pending(self) -> None:
        while self.pending_reaps:
            worker_id, charged, message = self.pending_reaps[0]
            recovered = self._try("reap", partial(self.fleet.reap, worker_id, message, restart=charged))
            if recovered is None:
                return
            self.pending_reaps.pop(0)
            if charged:
                metrics.hooks.recovered(recovered, "worker_exited")
            for tid, t, ident, status in recovered:
                log.warning("task recovered id=%d type=%s identifier=%s status=%s (worker %s exited)",
                            tid, t, ident, status.name, worker_id)

    def _housekeeping_loop(self) -> None:
        """Housekeeping rounds on a connection of their own, until shutdown."""
        tracker = worker_tracker(self.config)
        fleet = Fleet(tracker, self.config.heartbeat)
        try:
            while not self._stop_housekeeping.is_set():
                self._try("housekeeping", partial(self._housekeeping, fleet))
                self._stop_housekeeping.wait(self.config.housekeeping)
        finally:
            tracker.close()

    def _housekeeping(self, fleet: Fleet) -> None:
        done = fleet.housekeeping(self.config.housekeeping)
        if done:
            dead, zombies, retired, ticks = done
            metrics.hooks.recovered(dead, "heartbeat_lost")
            metrics.hooks.recovered(zombies, "timeout")
            for name, created in ticks:
                log.info("schedule %s: %s", name, f"created {created}" if created else "tick skipped")
            for tid, t, ident, status in dead:
                log.warning("task recovered id=%d type=%s identifier=%s status=%s (worker heartbeat lost)",
                            tid, t, ident, status.name)
            for tid, t, ident, status in zombies:
                log.warning("task timed out id=%d type=%s identifier=%s status=%s", tid, t, ident, status.name)
            if retired:
                log.info("retention removed %d tasks", retired)

    def _try(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()``, or None after logging any error: the supervisor never stops
        heartbeating or reaping over one (OOM refusals, READONLY, script errors)."""
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - logged; retried on the next round
            if isinstance(exc, TRANSIENT):
                log.warning("supervisor %s: redis unavailable (%s: %s); retrying", what, type(exc).__name__, exc)
            else:
                log.error("supervisor %s: %s: %s; retrying", what, type(exc).__name__, exc,
                          exc_info=not isinstance(exc, redis.RedisError))
            return None
