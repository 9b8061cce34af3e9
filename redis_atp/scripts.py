"""Loads ``lua/*.lua`` and runs them with EVALSHA, recovering from NOSCRIPT.

Each script is sent as: constants generated from Python (``S_<STATUS>`` from
:class:`~redis_atp.Status`, ``E_<CODE>`` from :class:`~redis_atp.errors.Code`,
``IDS_PER_BUCKET``), then ``_prelude.lua``, then the script itself. A server
that lost its script cache (``SCRIPT FLUSH``, restart, failover) answers
NOSCRIPT; the call is repeated as ``EVAL`` with the full source, which is safe
because a NOSCRIPT call did nothing. ``EVAL`` goes where ``EVALSHA`` went (on a
Redis Cluster: the namespace's node, by its keys) and caches the script there;
``SCRIPT LOAD`` would go to every primary of a cluster and fail while any one
of them is down.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from .errors import Code
from .keys import DEFAULT_QUEUE_LIMIT, IDS_PER_BUCKET, Keys
from .status import Status

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # pure-Python redis-py packing then
    _pack = None

__all__ = ["Script", "ScriptRunner", "SCRIPT_NAMES", "run_many", "Call"]

#: Seconds a held connection may sit unused before a call checks it is still open.
IDLE_CHECK = 1.0

SCRIPT_NAMES = (
    "register_type", "unregister_type", "enqueue", "dequeue", "start", "progress", "finish",
    "set_response", "reenqueue", "delete", "reap_zombies", "retire", "read_task", "release_owned",
    "advance", "take_handoff",
)


def _constants() -> str:
    lines = [f"local S_{s.name} = {s.value}" for s in Status]
    lines += [f"local E_{c.name} = {c.value}" for c in Code]
    lines.append(f"local IDS_PER_BUCKET = {IDS_PER_BUCKET}")
    lines.append(f"local DEFAULT_QUEUE_LIMIT = {DEFAULT_QUEUE_LIMIT}")
    return "\n".join(lines) + "\n"


def _read(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


class Script:
    """One Lua script, ready to send: its full source and SHA-1."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _constants() + _read("_prelude") + "\n" + _read(name)
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (built once per process)."""
    return Script(name)


class _Lease:
    """A pooled connection held by one thread, returned to the pool when the thread ends.

    It is taken with ``get_connection``, which connects through the pool's own
    logic (a Sentinel pool asks the sentinels where the master is now); after a
    connection error the lease is dropped, never reconnected in place.
    """

    __slots__ = ("pool", "conn", "pid", "used")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.conn: Any = pool.get_connection()
        self.pid = os.getpid()
        self.used = time.monotonic()

    def stale(self) -> bool:
        """After ``IDLE_CHECK`` seconds unused: whether the server closed the connection
        meanwhile (a restart, ``CLIENT KILL``, an idle timeout). Checked before sending,
        so a dead connection is replaced without retrying a call that may have run."""
        if time.monotonic() - self.used < IDLE_CHECK:
            return False
        try:
            return bool(self.conn.can_read(timeout=0))  # an idle connection has nothing to read
        except (ConnectionError, OSError):
            return True

    def drop(self) -> None:
        """Give the connection back to the pool, disconnected (at most once)."""
        conn, self.conn = self.conn, None
        if conn is not None and self.pid == os.getpid():
            try:
                conn.disconnect()
                self.pool.release(conn)
            except Exception:  # interpreter shutdown or a closed pool: nothing to give back
                pass

    def __del__(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None  # None: __init__ failed to connect
        # at interpreter exit a daemon thread may have been frozen holding the pool's lock
        if conn is not None and self.pid == os.getpid() and not sys.is_finalizing():
            try:
                self.pool.release(conn)
            except Exception:  # interpreter shutdown or a closed pool: nothing to give back
                pass


def _direct_pool(client: Any) -> Any:
    """The connection pool to use directly, or None to go through ``execute_command``.

    For a plain ``redis.Redis`` (Sentinel's ``master_for`` included) a script call
    takes a pooled connection itself: redis-py's per-command layers (retries,
    metrics) cost more than the round trip on loopback, and a state change must
    not be retried blindly anyway: a script whose reply was lost may have run.
    """
    if isinstance(client, Pipeline) or getattr(client, "connection", None) is not None:
        return None
    return getattr(client, "connection_pool", None) if isinstance(client, Redis) else None


class ScriptRunner:
    """Runs scripts for one namespace on one redis-py client."""

    __slots__ = ("client", "_head", "_nkeys", "_pool", "_local")

    def __init__(self, client: Any, keys: Keys, log_cap: int, shards: int = 1) -> None:
        self.client = client
        self._pool = _direct_pool(client)
        self._local = threading.local()
        fixed_keys = keys.script_keys()
        self._nkeys = len(fixed_keys)
        self._head = [*fixed_keys, *keys.script_prefixes(), str(log_cap), str(shards), str(keys.shard)]

    def _argv(self, name: str, args: tuple[Any, ...], extra_keys: tuple[str, ...]) -> tuple[Any, ...]:
        head, n = self._head, self._nkeys
        if extra_keys:
            return (script(name).sha, n + len(extra_keys), *head[:n], *extra_keys, *head[n:], *args)
        return (script(name).sha, n, *head, *args)

    def _lease(self) -> _Lease:
        lease = getattr(self._local, "lease", None)
        if lease is not None and lease.pid == os.getpid() and lease.stale():
            self._broken(lease)
            lease = None
        if lease is None or lease.pid != os.getpid():
            lease = self._local.lease = _Lease(self._pool)
        return lease

    def _broken(self, lease: _Lease) -> None:
        if getattr(self._local, "lease", None) is lease:
            self._local.lease = None  # a connection in an unknown state is never reused
        lease.drop()

    def _send(self, lease: _Lease, command: tuple[Any, ...], before: tuple[Any, ...] | None) -> None:
        conn = lease.conn
        commands = (command,) if before is None else (before, command)
        if _pack is not None:
            packed = [_pack(c) for c in commands]
        else:
            packed = [p for c in commands for p in conn.pack_command(*c)]
        conn.send_packed_command(packed, check_health=False)

    def _execute(self, command: tuple[Any, ...], before: tuple[Any, ...] | None = None) -> Any:
        """Send ``command`` (behind ``before``, in one write) and return its reply;
        ``before``'s reply is dropped."""
        if self._pool is None:
            if before is not None:
                self.client.execute_command(*before)
            return self.client.execute_command(*command)
        lease = self._lease()
        try:
            self._send(lease, command, before)
            if before is not None:
                try:
                    lease.conn.read_response()
                except ResponseError:
                    pass  # the script after it reads the state for itself
            reply = lease.conn.read_response()
            lease.used = time.monotonic()
            return reply
        except ResponseError:
            raise  # a refusal: the connection is fine
        except BaseException:
            self._broken(lease)
            raise

    def __call__(self, name: str, *args: Any, extra_keys: tuple[str, ...] = (),
                 after: tuple[Any, ...] | None = None) -> Any:
        """Run script ``name`` with the common KEYS/ARGV head, then ``extra_keys`` and ``args``.

        ``after``: a command (a blocking one: the worker's wait on its mailbox) sent
        in the same write just before the script, which Redis runs as soon as that
        command returns; its reply is dropped. On a cluster client the two go one by one.
        """
        call = self._argv(name, args, extra_keys)
        try:
            return self._execute(("EVALSHA", *call), after)
        except NoScriptError:
            return self._execute(("EVAL", script(name).source, *call[1:]))


#: One pipelined script call: the runner (namespace shard), the script, its arguments,
#: and keys beyond the common ones.
Call = tuple[ScriptRunner, str, tuple[Any, ...], tuple[str, ...]]


def run_many(client: Any, calls: Sequence[Call]) -> list[Any]:
    """Run script calls in one pipeline; returns their replies in order.

    Calls answered NOSCRIPT did nothing: only those are sent again, as ``EVAL``.
    Any other error is raised after every call has run. On a ``RedisCluster``
    the calls go one by one: its pipeline looks an EVALSHA's keys up with
    ``COMMAND GETKEYS`` on the client's default node, so it fails for good once
    that node (any master) is down.
    """
    if isinstance(client, RedisCluster):
        return [runner(name, *args, extra_keys=extra) for runner, name, args, extra in calls]
    replies: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    command = "EVALSHA"
    while pending:
        pipe = client.pipeline(transaction=False)
        for i in pending:
            runner, name, args, extra = calls[i]
            call = runner._argv(name, args, extra)
            if command == "EVAL":
                call = (script(name).source, *call[1:])
            pipe.execute_command(command, *call)
        retry = []
        for i, reply in zip(pending, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, NoScriptError):
                retry.append(i)
            else:
                replies[i] = reply
        pending, command = retry, "EVAL"
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
