"""The default tracker: what the seed's module face (:mod:`redis_atp.tracker`) and a
hand-built ``TaskStatus(task_id)`` act on, configured once per process."""

from __future__ import annotations

import os
import threading
from typing import Any

from .client import Tracker

__all__ = ["configure", "get_default_tracker"]

_default: Tracker | None = None
_lock = threading.Lock()


def configure(url: str | None = None, namespace: str | None = None,
              max_queue_size: int | None = None, *, client: Any = None, serializer: str | None = None,
              **options: Any) -> Tracker:
    """Set the default tracker: on ``client`` if given, else on a new client for ``url``.

    Every argument left out takes its documented default, never a value an earlier
    ``configure()`` set: ``url`` and ``namespace`` from ``REDIS_ATP_URL`` /
    ``REDIS_ATP_NAMESPACE`` (else ``redis://127.0.0.1:6379/0`` and ``atp``),
    ``serializer`` from ``REDIS_ATP_SERIALIZER`` (else msgpack), ``max_queue_size``
    ``None`` (the namespace's limit, kept in Redis). ``options`` go to :class:`Tracker`
    (e.g. ``max_input_bytes``).
    """
    global _default
    ns = namespace or os.environ.get("REDIS_ATP_NAMESPACE", "atp")
    options.setdefault("shards", int(os.environ.get("REDIS_ATP_SHARDS", 1)))
    options["serializer"] = serializer or os.environ.get("REDIS_ATP_SERIALIZER", "msgpack")
    if client is not None:
        tracker = Tracker(client, ns, max_queue_size, **options)
    else:
        tracker = Tracker.from_url(
            url or os.environ.get("REDIS_ATP_URL", "redis://127.0.0.1:6379/0"), ns, max_queue_size, **options)
    with _lock:
        old, _default = _default, tracker
    if old is not None:
        old.close()
    return tracker


def get_default_tracker() -> Tracker:
    """The default tracker, configured from the environment on first use."""
    tracker = _default
    if tracker is None:
        with _lock:
            tracker = _default
        if tracker is None:
            tracker = configure()
    return tracker
