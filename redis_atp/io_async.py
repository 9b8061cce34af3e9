"""Runs core operations on a ``redis.asyncio`` client: the same requests as
:mod:`redis_atp.io_sync`, awaited. Script calls on a plain client go over connections
this executor holds (taken from the client's pool once, given back to a short list
of its own after each call), outside redis-py's retrying ``execute_command``: a state
change whose reply was lost may have run and is never sent again blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError

from .io_sync import IDLE_CHECK, pack_commands
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

__all__ = ["AsyncIO"]

T = TypeVar("T")


class AsyncIO:
    """Drives core operations (:data:`~redis_atp.protocol.Op`) on one ``redis.asyncio`` client."""

    __slots__ = ("client", "_pool", "_cluster", "_idle", "_form")

    def __init__(self, client: Any) -> None:
        self.client = client
        direct = isinstance(client, Redis) and getattr(client, "connection", None) is None
        self._pool = client.connection_pool if direct else None
        self._cluster = isinstance(client, RedisCluster)
        self._idle: list[tuple[Any, float]] = []  # held connections, each with when it was last used
        self._form = FCALL if self._pool is not None or self._cluster else EVALSHA  # see SyncIO

    async def _take(self) -> Any:
        """A connection for one call: the one given back last (no pool lock, no health
        probe), or, unused for ``IDLE_CHECK`` seconds, only if the server did not close
        it meanwhile (a restart, ``CLIENT KILL``), or a new one from the pool."""
        pool = self._pool
        assert pool is not None
        while self._idle:
            conn, used = self._idle.pop()
            try:
                if conn.is_connected and (time.monotonic() - used < IDLE_CHECK
                                          or not await conn.can_read()):
                    return conn
            except (OSError, *TRANSIENT):
                pass
            await self._drop(conn)
        return await pool.get_connection()

    def _give_back(self, conn: Any) -> None:
        self._idle.append((conn, time.monotonic()))

    async def _drop(self, conn: Any) -> None:
        """A connection in an unknown state: disconnected and back to the pool, never reused as it is."""
        assert self._pool is not None
        await conn.disconnect(nowait=True)
        await self._pool.release(conn)

    async def run(self, op: Op[T]) -> T:
        """Run ``op`` to its result, one request at a time; a connection error is thrown
        into it (see :class:`~redis_atp.protocol.requests.Reconnect`)."""
        send, execute = op.send, self.execute
        try:
            request = send(None)
            while True:
                try:
                    reply = await execute(request)
                except TRANSIENT as exc:
                    request = op.throw(exc)
                else:
                    request = send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def execute(self, request: Request) -> Any:
        kind = type(request)
        if kind is ScriptCall:
            return await self._script(request)  # type: ignore[arg-type]
        if kind is Command:
            return await self._command(request)  # type: ignore[arg-type]
        if kind is Sleep:
            await asyncio.sleep(request.seconds)  # type: ignore[union-attr]
            return None
        return await self._batch(request)  # type: ignore[arg-type]

    async def _command(self, command: Command) -> Any:
        try:
            return await self.client.execute_command(*command.args)
        except (ResponseError, RedisClusterException) as exc:  # a cluster may not route a keyless command
            if command.quiet:
                return exc
            raise

    async def _script(self, call: ScriptCall) -> Any:
        before = call.before
        if self._form is FCALL:
            try:
                return await self._send(command_of(call, FCALL), before)
            except ResponseError as exc:
                if not never_ran(exc):
                    raise
            before = None
            if await self._load_library(call):
                try:
                    return await self._send(command_of(call, FCALL), None)
                except ResponseError as exc:
                    if not never_ran(exc):
                        raise
        try:
            return await self._send(command_of(call, EVALSHA), before)
        except NoScriptError:
            return await self._send(command_of(call, EVAL), None)

    async def _load_library(self, call: ScriptCall) -> bool:
        """See ``SyncIO._load_library``."""
        load = ("FUNCTION", "LOAD", "REPLACE", library().source)
        try:
            if self._cluster:
                await self.client.execute_command(*load, target_nodes=self.client.get_node_from_key(call.argv[1]))
            else:
                await self._send(load, None)
            return True
        except ResponseError:
            self._form = EVALSHA
            return False

    async def _batch(self, batch: Batch) -> list[Any]:
        if not isinstance(batch.requests, Sequence):
            if self._pool is not None:
                return await self._stream(batch.requests)
            batch = Batch(list(batch.requests))
        rounds = BatchRounds(batch, self._form)
        if self._cluster and any(type(r) is ScriptCall for r in batch.requests):
            rounds.absorb([await self._quiet(r) for r in batch.requests])  # see SyncIO._batch
        return await self._rest(rounds)

    async def _stream(self, requests: Iterable[Command | ScriptCall]) -> list[Any]:
        """A streamed :class:`Batch` (see ``SyncIO._stream``): each request written as
        soon as it is produced, the replies read at the end."""
        conn, form = await self._take(), self._form
        sent: list[Command | ScriptCall] = []
        replies: list[Any] = []
        try:
            try:
                for request in requests:
                    await conn.send_packed_command(pack_commands(conn, [command_of(request, form)]), check_health=False)
                    sent.append(request)
            finally:  # whatever was sent is answered, even if producing the next request failed
                for _ in sent:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except BaseException:
            await self._drop(conn)
            raise
        self._give_back(conn)
        rounds = BatchRounds(Batch(sent), form)
        rounds.absorb(replies)
        return await self._rest(rounds)

    async def _rest(self, rounds: BatchRounds) -> list[Any]:
        """See ``SyncIO._rest``."""
        while rounds.pending:
            pipe = self.client.pipeline(transaction=False)
            for args in rounds.commands():
                pipe.execute_command(*args)
            rounds.absorb(await pipe.execute(raise_on_error=False))
        if rounds.functions_missing:
            await self._load_library(next(r for r in rounds.batch.requests if type(r) is ScriptCall))
        return rounds.result()

    async def _quiet(self, request: Command | ScriptCall) -> Any:
        try:
            return await self.execute(request)
        except ResponseError as exc:
            return exc

    async def _send(self, command: tuple[Any, ...], before: Command | None) -> Any:
        """Send ``command`` (behind ``before``, in one write) and return its reply;
        ``before``'s reply is dropped."""
        if self._pool is None:
            if before is not None:
                await self.client.execute_command(*before.args)
            return await self.client.execute_command(*command)
        conn = await self._take()
        try:
            commands = [command] if before is None else [before.args, command]
            await conn.send_packed_command(pack_commands(conn, commands), check_health=False)
            if before is not None:
                try:
                    await conn.read_response()
                except ResponseError:
                    pass  # the script after it reads the state for itself
            reply = await conn.read_response()
        except ResponseError:
            self._give_back(conn)
            raise  # a refusal: the connection is fine
        except BaseException:  # cancelled or broken mid-call: the connection's state is unknown
            await self._drop(conn)
            raise
        self._give_back(conn)
        return reply
