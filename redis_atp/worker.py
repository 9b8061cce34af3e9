"""The worker fleet (the seed's ATPD, rebuilt): a supervisor and N worker processes.

Lifecycle of a worker process: it registers, then each of its ``threads`` slots
loops on one script call (``advance``) that ends the previous run (FINISHED, or
FAILED with the error) and claims and starts the next task (SCHEDULED, then
RUNNING, with a fencing token), and runs ``handler(task_status, input)`` once
that reply confirmed the claim. A slot that finds no work waits on its own
mailbox, where the next task that becomes ACCEPTED is handed to it (claimed in
its name); the script that takes it from there starts it only if that claim is
still current (sharded namespaces: the slot waits on the wake keys). An idle
fleet sends almost nothing and starts work within a millisecond.

Failure handling:

* A slot that meets any Redis error backs off and retries; it keeps the run it
  ended until Redis acknowledged that end, and after reconnecting hands back
  whatever Redis says it owns but it is not running (a claim whose reply was
  lost), so no task waits for its type's timeout.
* Handlers talk to Redis on connections of their own, and their calls (each safe
  to repeat under the run's token) are retried across connection failures; a
  handler that still fails with a connection error hands its task back
  uncharged: a connection error never fails a task.
* The supervisor renews every child's heartbeat key; housekeeping runs in a
  thread of its own, so it never delays a heartbeat. A child that dies is
  reaped at once: its started tasks go back to the queue, counted against
  ``maxrestart`` whatever its exit code, and a new child is spawned. Tasks of a
  worker whose heartbeat expired (host lost) are recovered by any worker's
  housekeeping round.
* SIGINT/SIGTERM: warm shutdown (no new work, running tasks finish, up to
  ``grace`` seconds); a second signal or the end of the grace: cold shutdown
  (running tasks go back to the queue, ACCEPTED, then exit). Exit code 0.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
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
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import wait
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .client import Tracker
from .connection import client_from_url
from .errors import Code, StaleTask
from .fleet import Fleet, slot_ids
from .keys import Keys
from .models import StartedTask
from .status import Status
from .taskstatus import TaskStatus
from .validate import clean_text

__all__ = ["WorkerConfig", "Supervisor", "WorkerProcess", "Handlers", "HandlerRefused", "mask_url"]

log = logging.getLogger(__name__)

#: Errors that mean "Redis cannot serve for now" and did nothing: unreachable, a
#: read-only replica after a failover, loading its data, or refusing writes under
#: ``maxmemory`` (a script refused that way stops at its first write): back off and
#: retry. None of them is ever the reason a task ends FAILED.
TRANSIENT: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
    redis.exceptions.OutOfMemoryError, redis.exceptions.BusyLoadingError,
)
#: Longest error message written to a task's log.
MAX_ERROR_CHARS = 2000
#: Seconds an idle slot waits on its mailbox for a hand-off before it checks the queue
#: again (a warm shutdown wakes it at once).
HANDOFF_WAIT = 5.0
#: Signals a worker process handles; blocked from the fork until its handlers are set.
_CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
#: Seconds a handler's status or response call is retried across connection failures.
HANDLER_RETRY_FOR = 30.0
#: Seconds a stopping slot with nothing in flight tries to hand back what it holds
#: (with Redis down, the supervisor's reaping or the heartbeat's expiry does it).
STOP_RELEASE_FOR = 2.0


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of a worker fleet (``redis-atp worker`` flags)."""

    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "atp"
    #: Hash tags the namespace spreads over (``Tracker(shards=...)``).
    shards: int = 1
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Handlers run at once per process, in threads (for I/O-bound handlers).
    threads: int = 1
    #: Directories added to ``sys.path`` (the seed daemon's ``-p``).
    paths: tuple[str, ...] = ()
    #: Module prefixes handlers may come from; empty: any (with a warning).
    allow: tuple[str, ...] = ()
    #: Exit 0 once the queue is empty.
    burst: bool = False
    #: Warm shutdown: seconds running tasks get to finish before a cold shutdown.
    grace: float = 30.0
    #: Seconds without a heartbeat after which a worker's tasks are recovered.
    heartbeat: float = 10.0
    #: Seconds between housekeeping rounds (one worker of the fleet runs each).
    housekeeping: float = 2.0
    #: Seconds an idle slot of a sharded namespace blocks on the wake keys before it
    #: checks again (unsharded slots wait on their mailbox, ``HANDOFF_WAIT``).
    block: float = 1.0
    #: Seconds to wait for Redis at start; 0: fail at once with a clear error.
    wait_for_redis: float = 0.0
    #: How task inputs are decoded: "msgpack", or "pickle" (trusted deployments only:
    #: whoever can write to Redis can then run code on the workers). Must match the
    #: namespace's.
    serializer: str = "msgpack"


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def worker_tracker(config: WorkerConfig, cls: type[Tracker] = Tracker) -> Tracker:
    """A tracker whose client fails fast instead of retrying by itself: a retried
    claim could run twice with its first reply lost, so every connection error
    must reach the worker, which reconciles what it owns after reconnecting."""
    client = client_from_url(config.url, socket_timeout=config.block + 10, socket_connect_timeout=5,
                             retry=Retry(NoBackoff(), 0), socket_keepalive=True)
    tracker = cls(client, config.namespace, shards=config.shards, serializer=config.serializer)
    tracker._owns_client = True
    return tracker


class HandlerTracker(Tracker):
    """The tracker behind the ``TaskStatus`` a handler gets: connections of its own (never
    one with worker traffic on it), and calls retried across connection failures for up
    to ``HANDLER_RETRY_FOR`` seconds. What a ``TaskStatus`` sends is safe to repeat: a
    read, a progress record, a response, or the run ending the task it already ended
    (a no-op under the run's token)."""

    def _call(self, name: str, *args: Any, shard: int = 0, extra_keys: tuple[str, ...] = ()) -> Any:
        call = partial(super()._call, name, *args, shard=shard, extra_keys=extra_keys)
        try:
            return retry_transient(call, HANDLER_RETRY_FOR, f"handler call {name}")
        except TRANSIENT as exc:
            exc.redis_atp_gave_up = True  # type: ignore[attr-defined]  # see WorkerProcess._execute
            raise


class HandlerRefused(Exception):
    """A task names a handler outside the ``--allow`` list."""


def resolve(path: str) -> Any:
    """The object at dotted ``path``: the longest importable module prefix, then
    attributes (``pkg.mod.Class.method`` for a staticmethod or classmethod)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
                continue  # this prefix is not a module: try a shorter one
            raise  # the module exists but an import inside it failed
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(f"no module in handler path {path!r}", name=parts[0])


class Handlers:
    """Imports each handler by dotted path once, within the allowed module prefixes."""

    def __init__(self, allow: tuple[str, ...] = ()) -> None:
        self.allow = allow
        self._cache: dict[str, Callable[..., Any]] = {}

    def allowed(self, path: str) -> bool:
        return not self.allow or any(path == p or path.startswith(p + ".") for p in self.allow)

    def get(self, path: str) -> Callable[..., Any]:
        """The handler at ``path``. Raises :class:`HandlerRefused` (nothing imported) or
        whatever importing it raises."""
        fn = self._cache.get(path)
        if fn is None:
            if not self.allowed(path):
                raise HandlerRefused(f"handler {path!r} is outside the allowed prefixes {list(self.allow)}")
            fn = resolve(path)
            if not callable(fn):
                raise TypeError(f"{path!r} is not callable")
            self._cache[path] = fn
        return fn


class Backoff:
    """Exponential backoff with jitter: 50 ms doubling up to 5 s."""

    def __init__(self) -> None:
        self.delay = 0.05

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 5.0)
        return delay * random.uniform(0.5, 1.5)

    def reset(self) -> None:
        self.delay = 0.05


def retry_transient(action: Callable[[], Any], seconds: float, what: str) -> Any:
    """``action()``, retried with :class:`Backoff` across ``TRANSIENT`` errors for up to
    ``seconds``; then the last error is raised."""
    backoff, give_up = Backoff(), time.monotonic() + seconds
    while True:
        try:
            return action()
        except TRANSIENT as exc:
            delay = backoff.next()
            if time.monotonic() + delay > give_up:
                raise
            _log_redis_error(what, exc, delay)
            time.sleep(delay)


def _log_redis_error(what: str, exc: BaseException, delay: float) -> None:
    """A connection failure is routine (a warning); any other Redis error (OOM refusal,
    READONLY, a script error) is logged with its traceback."""
    if isinstance(exc, TRANSIENT):
        log.warning("%s: redis unavailable (%s: %s); retrying in %.2fs", what, type(exc).__name__, exc, delay)
    else:
        log.error("%s: %s: %s; retrying in %.2fs", what, type(exc).__name__, exc, delay,
                  exc_info=not isinstance(exc, redis.RedisError))


async def _await(awaitable: Any) -> Any:
    return await awaitable


class WorkerProcess:
    """One worker process: ``threads`` slots, each an owner that claims, runs and ends tasks."""

    def __init__(self, config: WorkerConfig, worker_id: str) -> None:
        self.config = config
        self.id = worker_id
        self.tracker = worker_tracker(config)
        self.handler_tracker = worker_tracker(config, HandlerTracker)
        self.fleet = Fleet(self.tracker, config.heartbeat)
        self.handlers = Handlers(config.allow)
        self.owners = slot_ids(worker_id, config.threads)
        self.stopping = threading.Event()  # warm: take no new task
        self.cold = threading.Event()  # cold: hand back running tasks and exit now
        self.crashed = False  # a slot ended other than by shutdown (a bug): exit 1

    def run(self) -> int:
        """The process body; returns the exit code (a cold shutdown exits from here)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor turns Ctrl-C into SIGTERM
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGUSR1, self._on_cold)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)  # blocked since the fork (Supervisor._spawn)
        parent = os.getppid()
        self._retry(lambda: self.fleet.beat([(self.id, os.getpid(), self.config.threads)], parent))
        slots = [threading.Thread(target=self._slot_main, args=(owner,), name=owner, daemon=True)
                 for owner in self.owners]
        for t in slots:
            t.start()
        woken = False
        while any(t.is_alive() for t in slots):
            if self.cold.wait(0.2) or os.getppid() != parent:
                self._cold_exit()
            if self.stopping.is_set() and not woken:
                woken = self._wake_slots()
        self.tracker.close()
        self.handler_tracker.close()
        return 1 if self.crashed else 0

    def _wake_slots(self) -> bool:
        """Wake slots waiting on their mailboxes (warm shutdown): an empty entry is no task.
        It expires, in case its slot stopped, and deleted its mailbox, just before."""
        try:
            pipe = self.tracker.client.pipeline(transaction=False)
            for owner in self.owners:
                mailbox = self.tracker.keys.mailbox(Keys.owner_digest(owner.encode()))
                pipe.rpush(mailbox, b"")
                pipe.pexpire(mailbox, 60_000)
            pipe.execute()
        except Exception:  # noqa: BLE001 - slots find out within their wait anyway
            pass
        return True

    def _on_cold(self, signum: int, frame: Any) -> None:
        self.stopping.set()
        self.cold.set()

    def _retry(self, action: Callable[[], Any], give_up_after: float | None = None) -> Any:
        """``action()`` retried across Redis errors until it succeeds, a cold shutdown, or
        ``give_up_after`` seconds; returns its result, or None if it never succeeded."""
        backoff = Backoff()
        give_up = None if give_up_after is None else time.monotonic() + give_up_after
        while not self.cold.is_set():
            try:
                return action()
            except redis.RedisError as exc:
                delay = backoff.next()
                if give_up is not None and time.monotonic() + delay > give_up:
                    return None
                _log_redis_error(f"worker={self.id}", exc, delay)
                self.cold.wait(delay)
        return None

    def _cold_exit(self) -> None:
        for owner in self.owners:
            try:
                for tid, t, ident, _ in self.fleet.release(owner, (), f"worker {self.id} cold shutdown; put back"):
                    log.warning("task put back id=%d type=%s identifier=%s (cold shutdown)", tid, t, ident)
            except Exception as exc:  # noqa: BLE001 - exiting anyway; the supervisor's reaping will
                log.error("worker=%s cannot put its tasks back (%s); the reaper will", self.id, exc)
        logging.shutdown()
        os._exit(0)

    def _slot_main(self, owner: str) -> None:
        try:
            self._slot(owner)
        except BaseException:
            self.crashed = True
            log.exception("slot=%s stopped by an unexpected error", owner)
            raise

    def _slot(self, owner: str) -> None:
        """Claim, run and end tasks: one ``advance`` round trip per task, whose reply
        confirms the claim before the handler starts. A slot with nothing to do waits
        for a hand-off (or on the wake keys, sharded)."""
        backoff = Backoff()
        reconcile = False
        handoff = self.tracker.shards == 1 and not self.config.burst
        ended: _Ended | None = None  # a run that is over, its end not yet acknowledged by Redis
        waiting = True  # registered as a waiter since the last task started (or not known)
        while not self.stopping.is_set():
            try:
                if reconcile:
                    keep = [ended.task.status.task_id] if ended else []
                    for tid, t, ident, _ in self.fleet.release(
                            owner, keep, "claim reply lost to a Redis failure; put back"):
                        log.warning("task put back id=%d type=%s identifier=%s (claim reply lost)", tid, t, ident)
                    reconcile = waiting = False
                ending, queued, tasks = self.tracker.advance(owner, ended.args() if ended else None, wait=handoff,
                                                             maybe_waiting=waiting)
                if ended:
                    ended.report(ending)
                    ended = None
                if not tasks:
                    if queued:
                        continue  # the claim stopped at its pop limit
                    if self.config.burst:
                        break
                    if not handoff:
                        self.tracker.wait_for_work(self.config.block)
                        continue
                    waiting = True
                    tasks = self.tracker.take_handoff(owner, HANDOFF_WAIT)
                waiting = waiting and not tasks
                for task in tasks:
                    ended = self._execute(task)
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - any Redis error: back off, reconcile, go on
                reconcile = True
                delay = backoff.next()
                _log_redis_error(f"slot={owner}", exc, delay)
                self.stopping.wait(delay)
        if ended:
            self._end(ended)
        self._retry(lambda: self.fleet.release(owner, (), f"worker {self.id} stopping; put back"),
                    give_up_after=STOP_RELEASE_FOR)

    def _execute(self, task: StartedTask) -> _Ended | None:
        """Run a started task's handler; returns how the run ended (None: the run lost its
        task, or handed it back after a connection failure)."""
        ts = TaskStatus(task.status.task_id, tracker=self.handler_tracker, token=task.status.token)
        started = time.monotonic()
        log.info("task start id=%d type=%s identifier=%s", ts.task_id, task.type, task.identifier)
        try:
            handler = self.handlers.get(task.handler)
        except HandlerRefused as exc:
            return _Ended(task, Status.FAILED, f"refused: {exc}", started)
        except BaseException as exc:  # noqa: BLE001 - any import failure fails the task, not the worker
            log.exception("task id=%d cannot import handler %r", ts.task_id, task.handler)
            return _Ended(task, Status.FAILED,
                          f"cannot import handler {task.handler!r}: {type(exc).__name__}: {exc}", started)
        try:
            data = task.input
        except Exception as exc:  # noqa: BLE001 - written by hand, or by another version
            log.error("task id=%d cannot decode its input: %s: %s", ts.task_id, type(exc).__name__, exc)
            return _Ended(task, Status.FAILED,
                          f"cannot decode the input with {self.tracker.serializer.name}: {type(exc).__name__}: {exc}",
                          started)
        try:
            result = handler(ts, data)
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
        except StaleTask as exc:
            log.warning("task lost id=%d type=%s identifier=%s: %s", ts.task_id, task.type, task.identifier, exc)
            return None
        except BaseException as exc:  # noqa: BLE001 - a handler's failure is the task's, not the worker's
            if getattr(exc, "redis_atp_gave_up", False):  # its TaskStatus calls could not reach Redis
                self._hand_back(task, f"put back: Redis could not serve the handler ({type(exc).__name__}: {exc})")
                return None
            log.exception("task id=%d type=%s identifier=%s raised", ts.task_id, task.type, task.identifier)
            return _Ended(task, Status.FAILED, f"{type(exc).__name__}: {exc}", started)
        return _Ended(task, Status.FINISHED, "", started)

    def _hand_back(self, task: StartedTask, message: str) -> None:
        """Put a run's task back in the queue, uncharged (its run met an infrastructure
        failure, not a failure of its own); retried until Redis takes it."""
        ts = task.status
        log.warning("task id=%d type=%s identifier=%s: %s", ts.task_id, task.type, task.identifier, message)
        try:
            self._retry(lambda: self.tracker.reenqueue_task(ts.task_id, clean_text(message, MAX_ERROR_CHARS),
                                                            token=ts.token))
        except StaleTask:
            pass  # recovered meanwhile: nothing to hand back

    def _end(self, ended: _Ended) -> None:
        """Record a run's end on its own (at shutdown), retrying across Redis failures."""
        ts = ended.task.status
        try:
            changed = self._retry(lambda: self.tracker._finish(ts.task_id, ended.outcome, ended.message,
                                                               ts.token, if_unfinished=True))
        except StaleTask:
            changed = Code.STALE
        if changed is not None:
            ended.report(int(changed))


@dataclass
class _Ended:
    """A run that is over; its end is recorded by the next ``advance`` (idempotent if retried)."""

    task: StartedTask
    outcome: Status
    message: str
    started: float
    duration: float = 0.0

    def __post_init__(self) -> None:
        self.duration = time.monotonic() - self.started
        self.message = clean_text(self.message, MAX_ERROR_CHARS)

    def args(self) -> tuple[TaskStatus, Status, str]:
        return (self.task.status, self.outcome, self.message)

    def report(self, ending: int) -> None:
        t, ts = self.task, self.task.status
        if ending < 0:
            log.warning("task lost id=%d type=%s identifier=%s: the run no longer owns it (%s)",
                        ts.task_id, t.type, t.identifier, Code(ending).name)
            return
        name = self.outcome.name.lower() if ending else "ended by handler"
        level = logging.WARNING if ending and self.outcome is Status.FAILED else logging.INFO
        log.log(level, "task %s id=%d type=%s identifier=%s duration=%.3fs%s", name, ts.task_id, t.type,
                t.identifier, self.duration, f" error={self.message!r}" if self.message else "")


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
                 "serializer=%s%s", self.id, self.host, os.getpid(), mask_url(c.url), c.namespace, c.shards,
                 c.processes, c.threads, c.serializer, " burst" if c.burst else "")
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
            self.tracker._check_server()  # the namespace's shard count and serializer

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
        signal.pthread_sigmask(signal.SIG_BLOCK, _CHILD_SIGNALS)
        try:
            process.start()
        except OSError as exc:  # out of processes or memory: the next exit or round tries again
            log.error("cannot start worker process %s: %s", worker_id, exc)
            self.pending_reaps.append((worker_id, False, f"worker {worker_id} never started; put back"))
            return
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _CHILD_SIGNALS)
        self.children.append(_Child(worker_id, process))

    def _exited(self, child: _Child) -> None:
        child.process.join()
        code = child.process.exitcode
        self.children.remove(child)
        # Out of shutdown, a process that ends holding started tasks died while running
        # them, whatever its exit code (a clean exit hands its tasks back first).
        charged = not self.signals
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
            dead, zombies, retired = done
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
