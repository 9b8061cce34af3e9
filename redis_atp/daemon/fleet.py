"""The worker registry of a namespace: registration, heartbeats, and recovering the
tasks of workers that died or lost their connection's replies.

A worker process registers in the ``workers`` hash and keeps a heartbeat hash
``worker:<digest>`` whose TTL its supervisor renews; each of its threads is an
owner (``<worker id>/<n>``) with its own set of live tasks on each shard. The
registry and heartbeats live on shard 0. See :mod:`redis_atp.keys`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from ..client import Tracker
from ..keys import Keys
from ..protocol import admin, control, schedules, tasks
from ..protocol.admin import Recovered, recovered

__all__ = ["Fleet", "WorkerInfo", "Recovered", "slot_ids"]

#: Calls of the retention sweep per shard and housekeeping round (each walks
#: ``admin.BUCKETS_PER_CALL`` id buckets, 100 ids each).
RETIRE_CALLS_PER_ROUND = 10
#: Overdue tasks per shard one housekeeping round recovers at most; the rest wait for
#: the next round, so a round stays short whatever the backlog.
ZOMBIES_PER_ROUND = 2000


class Round(NamedTuple):
    """What one housekeeping round did."""

    dead: list[Recovered]  # tasks of workers whose heartbeat expired
    zombies: list[Recovered]  # tasks past their deadline
    retired: int  # finished tasks removed by the retention sweep
    ticks: list[tuple[str, str | None]]  # (schedule, identifier of the task created, None: skipped)


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker process, as ``redis-atp info`` shows it."""

    id: str
    host: str
    pid: int
    threads: int
    started: float
    beat: float
    ttl_ms: int
    tasks: list[int]


def slot_ids(worker_id: str, threads: int) -> list[str]:
    """The owner ids of a worker's threads: ``<worker id>/<n>``."""
    return [f"{worker_id}/{n}" for n in range(threads)]


class Fleet:
    """The worker registry of ``tracker``'s namespace; ``grace``: heartbeat TTL in seconds."""

    def __init__(self, tracker: Tracker, grace: float = 10.0) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.client = tracker.client
        self.ns = tracker.ns
        self.run = tracker.io.run
        self.grace_ms = int(grace * 1000)

    def beat(self, workers: Iterable[tuple[str, int, int]], supervisor: int = 0) -> None:
        """Register worker processes ``(worker id, pid, threads)`` or renew their heartbeats,
        in one round trip. A worker the reaper already dropped is registered again; the
        runs it lost stay fenced out."""
        now = f"{time.time():.3f}"
        host = socket.gethostname()
        pipe = self.client.pipeline(transaction=True)
        for worker_id, pid, threads in workers:
            digest = Keys.owner_digest(worker_id.encode())
            slots = [Keys.owner_digest(s.encode()) for s in slot_ids(worker_id, threads)]
            key = self.keys.worker(digest)
            pipe.hset(self.keys.workers, worker_id, json.dumps({"digest": digest, "slots": slots}))
            pipe.hsetnx(key, "started", now)
            pipe.hset(key, mapping={"id": worker_id, "host": host, "pid": pid, "supervisor": supervisor,
                                    "threads": threads, "beat": now})
            pipe.pexpire(key, self.grace_ms)
        pipe.execute()

    def _release(self, slot: str, message: str, restart: bool, guard: str = "",
                 keep: Iterable[int] = (), deregister: str = "") -> list[Recovered] | None:
        """Script ``release_owned`` for one owner digest on every shard. ``guard`` (a key
        on shard 0): while it exists nothing is done and None is returned.
        ``deregister``: a worker id to drop from the registry, atomically with shard 0."""
        out: list[Recovered] = []
        keep = list(keep)
        for shard in range(self.tracker.shards):
            mine = [k for k in keep if k % self.tracker.shards == shard]
            first = shard == 0
            dereg = (deregister, self.keys.workers, self.keys.worker(Keys.owner_digest(deregister.encode()))) \
                if first and deregister else ("", "", "")
            reply = self.run(tasks.call(self.ns, self.ns.call(
                "release_owned", slot, message, "1" if restart else "0", guard if first else "", *dereg, *mine,
                shard=shard)))
            if reply == 0:
                return None
            out += recovered(reply)
        return out

    def reap(self, worker_id: str | None = None, message: str = "", restart: bool = True) -> list[Recovered]:
        """Recover the tasks of ``worker_id`` now (its process exited), or, with ``None``,
        of every worker whose heartbeat expired, and drop those workers from the
        registry (script ``release_owned`` per owner and shard). With ``restart`` each
        recovery of a started task counts against its ``maxrestart``; without, the
        tasks just go back (an orderly shutdown). For an expired heartbeat, each step
        on shard 0 re-checks it atomically: a worker that renewed it meanwhile keeps
        its registration and the tasks not yet recovered; sharded, it may lose those it
        held on other shards (fenced out)."""
        registry = {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.keys.workers).items()}
        if worker_id is not None:
            dead = {worker_id: registry[worker_id]} if worker_id in registry else {}
        else:
            pipe = self.client.pipeline(transaction=False)
            for info in registry.values():
                pipe.exists(self.keys.worker(info["digest"]))
            dead = {w: info for (w, info), alive in zip(registry.items(), pipe.execute(), strict=True)
                    if not alive}
        out: list[Recovered] = []
        for wid, info in dead.items():
            why = message or f"worker {wid} lost its heartbeat"
            guard = "" if worker_id is not None else self.keys.worker(info["digest"])
            slots = info["slots"]
            for n, slot in enumerate(slots):
                last = n == len(slots) - 1
                recovered = self._release(slot, why, restart, guard, deregister=wid if last else "")
                if recovered is None:
                    break  # the worker is alive again
                out += recovered
        return out

    def release(self, owner: str, keep: Iterable[int] = (), message: str = "",
                restart: bool = False) -> list[Recovered]:
        """Put back every live task ``owner`` holds except ``keep`` (script ``release_owned``):
        after a reconnect, or at a cold shutdown. Not counted as a restart."""
        return self._release(Keys.owner_digest(owner.encode()), message, restart, keep=keep) or []

    def housekeeping(self, interval: float) -> Round | None:
        """One round of fleet housekeeping, run by at most one worker per ``interval``
        (a ``SET NX PX`` lock): reap workers whose heartbeat expired, promote due
        delayed tasks, create the tasks of due schedule ticks, re-enqueue zombie tasks,
        and one step of the retention sweep on each shard. Returns what it did,
        or ``None`` when another worker holds the round. Every step is safe to run
        concurrently; the lock only saves work."""
        if not self.client.set(self.keys.housekeeping, str(time.time()), nx=True, px=int(interval * 1000)):
            return None
        dead = self.reap()
        for shard in range(self.tracker.shards):  # due tasks no claim has come for (all workers busy)
            self.run(admin.promote_due(self.ns, shard))
            self.run(control.trim_ended(self.ns, shard))  # index entries of tasks that expired
        ticks = self.run(schedules.run_due(self.ns))
        zombies = self.run(admin.reap_zombies(self.ns, limit=ZOMBIES_PER_ROUND))
        self.run(control.sample_minute(self.ns))
        retired = 0
        for shard, keys in enumerate(self.tracker.shard_keys):
            cursor = int(self.client.get(keys.retire_cursor) or 0)
            for _ in range(RETIRE_CALLS_PER_ROUND):
                cursor, removed = self.run(admin.retire_step(self.ns, shard, cursor))
                retired += len(removed)
                if not cursor:
                    break
            self.client.set(keys.retire_cursor, cursor)
        return Round(dead, zombies, retired, ticks)

    def workers(self) -> list[WorkerInfo]:
        """The registered worker processes whose heartbeat is alive, with their live tasks."""
        registry = self.client.hgetall(self.keys.workers)
        pipe = self.client.pipeline(transaction=False)
        entries = []
        for worker_id, raw in sorted(registry.items()):
            info = json.loads(raw)
            key = self.keys.worker(info["digest"])
            pipe.hgetall(key)
            pipe.pttl(key)
            for slot in info["slots"]:
                for keys in self.tracker.shard_keys:
                    pipe.smembers(keys.owned(slot))
            entries.append((worker_id.decode(), len(info["slots"]) * self.tracker.shards))
        replies = iter(pipe.execute())
        out = []
        for worker_id, nsets in entries:
            h, ttl = next(replies), next(replies)
            tasks = sorted(int(t) for _ in range(nsets) for t in next(replies))
            if h:
                out.append(WorkerInfo(id=worker_id, host=h[b"host"].decode(), pid=int(h[b"pid"]),
                                      threads=int(h[b"threads"]), started=float(h[b"started"]),
                                      beat=float(h[b"beat"]), ttl_ms=int(ttl), tasks=tasks))
        return out
