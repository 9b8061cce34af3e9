"""Redis clients from URLs: a single server, a Redis Cluster, or a Sentinel-managed master.

=====================================================================  ==========================
URL                                                                    client
=====================================================================  ==========================
``redis://[user:pass@]host:port/db``, ``rediss://…``, ``unix://…``     ``redis.Redis``
``redis+cluster://[user:pass@]host:port[,host:port…]``                 ``redis.cluster.RedisCluster``
``redis+sentinel://[user:pass@]host:port[,host:port…]/service[/db]``   ``Sentinel.master_for(service)``
=====================================================================  ==========================

For Sentinel, the password is the master's; the sentinels are assumed to need
none (pass ``sentinel_kwargs`` through ``options`` otherwise).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio import cluster as aiocluster
from redis.asyncio import sentinel as aiosentinel
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from .errors import InvalidInput

__all__ = ["client_from_url", "clients_of", "SCHEMES"]


def _hosts(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInput(f"expected host:port[,host:port...] in {url!r}")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel")


def client_from_url(url: str, *, asyncio: bool = False, **options: Any) -> Any:
    """A redis-py client for ``url`` (see the module docstring), from ``redis.asyncio``
    with ``asyncio``; ``options`` go to the client."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise InvalidInput(f"Redis URL {url!r:.120} must start with one of "
                           + ", ".join(f"{s}://" for s in SCHEMES))
    if scheme not in ("redis+cluster", "redis+sentinel"):
        return (aioredis.Redis if asyncio else redis.Redis).from_url(url, **options)
    parts = urlsplit(url)
    auth: dict[str, Any] = {}
    if parts.username:
        auth["username"] = unquote(parts.username)
    if parts.password:
        auth["password"] = unquote(parts.password)
    hosts = _hosts(parts.netloc, url)
    if scheme == "redis+cluster":
        if asyncio:
            return aiocluster.RedisCluster(startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in hosts],
                                           **auth, **options)
        nodes = [ClusterNode(h, p) for h, p in hosts]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **auth, **options)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise InvalidInput(f"redis+sentinel URLs name the service: redis+sentinel://host:port/SERVICE ({url!r})")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel_kwargs = options.pop("sentinel_kwargs", None)
    timeouts: dict[str, Any] = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}
    sentinel_class = aiosentinel.Sentinel if asyncio else Sentinel
    sentinel = sentinel_class(hosts, sentinel_kwargs=sentinel_kwargs or timeouts or None)
    return sentinel.master_for(path[0], db=db, **auth, **options)


def clients_of(client: Any) -> list[Any]:
    """``client`` and, for a Sentinel ``master_for`` client, its sentinels' clients: what
    closing a client made by :func:`client_from_url` must close."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return [client, *getattr(manager, "sentinels", [])]
