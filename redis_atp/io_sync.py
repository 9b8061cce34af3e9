"""Runs core operations on a synchronous redis-py client.

Script calls on a plain ``redis.Redis`` (Sentinel's ``master_for`` included) go
on a pooled connection the calling thread holds: redis-py's per-command layers
(retries, metrics) cost more than the round trip on loopback, and a state
change must not be retried blindly anyway: a script whose reply was lost may
have run. Plain commands and cluster clients go through ``execute_command``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis import Redis
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, NoScriptError, RedisClusterException, ResponseError

from .protocol.requests import (
    EVAL,
    EVALSHA,
    FCALL,
    TRANSIENT,
    Batch,
    BatchRounds,
    Command,
    Op,
    Request,
    ScriptCall,
    Sleep,
    command_of,
    never_ran,
)
from .scripts import library

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pure-Python redis-py packing then
    _hiredis_pack = None

__all__ = ["SyncIO", "IDLE_CHECK", "pack_commands"]


def pack_commands(conn: Any, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    """``commands`` in one write for ``conn`` (sync or asyncio): packed by hiredis when
    it is installed (C), else by the connection (Python)."""
    if _hiredis_pack is not None:
        return [_hiredis_pack(c) for c in commands]
    return [p for c in commands for p in conn.pack_command(*c)]


T = TypeVar("T")

#: Seconds a held connection may sit unused before a call checks it is still open.
IDLE_CHECK = 1.0

#: This process's id, which every call compares with its lease's: kept by a fork hook,
#: since os.getpid() is a system call (the hook is how ``random`` reseeds after a fork).
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


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
        self.pid = _pid
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
        if conn is not None and self.pid == _pid:
            try:
                conn.disconnect()
                self.pool.release(conn)
            except Exception:  # interpreter shutdown or a closed pool: nothing to give back
                pass

    def __del__(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None  # None: __init__ failed to connect
        # at interpreter exit a daemon thread may have been frozen holding the pool's lock
        if conn is not None and self.pid == _pid and not sys.is_finalizing():
            try:
                self.pool.release(conn)
            except Exception:  # interpreter shutdown or a closed pool: nothing to give back
                pass


def _direct_pool(client: Any) -> Any:
    """The connection pool to hold connections of, or None to go through ``execute_command``."""
    if isinstance(client, Pipeline) or getattr(client, "connection", None) is not None:
        return None
    return getattr(client, "connection_pool", None) if isinstance(client, Redis) else None


class SyncIO:
    """Drives core operations (:data:`~redis_atp.protocol.Op`) on one redis-py client."""

    __slots__ = ("client", "_pool", "_local", "_cluster", "_form")

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pool = _direct_pool(client)
        self._local = threading.local()
        self._cluster = isinstance(client, RedisCluster)
        #: how script calls go: FCALL until the server shows it cannot (then EVALSHA)
        self._form = FCALL if self._pool is not None or self._cluster else EVALSHA

    def run(self, op: Op[T]) -> T:
        """Run ``op`` to its result, one request at a time; a connection error is thrown
        into it (an operation that may repeat its request catches it)."""
        send, execute = op.send, self.execute
        try:
            request = send(None)
            while True:
                try:
                    reply = execute(request)
                except TRANSIENT as exc:
                    request = op.throw(exc)
                else:
                    request = send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def execute(self, request: Request) -> Any:
        kind = type(request)
        if kind is ScriptCall:
            return self._script(request)  # type: ignore[arg-type]
        if kind is Command:
            return self._command(request)  # type: ignore[arg-type]
        if kind is Sleep:
            time.sleep(request.seconds)  # type: ignore[union-attr]
            return None
        return self._batch(request)  # type: ignore[arg-type]

    def _command(self, command: Command) -> Any:
        try:
            return self.client.execute_command(*command.args)
        except (ResponseError, RedisClusterException) as exc:  # a cluster may not route a keyless command
            if command.quiet:
                return exc
            raise

    def _script(self, call: ScriptCall) -> Any:
        before = call.before
        if self._form is FCALL:
            try:
                return self._send(command_of(call, FCALL), before)
            except ResponseError as exc:
                if not never_ran(exc):
                    raise
            before = None
            if self._load_library(call):
                try:
                    return self._send(command_of(call, FCALL), None)
                except ResponseError as exc:
                    if not never_ran(exc):
                        raise
        try:
            return self._send(command_of(call, EVALSHA), before)
        except NoScriptError:
            return self._send(command_of(call, EVAL), None)

    def _load_library(self, call: ScriptCall) -> bool:
        """Load the scripts' library where ``call`` goes; if the server cannot (Redis
        6.2, an ACL, out of memory), script calls go as ``EVALSHA`` from now on."""
        load = ("FUNCTION", "LOAD", "REPLACE", library().source)
        try:
            if self._cluster:
                self.client.execute_command(*load, target_nodes=self.client.get_node_from_key(call.argv[1]))
            else:
                self._send(load, None)
            return True
        except ResponseError:
            self._form = EVALSHA
            return False

    def _batch(self, batch: Batch) -> list[Any]:
        if not isinstance(batch.requests, Sequence):
            if self._pool is not None:
                return self._stream(batch.requests)
            batch = Batch(list(batch.requests))
        rounds = BatchRounds(batch, self._form)
        if self._cluster and any(type(r) is ScriptCall for r in batch.requests):
            # a cluster pipeline looks an EVALSHA's keys up on its default node: one by one
            rounds.absorb([self._quiet(r) for r in batch.requests])
        return self._rest(rounds)

    def _quiet(self, request: Command | ScriptCall) -> Any:
        try:
            return self.execute(request)
        except ResponseError as exc:
            return exc

    def _stream(self, requests: Iterable[Command | ScriptCall]) -> list[Any]:
        """A streamed :class:`Batch`: each request is written as soon as it is produced
        (Redis runs it while the next is built), the replies are read at the end; scripts
        the server did not know (they did nothing) go again as ``EVAL``."""
        lease, form = self._lease(), self._form
        conn, sent, replies = lease.conn, [], []
        try:
            try:
                for request in requests:
                    conn.send_packed_command(pack_commands(conn, [command_of(request, form)]), check_health=False)
                    sent.append(request)
            finally:  # whatever was sent is answered, even if producing the next request failed
                for _ in sent:
                    try:
                        replies.append(conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
            lease.used = time.monotonic()
        except BaseException:
            self._broken(lease)
            raise
        rounds = BatchRounds(Batch(sent), form)
        rounds.absorb(replies)
        return self._rest(rounds)

    def _rest(self, rounds: BatchRounds) -> list[Any]:
        """The rounds of a batch that are left, pipelined (scripts that never ran again as
        ``EVAL``); a function that was missing is loaded for the calls after this one."""
        while rounds.pending:
            pipe = self.client.pipeline(transaction=False)
            for args in rounds.commands():
                pipe.execute_command(*args)
            rounds.absorb(pipe.execute(raise_on_error=False))
        if rounds.functions_missing:
            self._load_library(next(r for r in rounds.batch.requests if type(r) is ScriptCall))
        return rounds.result()

    # ------------------------------------------------------------------ held connections
    def _lease(self) -> _Lease:
        lease = getattr(self._local, "lease", None)
        if lease is None or lease.pid != _pid:  # none yet, or the parent's before a fork
            lease = self._local.lease = _Lease(self._pool)
        elif lease.stale():
            self._broken(lease)
            lease = self._local.lease = _Lease(self._pool)
        return lease

    def _broken(self, lease: _Lease) -> None:
        if getattr(self._local, "lease", None) is lease:
            self._local.lease = None  # a connection in an unknown state is never reused
        lease.drop()

    def _send(self, command: tuple[Any, ...], before: Command | None) -> Any:
        """Send ``command`` (behind ``before``, in one write) and return its reply;
        ``before``'s reply is dropped."""
        if self._pool is None:
            if before is not None:
                self.client.execute_command(*before.args)
            return self.client.execute_command(*command)
        lease = self._lease()
        conn = lease.conn
        try:
            commands = (command,) if before is None else (before.args, command)
            conn.send_packed_command(pack_commands(conn, commands), check_health=False)
            if before is not None:
                try:
                    conn.read_response()
                except ResponseError:
                    pass  # the script after it reads the state for itself
            reply = conn.read_response()
            lease.used = time.monotonic()
            return reply
        except ResponseError:
            raise  # a refusal: the connection is fine
        except BaseException:
            self._broken(lease)
            raise
