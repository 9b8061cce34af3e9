"""One worker process: ``threads`` slots that claim, run and end tasks, and an event
loop for ``async def`` handlers (see :mod:`redis_atp.worker` for the lifecycle)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as NoRetries

from ..client import Tracker
from ..connection import client_from_url
from ..errors import Fail, Retry, StaleTask, TaskCancelled
from ..io_sync import SyncIO
from ..keys import Keys
from ..models import StartedTask
from ..protocol import tasks as task_ops
from ..status import Status
from ..taskstatus import TaskStatus
from ..validate import clean_text
from . import metrics
from .aioloop import AsyncHandlers
from .config import WorkerConfig, worker_client_options
from .fleet import Fleet, slot_ids
from .handlers import HandlerRefused, Handlers
from .protocol import Claims
from .retry import Backoff, RetryingIO, log_redis_error
from .runs import MAX_ERROR_CHARS, Ended, as_response

__all__ = ["WorkerProcess", "worker_tracker", "CHILD_SIGNALS", "CANCEL_EXIT"]

log = logging.getLogger("redis_atp.worker")

#: Seconds an idle slot waits on its mailbox for a hand-off before it checks the queue
#: again (a warm shutdown wakes it at once).
HANDOFF_WAIT = 5.0
#: Signals a worker process handles; blocked from the fork until its handlers are set.
CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
#: Seconds a stopping slot with nothing in flight tries to hand back what it holds
#: (with Redis down, the supervisor's reaping or the heartbeat's expiry does it).
STOP_RELEASE_FOR = 2.0
#: Seconds between a busy process's looks at whether the tasks it runs were cancelled.
CANCEL_CHECK = 1.0
#: Exit code of a process that stopped itself to end a cancelled handler that did not
#: stop: it handed its other tasks back first, so the supervisor charges no restart.
CANCEL_EXIT = 75


def worker_tracker(config: WorkerConfig, io: type[SyncIO] = SyncIO) -> Tracker:
    """A tracker for the worker (``io``: its executor, e.g. retrying for handlers)."""
    client = client_from_url(config.url, retry=NoRetries(NoBackoff(), 0), **worker_client_options(config))
    tracker = Tracker(client, config.namespace, shards=config.shards, serializer=config.serializer)
    tracker.io = io(client)
    tracker._owns_client = True
    return tracker


async def _await(awaitable: Any) -> Any:
    return await awaitable


class WorkerProcess:
    """One worker process: ``threads`` slots, each an owner that claims, runs and ends tasks."""

    def __init__(self, config: WorkerConfig, worker_id: str) -> None:
        self.config = config
        self.id = worker_id
        self.tracker = worker_tracker(config)
        self.claims = Claims(self.tracker)
        self.handler_tracker = worker_tracker(config, RetryingIO)
        self.fleet = Fleet(self.tracker, config.heartbeat)
        self.aio = AsyncHandlers(self, config)
        self.handlers = Handlers(config.allow)
        self.owners = slot_ids(worker_id, config.threads)
        self.stopping = threading.Event()  # warm: take no new task
        self.cold = threading.Event()  # cold: hand back running tasks and exit now
        self.crashed = False  # a slot ended other than by shutdown (a bug): exit 1
        self.running: dict[str, StartedTask] = {}  # owner -> the task its sync handler runs
        self.started_at: dict[int, float] = {}  # task id -> when its handler started (monotonic)
        self.cancelled_at: dict[int, float] = {}  # task id -> when this process saw it cancelled
        self._cancels = -1  # the namespace's cancel counter when this process last looked at its runs
        self._hard: dict[str, tuple[float | None, float]] = {}  # type -> (hard_timeout, when read)

    def run(self) -> int:
        """The process body; returns the exit code (a cold shutdown exits from here)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor turns Ctrl-C into SIGTERM
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGUSR1, self._on_cold)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)  # blocked since the fork (Supervisor._spawn)
        parent = os.getppid()
        self._retry(lambda: self.fleet.beat([(self.id, os.getpid(), self.config.threads)], parent))
        slots = [threading.Thread(target=self._slot_main, args=(owner,), name=owner, daemon=True)
                 for owner in self.owners]
        for t in slots:
            t.start()
        woken, next_check = False, 0.0
        while any(t.is_alive() for t in slots):
            if self.cold.wait(0.2) or os.getppid() != parent:
                self._cold_exit()
            if self.stopping.is_set() and not woken:
                woken = self._wake_slots()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CANCEL_CHECK
                self._watch_runs()
        self.aio.close()
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

    def _watch_runs(self) -> None:
        """Once a second while busy (one read of the namespace's cancel counter, and of its
        runs' flags only when that moved): stop a handler whose task was cancelled and did not
        stop on its own within ``cancel_grace``, or whose run passed its type's
        ``hard_timeout`` (that task is first recovered as a time-out, against
        ``maxrestart``). An async handler is cancelled on its loop; for a sync one (a
        thread cannot be stopped) the process hands its other tasks back, uncharged, and
        exits with ``CANCEL_EXIT``; the supervisor starts a new one."""
        runs = {t.task_id: (owner, t) for owner, t in list(self.running.items())}
        runs.update({t.task_id: (owner, t) for owner, t in self.aio.running()})
        for seen in (self.cancelled_at, self.started_at):
            for tid in [tid for tid in seen if tid not in runs]:
                seen.pop(tid, None)
        if not runs:
            return
        try:
            cancels = self.tracker.io.run(task_ops.cancels(self.tracker.ns))
            if cancels != self._cancels or self.cancelled_at:  # someone cancelled a live task: whose?
                flags = self.tracker.io.run(task_ops.cancelled_flags(self.tracker.ns, [t for _, t in runs.values()]))
                self._cancels = cancels
            else:
                flags = [False] * len(runs)
            limits = [self._hard_timeout(t.type) for _, t in runs.values()]
        except redis.RedisError:
            return  # the next look will tell
        now = time.monotonic()
        for (tid, (owner, task)), flag, limit in zip(runs.items(), flags, limits, strict=True):
            if flag and now - self.cancelled_at.setdefault(tid, now) >= self.config.cancel_grace:
                metrics.hooks.cancelled(task, self.started_at.get(tid, now))
                self._stop(owner, task, "cancelled, its handler did not stop")
            elif not flag and limit and now - self.started_at.get(tid, now) > limit:
                others = [t for t, (o, _) in runs.items() if o == owner and t != tid]
                try:
                    metrics.hooks.recovered(self.fleet.release(owner, others, f"hard timeout: the run passed "
                                                               f"{limit:g}s; killed", restart=True), "hard_timeout")
                except redis.RedisError:
                    continue  # the next look tries again
                self._stop(owner, task, f"past its hard timeout of {limit:g}s")

    def _hard_timeout(self, type_name: str) -> float | None:
        """The type's ``hard_timeout``, read at most every 10 s."""
        value, read = self._hard.get(type_name, (None, -1e9))
        if time.monotonic() - read > 10:
            try:
                value = self.tracker.get_task_type(type_name).hard_timeout
            except LookupError:
                value = None
            self._hard[type_name] = (value, time.monotonic())
        return value

    def _stop(self, owner: str, task: StartedTask, why: str) -> None:
        """Stop the handler of ``task``: see :meth:`_watch_runs`."""
        if self.aio.cancel(task.task_id):
            log.warning("task id=%d type=%s: %s; cancelled it on the loop", task.task_id, task.type, why)
            return
        log.warning("task id=%d type=%s: %s; stopping worker process %s", task.task_id, task.type, why, self.id)
        for other in self.owners:
            try:
                self.fleet.release(other, (), f"worker {self.id} stopped to end a handler; put back")
            except Exception as exc:  # noqa: BLE001 - the supervisor's reaping puts them back
                log.error("worker=%s cannot put its tasks back (%s); the reaper will", self.id, exc)
        logging.shutdown()
        os._exit(CANCEL_EXIT)

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
                log_redis_error(f"worker={self.id}", exc, delay)
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
        ended: Ended | None = None  # a run that is over, its end not yet acknowledged by Redis
        waiting = True  # registered as a waiter since the last task started (or not known)
        while not self.stopping.is_set():
            try:
                if reconcile:
                    keep = ([ended.task.task_id] if ended else []) + self.aio.in_flight(owner)
                    for tid, t, ident, _ in self.fleet.release(
                            owner, keep, "claim reply lost to a Redis failure; put back"):
                        log.warning("task put back id=%d type=%s identifier=%s (claim reply lost)", tid, t, ident)
                    reconcile = waiting = False
                self.aio.wait_for_room(self.stopping)  # claim nothing while the event loop is full
                if self.stopping.is_set():
                    break
                step = self.claims.advance(owner, ended.args() if ended else None, wait=handoff,
                                           maybe_waiting=waiting)
                tasks = step.tasks
                if ended:
                    ended.report(step.ending)
                    metrics.hooks.ended(ended, step.ending)
                    ended = None
                if not tasks:
                    if step.ready:
                        continue  # the claim stopped at its pop limit
                    due_in = float("inf") if step.due_in is None else step.due_in
                    if self.config.burst:
                        if step.due_in is None:
                            break  # nothing ready and nothing delayed
                        self.stopping.wait(min(due_in, self.config.block))
                        continue
                    if not handoff:
                        self.claims.wait_for_work(min(self.config.block, due_in))
                        continue
                    waiting = True
                    tasks = self.claims.take_handoff(owner, min(HANDOFF_WAIT, due_in))
                waiting = waiting and not tasks
                for task in tasks:
                    ended = self._execute(owner, task)
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - any Redis error: back off, reconcile, go on
                reconcile = True
                delay = backoff.next()
                log_redis_error(f"slot={owner}", exc, delay)
                self.stopping.wait(delay)
        if ended:
            self.end(ended)
        self.aio.drain(owner, self.cold)  # its async runs end on their own
        message = f"worker {self.id} stopping; put back"
        self._retry(lambda: self.fleet.release(owner, self.aio.in_flight(owner), message),
                    give_up_after=STOP_RELEASE_FOR)

    def _execute(self, owner: str, task: StartedTask) -> Ended | None:
        """Run a started task's handler; returns how the run ended (None: the run lost its
        task, handed it back after a connection failure, or went to the event loop)."""
        started = self.started_at[task.task_id] = time.monotonic()
        metrics.hooks.started(task)
        log.info("task start id=%d type=%s identifier=%s", task.task_id, task.type, task.identifier)
        prepared = self.prepare(task, started)
        if isinstance(prepared, Ended):
            return prepared
        handler, data = prepared
        if self.handlers.is_async(task.handler):
            self.aio.submit(owner, task, handler, data, started, self.stopping)
            return None
        self.running[owner] = task
        try:
            result = handler(TaskStatus(task.task_id, tracker=self.handler_tracker, token=task.token), data)
            if result is not None and (asyncio.iscoroutine(result) or isinstance(result, asyncio.Future)):
                result = asyncio.run(_await(result))
            if result is not None:
                self.handler_tracker.io.run(task_ops.set_task_response(
                    self.handler_tracker.ns, task.task_id, *as_response(result), task.token, if_absent=True))
        except BaseException as exc:  # noqa: BLE001 - a handler's failure is the task's, not the worker's
            return self.failed(task, exc, started)
        finally:
            self.running.pop(owner, None)
        return Ended(task, Status.FINISHED, "", started)

    def prepare(self, task: StartedTask, started: float) -> tuple[Callable[..., Any], Any] | Ended:
        """The handler of a task and its decoded input, or the run's end if it has none."""
        try:
            handler = self.handlers.get(task.handler)
        except HandlerRefused as exc:
            return Ended(task, Status.FAILED, f"refused: {exc}", started)
        except BaseException as exc:  # noqa: BLE001 - any import failure fails the task, not the worker
            log.exception("task id=%d cannot import handler %r", task.task_id, task.handler)
            return Ended(task, Status.FAILED,
                         f"cannot import handler {task.handler!r}: {type(exc).__name__}: {exc}", started)
        try:
            return handler, self.tracker.serializer.unpack(task.raw_input)
        except Exception as exc:  # noqa: BLE001 - written by hand, or by another version
            log.error("task id=%d cannot decode its input: %s: %s", task.task_id, type(exc).__name__, exc)
            return Ended(task, Status.FAILED, f"cannot decode the input with {self.tracker.serializer.name}: "
                                              f"{type(exc).__name__}: {exc}", started)

    def failed(self, task: StartedTask, exc: BaseException, started: float) -> Ended | None:
        """How a run whose handler raised ``exc`` ends: None if it lost its task
        (``StaleTask``) or Redis could not serve its calls (then it is handed back
        uncharged); otherwise FAILED with the error."""
        if isinstance(exc, TaskCancelled):
            metrics.hooks.cancelled(task, started)
            log.info("task cancelled id=%d type=%s identifier=%s: its handler stopped", task.task_id, task.type,
                     task.identifier)
            return None
        if isinstance(exc, StaleTask):
            log.warning("task lost id=%d type=%s identifier=%s: %s", task.task_id, task.type, task.identifier, exc)
            return None
        if getattr(exc, "redis_atp_gave_up", False):  # its TaskStatus calls could not reach Redis
            self.hand_back(task, f"put back: Redis could not serve the handler ({type(exc).__name__}: {exc})")
            return None
        if isinstance(exc, Fail):
            return Ended(task, Status.FAILED, str(exc) or "Fail", started)
        if isinstance(exc, Retry):
            return Ended(task, Status.FAILED, str(exc), started, "auto" if exc.delay is None else repr(exc.delay))
        log.error("task id=%d type=%s identifier=%s raised", task.task_id, task.type, task.identifier,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return Ended(task, Status.FAILED, f"{type(exc).__name__}: {exc}", started, "auto")

    def hand_back(self, task: StartedTask, message: str) -> None:
        """Put a run's task back in the queue, uncharged (its run met an infrastructure
        failure, not a failure of its own); retried until Redis takes it."""
        log.warning("task id=%d type=%s identifier=%s: %s", task.task_id, task.type, task.identifier, message)
        try:
            self._retry(lambda: self.tracker.reenqueue_task(task.task_id, clean_text(message, MAX_ERROR_CHARS),
                                                            token=task.token))
        except StaleTask:
            pass  # recovered meanwhile: nothing to hand back

    def end(self, ended: Ended) -> None:
        """Record a run's end on its own (at shutdown, or of an async run), retrying
        across Redis failures until Redis took it or a cold shutdown."""
        code = self._retry(lambda: self.claims.end_run(ended.args()))
        if code is not None:
            ended.report(code)
            metrics.hooks.ended(ended, code)
