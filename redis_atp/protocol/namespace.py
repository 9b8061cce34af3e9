"""One namespace as the core sees it: its settings, its shards' key names, how a script
call for it is built, and the one-time check that the server agrees with them."""

from __future__ import annotations

import random
import warnings
from typing import Any

from ..errors import InvalidInput
from ..keys import DEFAULT_QUEUE_LIMIT, Keys
from ..scripts import script
from ..serialization import serializer_named
from .requests import Batch, Command, Op, ScriptCall

__all__ = ["Namespace", "EvictionPolicyWarning", "token_base", "text"]


class EvictionPolicyWarning(RuntimeWarning):
    """Redis may evict keys (``maxmemory-policy`` is not ``noeviction``): queue state could vanish."""


_warned: set[str] = set()


def token_base() -> int:
    """Random fencing tokens for a claim: 50 bits, so base + count stays exact in Lua.
    They must differ between claims, not be secret (Redis stores them): the module's
    generator, seeded from the OS and reseeded in a forked child, spares a system call
    per claim."""
    return random.getrandbits(50)


def text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _int_setting(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an int, not {value!r:.80}")
    return value


class Namespace:
    """The settings of a tracker on one namespace (see :class:`~redis_atp.Tracker`'s
    arguments), checked on construction; ``where`` names the server, for warnings;
    ``cluster``: the client is a Redis Cluster client."""

    def __init__(self, namespace: str = "atp", max_queue_size: int | None = None, *, shards: int = 1,
                 serializer: str = "msgpack", max_input_bytes: int = 1 << 20,
                 max_response_bytes: int = 16 << 20, max_log_records: int = 100,
                 max_events: int | None = None, where: str = "", cluster: bool = False) -> None:
        for name, value in (("max_input_bytes", max_input_bytes), ("max_response_bytes", max_response_bytes),
                            ("max_log_records", max_log_records), ("shards", shards)):
            _int_setting(name, value)
        if max_queue_size is not None:
            _int_setting("max_queue_size", max_queue_size)
        if max_events is not None and _int_setting("max_events", max_events) < 0:
            raise InvalidInput(f"max_events must be >= 0 (0: no events), not {max_events}")
        if max_log_records < 1 or max_input_bytes < 1 or max_response_bytes < 1 or not 1 <= shards <= 1024:
            raise InvalidInput("max_log_records, max_input_bytes and max_response_bytes must be positive, "
                               "and shards 1-1024")
        self.name = namespace
        self.shards = shards
        self.shard_keys = [Keys(namespace, i) for i in range(shards)]
        self.keys = self.shard_keys[0]
        self.serializer = serializer_named(serializer)
        self.max_input_bytes = max_input_bytes
        self.max_response_bytes = max_response_bytes
        self.max_log_records = max_log_records
        self.where = where
        self.cluster = cluster
        self.checked = False
        self._limit_to_set = max_queue_size
        self._events_to_set = max_events
        self._rotation = 0
        self._heads = [(1, *keys.script_head(), str(max_log_records), str(shards), str(keys.shard))
                       for keys in self.shard_keys]

    # ------------------------------------------------------------------ requests
    def call(self, name: str, *args: Any, shard: int = 0, before: Command | None = None) -> ScriptCall:
        """Script ``name`` on ``shard``: the common head (see ``lua/_prelude.lua``), then ``args``."""
        return ScriptCall(script(name), self._heads[shard] + args, before)

    def each_shard(self, *command: Any, key: str) -> Batch:
        """``command`` once per shard on its key ``key`` (an attribute of :class:`Keys`)."""
        name, *rest = command
        return Batch([Command(name, getattr(keys, key), *rest) for keys in self.shard_keys])

    def shard_of_id(self, task_id: int) -> int:
        return task_id % self.shards

    def next_shards(self) -> list[int]:
        """Every shard once, starting from a rotating one (fair dequeues)."""
        start = self._rotation = (self._rotation + 1) % self.shards
        return [(start + k) % self.shards for k in range(self.shards)]

    def decode_input(self, raw: bytes | None, fallback: bool = False) -> Any:
        """A stored input, decoded; one that cannot be (written by hand, or by another
        version) is :class:`InvalidInput`, or with ``fallback`` its raw bytes."""
        try:
            return self.serializer.unpack(raw)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the same
            if fallback:
                return raw
            raise InvalidInput(f"the stored input cannot be decoded with {self.serializer.name}: "
                               f"{type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------------ the server check
    def check(self, registering: bool = False) -> Op[None]:
        """Once per tracker: the eviction warning, that the namespace has this tracker's
        shard count and serializer, and the queue limit it was given. The namespace
        records them at its first registration; one without the record has one shard
        and msgpack (registered before these were recorded)."""
        if self.checked:
            return
        if self.where not in _warned:
            _warned.add(self.where)
            _warn_if_evicting((yield Command("CONFIG", "GET", "maxmemory-policy", quiet=True)))
        config = self.keys.config
        shards, serializer = yield Command("HMGET", config, "shards", "serializer")
        if registering and serializer is None:
            legacy = bool((yield Command("HLEN", self.keys.types)))  # registered before these were recorded
            if shards is None and self.shards > 1 and legacy:
                raise InvalidInput(f"namespace {self.name!r} already has task types with shards=1")
            setup: list[Command | ScriptCall] = []
            for keys in self.shard_keys:
                setup.append(Command("HSETNX", keys.config, "serializer",
                                     "msgpack" if legacy else self.serializer.name))
                setup.append(Command("HSETNX", keys.config, "max_queue_size", DEFAULT_QUEUE_LIMIT))
            if self.shards > 1:
                setup.append(Command("HSETNX", config, "shards", self.shards))
            yield Batch(setup)
            shards, serializer = yield Command("HMGET", config, "shards", "serializer")
        elif shards is None and serializer is None and not (yield Command("HLEN", self.keys.types)):
            return  # nothing registered yet: check again on the next call
        if int(shards or 1) != self.shards:
            raise InvalidInput(f"namespace {self.name!r} has {int(shards or 1)} shards; this tracker "
                               f"was created with shards={self.shards}")
        stored = serializer.decode() if serializer else "msgpack"
        if stored != self.serializer.name:
            raise InvalidInput(f"namespace {self.name!r} stores inputs with {stored}; this tracker was "
                               f"created with serializer={self.serializer.name!r} (workers: --serializer {stored})")
        self.checked = True
        if self._limit_to_set is not None:
            yield self.set_limit(self._limit_to_set)
        if self._events_to_set is not None:
            yield self.set_max_events(self._events_to_set)

    def set_limit(self, limit: int) -> Batch:
        """Set the namespace's queue limit on every shard."""
        return Batch([Command("HSET", keys.config, "max_queue_size", limit) for keys in self.shard_keys])

    def set_max_events(self, cap: int) -> Batch:
        """Set the cap of the namespace's events stream on every shard (0: no events)."""
        return Batch([Command("HSET", keys.config, "max_events", cap) for keys in self.shard_keys])


def _warn_if_evicting(reply: Any) -> None:
    """Warn if the server's ``maxmemory-policy`` lets Redis evict our keys. CONFIG may
    be renamed or refused (managed Redis): then there is nothing to check."""
    if isinstance(reply, dict):
        policy = reply.get(b"maxmemory-policy", reply.get("maxmemory-policy"))
    elif isinstance(reply, list) and len(reply) == 2:
        policy = reply[1]
    else:
        return
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy and policy != "noeviction":
        warnings.warn(
            f"Redis maxmemory-policy is {policy!r}: Redis may evict task and queue keys "
            "silently; set it to 'noeviction' for redis-atp",
            EvictionPolicyWarning,
            stacklevel=6,
        )
