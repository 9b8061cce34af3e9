"""What the sync and async trackers share besides the core: construction, settings, names."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import redis.asyncio as aioredis
from redis.asyncio import cluster as aiocluster
from redis.cluster import RedisCluster

from .connection import client_from_url
from .errors import InvalidInput
from .keys import Keys
from .protocol.namespace import Namespace
from .serialization import Serializer

__all__ = ["TrackerBase"]

F = TypeVar("F", bound="TrackerBase")


def is_async_client(client: Any) -> bool:
    return isinstance(client, (aioredis.Redis, aiocluster.RedisCluster))


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, (RedisCluster, aiocluster.RedisCluster))


class TrackerBase:
    """A namespace on one redis-py client; the faces add the calls. ``Tracker``'s docstring
    describes the arguments."""

    #: Whether the face needs a ``redis.asyncio`` client, and what runs its operations.
    asynchronous: ClassVar[bool] = False
    io_class: ClassVar[type[Any]]

    def __init__(self, redis_client: Any, namespace: str = "atp", max_queue_size: int | None = None, *,
                 shards: int = 1, serializer: str = "msgpack", max_input_bytes: int = 1 << 20,
                 max_response_bytes: int = 16 << 20, max_log_records: int = 100,
                 max_events: int | None = None) -> None:
        kwargs: dict[str, Any] = getattr(redis_client, "get_connection_kwargs", dict)()
        if kwargs.get("decode_responses"):
            raise InvalidInput("redis-atp needs a client with decode_responses=False (inputs are binary)")
        if is_async_client(redis_client) != self.asynchronous:
            raise InvalidInput(f"{type(self).__name__} needs a " + (
                "redis.asyncio client; for a synchronous one use redis_atp.Tracker" if self.asynchronous else
                "synchronous redis-py client; this one is from redis.asyncio: use redis_atp.aio.AsyncTracker"))
        self.ns = Namespace(namespace, max_queue_size, shards=shards, serializer=serializer,
                            max_input_bytes=max_input_bytes, max_response_bytes=max_response_bytes,
                            max_log_records=max_log_records, max_events=max_events,
                            where=repr(sorted(kwargs.items(), key=str)),
                            cluster=is_cluster_client(redis_client))
        self.client = redis_client
        self.io = self.io_class(redis_client)
        self._owns_client = False

    @classmethod
    def from_url(cls: type[F], url: str = "redis://127.0.0.1:6379/0", namespace: str = "atp",
                 max_queue_size: int | None = None, **options: Any) -> F:
        """A tracker on a new client for ``url``: ``redis://``, ``rediss://``, ``unix://``,
        ``redis+cluster://host:port[,…]`` or ``redis+sentinel://host:port[,…]/service``
        (see :mod:`redis_atp.connection`); ``close()`` closes it."""
        tracker = cls(client_from_url(url, asyncio=cls.asynchronous), namespace, max_queue_size, **options)
        tracker._owns_client = True
        return tracker

    @property
    def namespace(self) -> str:
        return self.ns.name

    @property
    def shards(self) -> int:
        return self.ns.shards

    @property
    def keys(self) -> Keys:
        """The key names of shard 0 (see :mod:`redis_atp.keys`)."""
        return self.ns.keys

    @property
    def shard_keys(self) -> list[Keys]:
        return self.ns.shard_keys

    @property
    def serializer(self) -> Serializer:
        return self.ns.serializer

    def __repr__(self) -> str:
        shards = f" shards={self.shards}" if self.shards > 1 else ""
        return f"<{type(self).__name__} namespace={self.namespace!r}{shards}>"
