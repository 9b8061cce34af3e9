"""The settings of a worker fleet (``redis-atp worker`` flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["WorkerConfig", "mask_url", "worker_client_options", "DEFAULT_CONCURRENCY", "DEFAULT_THREADS"]

#: ``async def`` handlers a worker process runs at once on its event loop, by default
#: (arq's and SAQ's default too): they wait on I/O, so more fit than threads would.
DEFAULT_CONCURRENCY = 10
#: Sync handlers a worker process runs at once, one thread each, by default. A thread
#: waits one round trip per task for Redis to confirm its claim (no task is claimed
#: ahead), and most handlers wait on I/O too, so a few threads keep a core busy
#: (Dramatiq runs 8): 2 processes of 4 drain 1.8x what 2 of 1 do (measured, README).
#: CPU-bound handlers: ``--threads 1`` and one process per core.
DEFAULT_THREADS = 4


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of a worker fleet (``redis-atp worker`` flags)."""

    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "atp"
    #: Hash tags the namespace spreads over (``Tracker(shards=...)``).
    shards: int = 1
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Sync handlers run at once per process, one thread each.
    threads: int = DEFAULT_THREADS
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
    #: ``async def`` handlers run at once per process, on one event loop (started when
    #: the first one arrives); sync handlers run in the ``threads`` slots.
    concurrency: int = DEFAULT_CONCURRENCY
    #: Seconds a cancelled task's handler gets to stop on its own (its next
    #: ``TaskStatus`` call raises ``TaskCancelled``) before its process is stopped.
    cancel_grace: float = 5.0
    #: Port of the supervisor's Prometheus ``/metrics`` (None: no metrics, no cost).
    metrics_port: int | None = None
    #: Address the metrics port binds to.
    metrics_host: str = "127.0.0.1"


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def worker_client_options(config: WorkerConfig) -> dict[str, Any]:
    """Client options of every worker connection: fail fast instead of retrying by
    itself. A retried claim could run twice with its first reply lost, so every
    connection error must reach the worker, which reconciles what it owns after
    reconnecting."""
    return {"socket_timeout": config.block + 10, "socket_connect_timeout": 5, "socket_keepalive": True}
