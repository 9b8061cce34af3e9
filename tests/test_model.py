"""Model-based test: a Hypothesis state machine drives one namespace through the
seed API, the worker protocol (advance, hand-offs, release, reap) and the
operator calls, and after every step checks every index of redis_atp/keys.py
(status, counters, queue, live sets, owned sets, mailboxes, waiters, TTLs, the
wake key) against a pure-Python model. On a real Redis, and on fakeredis.

Two things the model cannot know in advance are read back, never guessed:
the order in which a script walks a Redis set (``release_owned`` walks the
owner's set with SMEMBERS, ``reap_zombies`` a live zset by time), taken from the
script's reply (its set of tasks is checked, then the model applies it in that
order), and the expiry of a task kept with a TTL (``timeret``), which may vanish
between two steps: any call about such a task may find it gone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from redis_atp import (
    DuplicateTask,
    InvalidTransition,
    QueueEmpty,
    RedisATPError,
    StaleTask,
    Status,
    TaskNotFound,
    TaskStatus,
    Tracker,
)
from redis_atp.daemon.fleet import Fleet
from redis_atp.daemon.protocol import Claims
from redis_atp.keys import Keys

from .conftest import bound, delete_namespace, live_queue, runs

HANDLER = "redis_atp.tracker.dummyHandler"
TYPES = ("a", "b")
IDENTS = ("x", "y", "z")
OWNERS = ("o1", "o2", "w1/0", "w2/0")
WORKERS = ("w1", "w2")
MAXRESTART = 2
RETRIES = {"a": 0, "b": 1}  # b's failing handler runs again, at once (retry_delay 0)
RETENTION = 0.05
LONG = 3600
NO_SUCH_ID = 999_999
TASK = st.integers(0, 63)  # an index into the task ids the model has seen
RUN = st.integers(0, 63)  # an index into the runs handed out
PRIO = st.sampled_from([0, 0, 2, -1])  # the default level most of the time

LIVE = (Status.SCHEDULED, Status.RUNNING, Status.PAUSED)
TERMINAL = (Status.FINISHED, Status.FAILED)
COUNTERS = {Status.ACCEPTED: "accepted", Status.SCHEDULED: "scheduled", Status.RUNNING: "running",
            Status.PAUSED: "paused"}


class _Unknown:
    """The token of a run the test holds no TaskStatus of (``dequeue_task``)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


@dataclass
class MTask:
    id: int
    type: str
    ident: str
    status: Status = Status.ACCEPTED
    owner: str | None = None
    token: Any = None  # int, an _Unknown, or None (no run token stored)
    restarts: int = 0
    retries: int = 0
    delayed: bool = False  # ACCEPTED and held until its due time (an hour away: never due here)
    prio: int = 0
    ttl: bool = False  # ended under a positive timeret: its hash has a TTL
    gone: bool = False  # deleted, unregistered or expired
    parked: bool = False  # ACCEPTED and set aside by a claim while its type is paused

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def expiring(self) -> bool:
        return not self.gone and self.terminal and self.ttl


def _digest(owner: str) -> str:
    return Keys.owner_digest(owner.encode())


class TrackerMachine(RuleBasedStateMachine):
    connect: Callable[[], Any]  # set on a subclass per backend: a new client per example

    def __init__(self) -> None:
        super().__init__()
        self.client = type(self).connect()
        self.ns = "model-" + uuid.uuid4().hex[:10]
        self.tracker = Tracker(self.client, self.ns, max_queue_size=0)
        self.fleet = Fleet(self.tracker)
        self.timeret = {name: -1.0 for name in TYPES}
        for name in TYPES:
            self._register(name)
        self.m: dict[int, MTask] = {}
        self.queue: list[int] = []
        self.waiters: list[str] = []
        self.waiter_token: dict[str, int] = {}
        self.mailbox: dict[str, list[tuple[int, Any]]] = {o: [] for o in OWNERS}
        self.ids: list[int] = []  # every task id seen, deleted and expired ones too
        self.held: list[TaskStatus] = []  # every run handed out (claim, advance, take_handoff)
        self.paused: set[str | None] = set()  # paused types; None: the namespace
        self.parked: list[int] = []  # set aside by claims, in the order they met them

    def teardown(self) -> None:
        delete_namespace(self.client, self.ns)
        # the tracker holds a pooled connection while it lives, and Hypothesis may keep
        # the machine alive: close this example's client
        self.client.close()

    # ------------------------------------------------------------------ model helpers
    def _register(self, name: str, timeout: float = LONG) -> None:
        self.tracker.register_task_type(name, HANDLER, timeout=timeout, timeret=self.timeret[name],
                                        maxrestart=MAXRESTART, retries=RETRIES[name], retry_delay=0)

    def _task(self, tid: int) -> MTask | None:
        t = self.m.get(tid)
        return None if t is None or t.gone else t

    def _by_ident(self, type_: str, ident: str) -> MTask | None:
        for t in self.m.values():
            if not t.gone and t.type == type_ and t.ident == ident:
                return t
        return None

    def _to(self, t: MTask, new: Status) -> None:
        """set_status: the model's side of one status change."""
        old = t.status
        if old == Status.ACCEPTED and new != Status.ACCEPTED and t.id in self.queue:
            self.queue.remove(t.id)
        if old == Status.ACCEPTED and new != Status.ACCEPTED and t.parked:
            self._unpark(t)
        if new != Status.ACCEPTED:
            t.delayed = False
        if old in LIVE and new not in LIVE:
            t.owner = None
        if new == Status.ACCEPTED:
            t.token = None
        if new in TERMINAL:
            t.ttl = self.timeret[t.type] > 0
        elif old in TERMINAL:
            t.ttl = False
        t.status = new
        if new == Status.ACCEPTED and old != Status.ACCEPTED:
            self._offer(t)

    def _is_paused(self, type_: str) -> bool:
        return None in self.paused or type_ in self.paused

    def _unpark(self, t: MTask) -> None:
        t.parked = False
        self.parked.remove(t.id)

    def _offer(self, t: MTask) -> None:
        """A task that became ACCEPTED goes to the longest-waiting waiter, else the queue;
        nothing paused is handed to a waiter."""
        if self.waiters and not self._is_paused(t.type):
            w = self.waiters.pop(0)
            event("hand-off")
            token = self.waiter_token.pop(w)
            t.status, t.owner, t.token = Status.SCHEDULED, w, token
            self.mailbox[w].append((t.id, token))
        else:
            self.queue.append(t.id)

    def _recover(self, t: MTask) -> None:
        t.token = None
        if t.restarts < MAXRESTART:
            t.restarts += 1
            self._to(t, Status.ACCEPTED)
        else:
            event("recovery: restart limit, FAILED")
            self._to(t, Status.FAILED)

    def _gone(self, t: MTask) -> None:
        if t.expiring:
            event("retained task expired")
        if t.status == Status.ACCEPTED and t.id in self.queue:
            self.queue.remove(t.id)
        if t.parked:
            self._unpark(t)
        t.gone = True

    def _current_handoff(self, owner: str, tid: int, token: Any) -> MTask | None:
        t = self._task(tid)
        if t and t.status == Status.SCHEDULED and t.owner == owner and t.token == token:
            return t
        return None

    def _ready(self, t: MTask) -> None:
        """A delayed task is ready now: offered as a task that became ACCEPTED."""
        t.delayed = False
        self._offer(t)

    def _take_mailbox(self, owner: str) -> MTask | None:
        box = self.mailbox[owner]
        while box:
            tid, token = box.pop(0)
            t = self._current_handoff(owner, tid, token)
            if t is not None and self._is_paused(t.type):
                event("hand-off paused before it started")
                self._to(t, Status.ACCEPTED)  # back to the queue, uncharged
            elif t is not None:
                self._to(t, Status.RUNNING)
                return t
        return None

    def _ordered_queue(self) -> list[int]:
        """The queue in claim order: highest priority level first, FIFO within one."""
        return sorted(self.queue, key=lambda tid: -self.m[tid].prio)

    def _claim(self, owner: str, count: int, start: bool) -> list[MTask]:
        out: list[MTask] = []
        while self.queue and len(out) < count and None not in self.paused:
            tid = self._ordered_queue()[0]
            self.queue.remove(tid)
            t = self.m[tid]
            if t.type in self.paused:
                event("claim parks a task of a paused type")
                t.parked = True
                self.parked.append(tid)
                continue
            t.status, t.owner, t.token = Status.SCHEDULED, owner, _Unknown()
            if start:
                self._to(t, Status.RUNNING)
            out.append(t)
        return out

    def _call(self, tid: int, thunk: Callable[[], Any], expect: type[Exception] | None) -> tuple[bool, Any]:
        """Call ``thunk`` about task ``tid``; ``expect``: the refusal the model predicts
        if the task exists (None: success). Returns (True, reply) when it succeeded,
        (False, None) when it was refused as predicted or the task is gone."""
        t = self._task(tid)
        try:
            out = thunk()
        except TaskNotFound:
            if t is None:
                return False, None
            assert t.expiring, f"task {tid} not found; the model has {t}"
            self._gone(t)  # expired meanwhile
            return False, None
        except RedisATPError as exc:
            assert t is not None, f"task {tid} should not exist, got {exc!r}"
            assert expect is not None and isinstance(exc, expect), f"{t}: unexpected {exc!r}"
            return False, None
        assert t is not None, f"task {tid} should not exist"
        assert expect is None, f"{t}: expected {expect.__name__}, got success"
        return True, out

    def _apply_recovered(self, reply: list[tuple[int, str, str, Status]], expected: set[int],
                         act: Callable[[MTask], None]) -> None:
        """Apply a script's walk over a Redis set in the order it reports."""
        got = [r[0] for r in reply]
        assert sorted(got) == sorted(expected), f"acted on {got}, model expects {sorted(expected)}"
        for tid, kind, ident, status in reply:
            t = self.m[tid]
            assert (kind, ident) == (t.type, t.ident)
            act(t)
            assert status == t.status, f"task {tid}: reply says {status.name}, model {t.status.name}"

    def _release(self, owner: str, keep: set[int], restart: bool,
                 call: Callable[[], list[tuple[int, str, str, Status]]]) -> None:
        box = self.mailbox[owner]
        # hand-offs still current go back, kept or not (no one runs a task not taken from
        # the mailbox); stale entries are left to the owned-set walk
        handed = {tid for tid, tok in box if self._current_handoff(owner, tid, tok)}
        held = {t.id for t in self.m.values() if not t.gone and t.live and t.owner == owner
                and t.id not in keep and t.id not in handed}
        reply = call()
        event(f"release: {len(reply)} acted, {len(keep & {t.id for t in self._present() if t.owner == owner})} kept")
        if owner in self.waiters:
            self.waiters.remove(owner)
            del self.waiter_token[owner]
        self.mailbox[owner] = []

        def act(t: MTask) -> None:
            if restart and t.id not in handed and t.status != Status.SCHEDULED:
                self._recover(t)
            else:
                self._to(t, Status.ACCEPTED)

        self._apply_recovered(reply, handed | held, act)

    # Task ids and runs are drawn as indexes into what the model has seen (newest
    # first; past the last id, an id that never existed), not from Bundles: the
    # expiry of retained tasks is timing-dependent, and with Bundles it would change
    # the shape of the data Hypothesis draws between two runs of the same example.
    def _id(self, i: int) -> int:
        present = [tid for tid in self.ids[::-1] if not self.m[tid].gone]
        others = [tid for tid in self.ids[::-1] if self.m[tid].gone] + [NO_SUCH_ID]
        pool = present if present and i < 48 else others  # mostly tasks that exist
        tid = pool[i % len(pool)]
        note(f"  task {tid}: {self.m.get(tid)}")
        return tid

    def _run(self, i: int) -> TaskStatus | None:
        if not self.held:
            return None
        run = self.held[::-1][i % len(self.held)]
        note(f"  run {run}: {self.m.get(run.task_id)}")
        return run

    # ------------------------------------------------------------------ producers
    def _enqueue_one(self, type_: str, ident: str, result: Any, delayed: bool = False, prio: int = 0) -> int | None:
        old = self._by_ident(type_, ident)
        if isinstance(result, DuplicateTask):
            assert old is not None, f"DuplicateTask for new {type_}::{ident}"
            return None
        assert isinstance(result, int), result
        if old is not None:
            assert old.expiring, f"{type_}::{ident} enqueued twice; the model has {old}"
            self._gone(old)
        assert result not in self.m
        t = self.m[result] = MTask(result, type_, ident, delayed=delayed, prio=prio)
        self.ids.append(result)
        if not delayed:
            self._offer(t)
        return result

    @rule(type_=st.sampled_from(TYPES), ident=st.sampled_from(IDENTS), prio=PRIO)
    def enqueue(self, type_: str, ident: str, prio: int) -> None:
        try:
            result: Any = self.tracker.enqueue_task(type_, ident, {"i": ident}, priority=prio)
        except DuplicateTask as exc:
            result = exc
        self._enqueue_one(type_, ident, result, prio=prio)

    @rule(items=st.lists(st.tuples(st.sampled_from(TYPES), st.sampled_from(IDENTS)),
                                       min_size=1, max_size=5), later=st.booleans(), prio=PRIO)
    def enqueue_many(self, items: list[tuple[str, str]], later: bool, prio: int) -> None:
        results = self.tracker.enqueue_many([(ty, ident, [ident]) for ty, ident in items],
                                            delay=LONG if later else None, priority=prio)
        for (ty, ident), r in zip(items, results, strict=True):
            self._enqueue_one(ty, ident, r, delayed=later, prio=prio)

    @rule(type_=st.sampled_from(TYPES), ident=st.sampled_from(IDENTS))
    def enqueue_later(self, type_: str, ident: str) -> None:
        try:
            result: Any = self.tracker.enqueue_task(type_, ident, {"i": ident}, delay=LONG)
        except DuplicateTask as exc:
            result = exc
        self._enqueue_one(type_, ident, result, delayed=True)

    # ------------------------------------------------------------------ seed path
    @rule(owner=st.sampled_from(OWNERS), k=st.integers(1, 3))
    def dequeue(self, owner: str, k: int) -> None:
        expected = [t.id for t in self._claim(owner, k, start=False)]
        try:
            got = self.tracker.dequeue_task(owner, count=k)
        except QueueEmpty:
            got = []
        assert got == expected

    @rule(owner=st.sampled_from(OWNERS), k=st.integers(1, 2))
    def claim(self, owner: str, k: int) -> None:
        expected = self._claim(owner, k, start=False)
        try:
            got = runs(self.tracker, owner, count=k)
        except QueueEmpty:
            got = []
        assert [ts.task_id for ts in got] == [t.id for t in expected]
        for t, ts in zip(expected, got, strict=True):
            t.token = ts.token
        self.held += got

    @rule(i=TASK)
    def start_task(self, i: int) -> None:
        tid = self._id(i)
        t = self._task(tid)
        bad = t is not None and t.terminal
        ok, _ = self._call(tid, lambda: self.tracker.start_task(tid), InvalidTransition if bad else None)
        if ok:
            assert t is not None
            self._to(t, Status.RUNNING)

    @rule(i=RUN, action=st.sampled_from(["setRunning", "setPaused", "setSuccess", "setFailure",
                                          "storeResponse"]))
    def fenced(self, i: int, action: str) -> None:
        run = self._run(i)
        if run is None:
            return
        t = self._task(run.task_id)
        current = t is not None and t.token == run.token
        if action == "storeResponse":
            allowed = current and (t.live or t.terminal)  # type: ignore[union-attr]
            ok, _ = self._call(run.task_id, lambda: run.storeResponse(f"r{run.token}"),
                               None if allowed else StaleTask)
            return
        outcome = {"setRunning": Status.RUNNING, "setPaused": Status.PAUSED,
                   "setSuccess": Status.FINISHED, "setFailure": Status.FAILED}[action]
        noop = current and outcome in TERMINAL and t.status == outcome  # type: ignore[union-attr]
        allowed = noop or (current and t.live)  # type: ignore[union-attr]
        ok, _ = self._call(run.task_id, lambda: getattr(run, action)("fenced"), None if allowed else StaleTask)
        if ok and not noop:
            assert t is not None
            self._to(t, outcome)

    # ------------------------------------------------------------------ operator calls
    @rule(i=TASK, outcome=st.sampled_from([Status.FINISHED, Status.FAILED]))
    def stop_task(self, i: int, outcome: Status) -> None:
        tid = self._id(i)
        t = self._task(tid)
        stop = self.tracker.stop_task_success if outcome == Status.FINISHED else self.tracker.stop_task_failure
        ok, _ = self._call(tid, lambda: stop(tid), None)
        if ok:
            assert t is not None
            t.token = None
            self._to(t, outcome)

    @rule(i=TASK)
    def cancel(self, i: int) -> None:
        tid = self._id(i)
        t = self._task(tid)
        ok, changed = self._call(tid, lambda: self.tracker.cancel_task(tid), None)
        if ok:
            assert t is not None
            assert changed is (not t.terminal), f"cancel said {changed}; the model has {t}"
            if not t.terminal:
                t.token = None
                self._to(t, Status.FAILED)

    @rule(i=TASK)
    def reenqueue(self, i: int) -> None:
        tid = self._id(i)
        t = self._task(tid)
        ok, _ = self._call(tid, lambda: self.tracker.reenqueue_task(tid), None)
        if ok:
            assert t is not None
            if t.terminal:
                t.restarts = t.retries = 0
            if t.delayed:
                self._ready(t)  # a delayed task is ready at once
            else:
                self._to(t, Status.ACCEPTED)

    @rule(i=TASK)
    def delete(self, i: int) -> None:
        tid = self._id(i)
        t = self._task(tid)
        ok, _ = self._call(tid, lambda: self.tracker.delete_task(tid), None)
        if ok:
            assert t is not None
            self._gone(t)

    @rule(i=TASK, pause=st.booleans())
    def pause_resume(self, i: int, pause: bool) -> None:
        tid = self._id(i)
        t = self._task(tid)
        call = self.tracker.pause_task if pause else self.tracker.resume_task
        ok, _ = self._call(tid, lambda: call(tid), None if t is not None and t.live else InvalidTransition)
        if ok:
            assert t is not None
            self._to(t, Status.PAUSED if pause else Status.RUNNING)

    # ------------------------------------------------------------------ worker protocol
    def _expect_ending(self, run: TaskStatus, outcome: Status) -> tuple[set[int], MTask | None]:
        t = self._task(run.task_id)
        if t is None:
            return {-1}, None
        if t.terminal and t.token == run.token:
            return ({0, -1} if t.expiring else {0}), None
        if t.live and t.token == run.token:
            return {1}, t
        return ({-5, -1} if t.expiring else {-5}), None

    @rule(owner=st.sampled_from(OWNERS), wait=st.booleans())
    def advance(self, owner: str, wait: bool) -> None:
        self._advance(owner, wait, None)

    @rule(owner=st.sampled_from(OWNERS), wait=st.booleans(), i=RUN,
          outcome=st.sampled_from([Status.FINISHED, Status.FAILED, "retry"]))
    def advance_ending(self, owner: str, wait: bool, i: int, outcome: Status | str) -> None:
        run = self._run(i)
        self._advance(owner, wait, None if run is None else (run, outcome))

    def _advance(self, owner: str, wait: bool, ended: tuple[TaskStatus, Status | str] | None) -> None:
        ending_ok, ends, retried = {0}, None, False
        arg: Any = None
        if ended is not None:
            run, outcome = ended
            status = Status.FAILED if outcome == "retry" else Status(outcome)
            ending_ok, ends = self._expect_ending(run, status)
            retried = ends is not None and outcome == "retry" and ends.retries < RETRIES[ends.type]
            ending_ok = {2} if retried else ending_ok
            arg = (run, status, "advanced", "auto" if outcome == "retry" else "")
        ending, queued, started, _ = Claims(self.tracker).advance(owner, arg, count=1, wait=wait)
        assert ending in ending_ok, f"ending {ending}, model expects {ending_ok}"
        event(f"advance ending {ending}")
        if ended is not None:
            if retried and ends is not None:
                ends.retries += 1
                self._to(ends, Status.ACCEPTED)  # due at once (retry_delay 0)
            elif ends is not None:
                self._to(ends, arg[1])
            elif ending == -1 and (t := self._task(ended[0].task_id)) is not None:
                self._gone(t)  # expired meanwhile
        t = self._take_mailbox(owner)
        if t is None:
            claimed = self._claim(owner, 1, start=True)
            t = claimed[0] if claimed else None
        assert queued == (0 if None in self.paused else len(self.queue))  # what can be claimed
        assert [s.task_id for s in started] == ([] if t is None else [t.id])
        if t is not None:
            st_ = started[0]
            assert (st_.type, st_.identifier, st_.handler) == (t.type, t.ident, HANDLER)
            if not isinstance(t.token, _Unknown):
                assert st_.token == t.token
            t.token = st_.token
            if owner in self.waiters:
                self.waiters.remove(owner)
                del self.waiter_token[owner]
            self.held.append(bound(self.tracker, st_))
            return
        if wait:
            if owner not in self.waiters:
                self.waiters.append(owner)
            raw = self.client.hget(self.tracker.keys.waiting, _digest(owner))
            assert raw is not None, f"{owner} found no work but does not wait"
            token, _, who = raw.decode().partition(" ")
            assert who == owner
            self.waiter_token[owner] = int(token)

    @rule(owner=st.sampled_from(OWNERS))
    def take_handoff(self, owner: str) -> None:
        t = self._take_mailbox(owner)
        started = Claims(self.tracker).take_handoff(owner, 0.001)
        assert [s.task_id for s in started] == ([] if t is None else [t.id])
        if t is not None:
            assert started[0].token == t.token
            self.held.append(bound(self.tracker, started[0]))

    @rule(owner=st.sampled_from(OWNERS), keep_i=st.lists(TASK, max_size=2))
    def release(self, owner: str, keep_i: list[int]) -> None:
        keep = [self._id(i) for i in keep_i]
        self._release(owner, set(keep), False, lambda: self.fleet.release(owner, keep=keep))

    @rule(worker=st.sampled_from(WORKERS))
    def reap(self, worker: str) -> None:
        self.fleet.beat([(worker, 4242, 1)])
        self._release(f"{worker}/0", set(), True, lambda: self.fleet.reap(worker, restart=True))

    @rule(type_=st.sampled_from(TYPES))
    def zombies(self, type_: str) -> None:
        live = {t.id for t in self.m.values() if not t.gone and t.live and t.type == type_}
        self._register(type_, timeout=0.001)
        time.sleep(0.005)
        try:
            reply = self.tracker.reap_zombies()
        finally:
            self._register(type_)
        self._apply_recovered(reply, live, self._recover)

    # ------------------------------------------------------------------ many tasks at once
    @rule(type_=st.sampled_from((*TYPES, None)), pause=st.booleans())
    def pause_queue(self, type_: str | None, pause: bool) -> None:
        if pause:
            self.tracker.pause_queue(type_)
            self.paused.add(type_)
            return
        self.tracker.resume_queue(type_)
        self.paused.discard(type_)
        back = [tid for tid in self.parked if self.m[tid].type == type_]
        for tid in back:
            self._unpark(self.m[tid])
        self.queue = back + self.queue  # at the head of the queue, in the order they were set aside

    @rule(type_=st.sampled_from((*TYPES, None)))
    def requeue_failed(self, type_: str | None) -> None:
        """Re-runs what is FAILED now, type by type, oldest failure first (the order is read
        from the index, ties of a millisecond in its member order); expired ones are gone."""
        order = []
        for name in [type_] if type_ else [n.decode() for n in self.client.hkeys(self.tracker.keys.types)]:
            index = self.tracker.keys.ended(self._type_number(name), Status.FAILED)
            order += [int(m) for m in self.client.zrange(index, 0, -1)]
        failed = {t.id for t in self._present() if t.status == Status.FAILED and type_ in (None, t.type)}
        assert failed <= set(order), f"failed {sorted(failed)}, indexed {order}"
        done = self.tracker.requeue_failed(type_)
        again = 0
        for tid in order:
            t = self._task(tid)
            if t is None or t.status != Status.FAILED:
                continue
            try:
                self.tracker.get_task_status(tid)
            except TaskNotFound:
                assert t.expiring
                self._gone(t)
                continue
            t.restarts = t.retries = 0
            t.token = None
            self._to(t, Status.ACCEPTED)
            again += 1
        assert done == again, f"requeued {done}, the model {again}"

    # ------------------------------------------------------------------ types
    @rule(type_=st.sampled_from(TYPES), action=st.sampled_from(["retain", "keep forever", "unregister"]))
    def manage_type(self, type_: str, action: str) -> None:
        if action == "unregister":
            self.tracker.unregister_task_type(type_, force=True)
            self.paused.discard(type_)  # its pause goes with it
            self._register(type_)
            for t in self.m.values():
                if not t.gone and t.type == type_:
                    self._gone(t)
        else:
            self.timeret[type_] = RETENTION if action == "retain" else -1.0
            self._register(type_)

    @rule()
    def retire(self) -> None:
        """The retention sweep removes only ended tasks of a type that keeps them for a
        time now (tasks kept by an older, longer setting included), and nothing else."""
        for tid, name in self.tracker.delete_retired_tasks():
            t = self.m.get(tid)
            assert t is not None and not t.gone and t.terminal, (tid, name, t)
            assert self.timeret[t.type] > 0 and name == f"{t.type}::{t.ident}", (tid, name, t)
            event("retired by the sweep")
            self._gone(t)

    # ------------------------------------------------------------------ invariants
    def _type_number(self, name: str) -> str:
        n = self.client.hget(self.tracker.keys.types, name)
        assert n is not None, f"type {name} is not registered"
        return n.decode()

    def _present(self) -> list[MTask]:
        return [t for t in self.m.values() if not t.gone]

    @invariant()
    def statuses(self) -> None:
        for t in list(self.m.values()):
            try:
                status, name = self.tracker.get_task_status(t.id)
            except TaskNotFound:
                assert t.gone or t.expiring, f"task {t.id} is missing; the model has {t}"
                if not t.gone:
                    self._gone(t)
                continue
            assert not t.gone, f"task {t.id} should be gone, is {name}"
            assert status == t.status, f"task {t.id} is {name}; the model has {t}"
        with pytest.raises(TaskNotFound):
            self.tracker.get_task_status(NO_SUCH_ID)

    @invariant()
    def task_fields(self) -> None:
        present = self._present()
        pipe = self.client.pipeline(transaction=False)
        for t in present:
            key = self.tracker.keys.task(Keys.task_digest(t.type.encode(), t.ident.encode()))
            pipe.hmget(key, "id", "status", "restarts", "odig", "token", "retries", "due")
            pipe.pttl(key)
        replies = pipe.execute()
        for i, t in enumerate(present):
            (tid, status, restarts, odig, token, retries, due), pttl = replies[2 * i], replies[2 * i + 1]
            if (tid is None or pttl == -2) and t.expiring:
                self._gone(t)
                continue
            assert tid is not None and int(tid) == t.id, f"task {t.id}: hash holds id {tid!r}"
            assert int(status) == t.status
            assert int(restarts or 0) == t.restarts, f"task {t.id} restarts {restarts!r}; the model has {t}"
            assert int(retries or 0) == t.retries, f"task {t.id} retries {retries!r}; the model has {t}"
            assert (due is not None) == t.delayed, f"task {t.id} due {due!r}; the model has {t}"
            assert odig == (None if t.owner is None else _digest(t.owner).encode()), f"task {t.id}: odig {odig!r}; {t}"
            if t.token is None:
                assert token is None, f"task {t.id} has token {token!r}; the model has {t}"
            elif isinstance(t.token, _Unknown):
                assert token is not None, f"task {t.id} has no token; the model has {t}"
            else:
                assert token == str(t.token).encode(), f"task {t.id} has token {token!r}; the model has {t}"
            # 6. retention TTLs
            if t.terminal and t.ttl:
                assert pttl >= 0, f"task {t.id} ended under timeret {RETENTION}: PTTL {pttl}; {t}"
            else:
                assert pttl == -1, f"task {t.id} PTTL {pttl}; the model has {t}"

    @invariant()
    def counters_and_live_sets(self) -> None:
        for name in TYPES:
            n = self._type_number(name)
            raw = self.client.hmget(self.tracker.keys.type(n), *COUNTERS.values())
            got = dict(zip(COUNTERS.values(), (int(v or 0) for v in raw), strict=True))
            want = {c: sum(1 for t in self._present() if t.type == name and t.status == s)
                    for s, c in COUNTERS.items()}
            assert got == want, f"type {name} counters {got}, model {want}"
            live = {int(m) for m in self.client.zrange(self.tracker.keys.live(n), 0, -1)}
            want_live = {t.id for t in self._present() if t.type == name and t.live}
            assert live == want_live, f"type {name} live set {sorted(live)}, model {sorted(want_live)}"

    def _live_queue(self) -> list[int]:
        # live_queue reads each entry's task twice (describe_task, then HMGET): a
        # left-behind entry of a retained task that expires in between fails it.
        for _ in range(3):
            try:
                return live_queue(self.tracker)
            except TypeError:
                continue
        return live_queue(self.tracker)

    @invariant()
    def queue_and_wake(self) -> None:
        accepted = [t for t in self._present() if t.status == Status.ACCEPTED]
        ready, delayed = [t.id for t in accepted if not t.delayed], [t.id for t in accepted if t.delayed]
        assert sorted(self.queue + self.parked) == sorted(ready)
        assert self.tracker.get_queue_size() == len(accepted)
        parked = [t.id for t in accepted if t.parked]
        assert self.tracker.get_queue_counts() == {"ready": len(ready) - len(parked), "delayed": len(delayed),
                                                   "parked": len(parked)}
        assert sorted(self.parked) == sorted(parked)
        for name in TYPES:
            listed = [e.decode() for e in self.client.lrange(self.tracker.keys.parked(self._type_number(name)), 0, -1)]
            current = [self._entry(self.m[tid]) for tid in self.parked if self.m[tid].type == name]
            assert [e for e in listed if e in current] == current  # (left-behind entries aside)
        assert self._live_queue() == self._ordered_queue()
        held = sorted(int(e.split(b":")[0]) for e in self.client.zrange(self.tracker.keys.delayed, 0, -1))
        assert held == sorted(delayed)
        wake = bool(self.client.exists(self.tracker.keys.wake))
        claimable = bool(self.queue) and None not in self.paused
        assert wake >= claimable and wake <= bool(self.queue or delayed)  # a delayed task's nudge may linger

    @invariant()
    def lists(self) -> None:
        """list_tasks, per status and in all, shows exactly the tasks in that status (a
        retained task may expire meanwhile), each once."""
        for status in (Status.ACCEPTED, *LIVE, *TERMINAL):
            want = {t.id for t in self._present() if t.status == status}
            may_go = {t.id for t in self._present() if t.status == status and t.expiring}
            got = [r.task_id for r in self.tracker.list_tasks(status=status, limit=1000)]
            assert len(got) == len(set(got)) and want - may_go <= set(got) <= want, \
                f"{status.name}: listed {sorted(got)}, model {sorted(want)}"
        every = [r.task_id for r in self.tracker.list_tasks(limit=1000)]
        assert len(every) == len(set(every)) and set(every) <= {t.id for t in self._present()}

    def _entry(self, t: MTask) -> str:
        """Task ``t``'s current queue entry (see ``queue_entry`` in _prelude.lua)."""
        nq = self.client.hget(self.tracker.keys.task(Keys.task_digest(t.type.encode(), t.ident.encode())), "nq")
        return str(t.id) if int(nq or 0) == 0 else f"{t.id}:{int(nq)}"

    @invariant()
    def owners(self) -> None:
        keys = self.tracker.keys
        for owner in OWNERS:
            odig = _digest(owner)
            owned = {int(m) for m in self.client.smembers(keys.owned(odig))}
            want = {t.id for t in self._present() if t.live and t.owner == owner}
            assert owned == want, f"owner {owner} holds {sorted(owned)}, model {sorted(want)}"
            box = [tuple(e.decode().split(" ")) for e in self.client.lrange(keys.mailbox(odig), 0, -1)
                   if e]  # an empty entry: a nudge (a delayed task became the next due), no task
            assert box == [(str(i), str(tok)) for i, tok in self.mailbox[owner]], f"mailbox of {owner}: {box}"
        waiters = [w.decode() for w in self.client.lrange(keys.waiters, 0, -1)]
        assert waiters == [_digest(w) for w in self.waiters], f"waiters {waiters}, model {self.waiters}"
        waiting = {k.decode(): v.decode() for k, v in self.client.hgetall(keys.waiting).items()}
        assert waiting == {_digest(w): f"{self.waiter_token[w]} {w}" for w in self.waiters}


def _run(connect: Callable[[], Any], max_examples: int) -> None:
    machine = type("Machine", (TrackerMachine,), {"connect": staticmethod(connect)})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=max_examples, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


@pytest.fixture
def connect(request: pytest.FixtureRequest) -> Callable[[], Any]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return lambda: redis.Redis.from_url(url)
    import fakeredis

    server = fakeredis.FakeServer()
    return lambda: fakeredis.FakeRedis(server=server)


@pytest.mark.parametrize(("connect", "examples"), [("redis", 40), ("fakeredis", 10)], indirect=["connect"])
def test_tracker_model(connect: Callable[[], Any], examples: int) -> None:
    _run(connect, examples)


INVARIANTS = ("statuses", "task_fields", "counters_and_live_sets", "queue_and_wake", "lists", "owners")


def _replay(connect: Callable[[], Any], steps: list[tuple[str, dict[str, Any]]]) -> None:
    """Run one fixed sequence of the machine's rules, checking every invariant after each."""
    machine = type("Machine", (TrackerMachine,), {"connect": staticmethod(connect)})

    @settings(max_examples=1, database=None, deadline=None)
    @given(st.just(None))
    def replay(_: None) -> None:
        m = machine()
        try:
            for name, kwargs in steps:
                getattr(m, name)(**kwargs)
                for inv in INVARIANTS:
                    getattr(TrackerMachine, inv)(m)
        finally:
            m.teardown()

    replay()


@pytest.mark.parametrize("connect", ["redis", "fakeredis"], indirect=True)
def test_release_keeps_a_task_reclaimed_after_a_stale_hand_off(connect: Callable[[], Any]) -> None:
    """Found by the machine (shrunk): releasing an owner put back a task it had claimed
    again after a stale hand-off, although the release kept it (unwait did not check
    the mailbox entry's token, nor the kept ids)."""
    _replay(connect, [
        ("advance", {"owner": "o1", "wait": True}),     # o1 waits for a hand-off
        ("enqueue", {"type_": "a", "ident": "x", "prio": 0}),  # task 1 handed to o1: mailbox "1 <token A>"
        ("reenqueue", {"i": 0}),                        # task 1 queued again: the entry is stale
        ("claim", {"owner": "o1", "k": 1}),             # o1 claims task 1 again (token B)
        ("release", {"owner": "o1", "keep_i": [0]}),    # keep task 1: it goes back all the same
    ])
