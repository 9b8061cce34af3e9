"""Loads ``lua/*.lua``: each script's full source and SHA-1 (no I/O; the executors in
:mod:`redis_atp.io_sync` and :mod:`redis_atp.io_async` send them).

Each script is sent as: constants generated from Python (``S_<STATUS>`` from
:class:`~redis_atp.Status`, ``E_<CODE>`` from :class:`~redis_atp.errors.Code`,
``IDS_PER_BUCKET``), then ``_prelude.lua`` and ``_queue.lua``, then the script itself. A server
that lost its script cache (``SCRIPT FLUSH``, restart, failover) answers
NOSCRIPT; the call is repeated as ``EVAL`` with the full source, which is safe
because a NOSCRIPT call did nothing. ``EVAL`` goes where ``EVALSHA`` went (on a
Redis Cluster: the namespace's node, by its keys) and caches the script there;
``SCRIPT LOAD`` would go to every primary of a cluster and fail while any one
of them is down.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from .errors import Code
from .keys import DEFAULT_QUEUE_LIMIT, IDS_PER_BUCKET
from .status import Status

__all__ = ["Script", "SCRIPT_NAMES", "script"]

#: The helpers every script is sent with, in this order, after the constants.
SHARED = ("_prelude", "_queue")
SCRIPT_NAMES = (
    "register_type", "unregister_type", "enqueue", "dequeue", "start", "progress", "finish",
    "set_response", "reenqueue", "delete", "reap_zombies", "retire", "read_task", "release_owned",
    "advance", "take_handoff", "promote", "schedule_set", "schedule_next",
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
        self.source = _constants() + "\n".join(_read(part) for part in (*SHARED, name))
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (built once per process)."""
    return Script(name)
