"""Loads ``lua/*.lua`` (no I/O; the executors in :mod:`redis_atp.io_sync` and
:mod:`redis_atp.io_async` send them) in two forms, built from the same files:

* :func:`library`: every script as a function of one Redis Functions library, for
  ``FCALL`` on Redis 7+ (the shared helpers defined once, when it loads);
* :func:`script`: one script's full source and SHA-1, for ``EVALSHA`` on Redis 6.2
  or where ``FCALL`` is not allowed: constants generated from Python (``S_<STATUS>``
  from :class:`~redis_atp.Status`, ``E_<CODE>`` from :class:`~redis_atp.errors.Code`,
  ``IDS_PER_BUCKET``, ...), then the shared helpers it uses (``_prelude.lua``,
  ``_control.lua``, ``_queue.lua``, ``_lists.lua``), then the script itself.

A server that lost them (``SCRIPT FLUSH``, ``FUNCTION FLUSH``, a restart, a
failover to a replica that never had them) says so, and the call did nothing: the
library is loaded where the call went (on a Redis Cluster: the namespace's node,
by its keys) and the call repeated, or a script is repeated as ``EVAL`` with its
source. ``SCRIPT LOAD`` would go to every primary of a cluster and fail while any
one of them is down.
"""
from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.resources import files

from .errors import Code
from .keys import (
    DEFAULT_MAX_EVENTS,
    DEFAULT_QUEUE_LIMIT,
    EVENT_MESSAGE_BYTES,
    FINISHED_LISTED,
    IDS_PER_BUCKET,
    lua_suffixes,
)
from .status import Status

__all__ = ["Script", "SCRIPT_NAMES", "script"]

#: The helpers every script is sent with, in this order, after the constants.
SHARED = ("_prelude", "_control", "_queue", "_lists")
SCRIPT_NAMES = (
    "register_type", "unregister_type", "enqueue", "dequeue", "start", "progress", "finish",
    "set_response", "reenqueue", "delete", "reap_zombies", "retire", "read_task", "release_owned",
    "advance", "take_handoff", "promote", "schedule_set", "schedule_next", "watch", "cancel",
    "pause", "list", "requeue_failed", "trim_ended",
)


@cache
def constants() -> dict[str, int]:
    """The numbers the scripts share with Python, by their Lua name (``S_FAILED``,
    ``E_STALE``, ...): written into each script's source as literals, not locals, so
    that no helper captures them (a Lua closure's creation walks the chunk's captured
    locals once per upvalue: at every call, for every helper a script defines)."""
    out = {f"S_{s.name}": int(s.value) for s in Status}
    out.update({f"E_{c.name}": int(c.value) for c in Code})
    out.update(IDS_PER_BUCKET=IDS_PER_BUCKET, DEFAULT_QUEUE_LIMIT=DEFAULT_QUEUE_LIMIT,
               DEFAULT_MAX_EVENTS=DEFAULT_MAX_EVENTS, EVENT_MESSAGE_BYTES=EVENT_MESSAGE_BYTES,
               FINISHED_LISTED=FINISHED_LISTED)
    return out


_CONSTANT = re.compile(r"\b(?:S|E)_[A-Z_]+\b|\b(?:IDS_PER_BUCKET|DEFAULT_QUEUE_LIMIT|DEFAULT_MAX_EVENTS|"
                       r"EVENT_MESSAGE_BYTES|FINISHED_LISTED)\b")


def _literals(source: str) -> str:
    """``source`` with each shared constant replaced by its number (unknown names stay,
    and fail loudly in Lua as undefined globals)."""
    values = constants()
    return _CONSTANT.sub(lambda m: str(values.get(m.group(0), m.group(0))), source)


def _key_names() -> list[tuple[str | None, str]]:
    """``local K_QUEUE = P .. 'queue'`` and the like, as named pieces: a script gets only
    the names it (or a helper it uses) mentions."""
    return [(lua, f"local {lua} = P .. '{suffix}'") for lua, suffix in lua_suffixes().items()]


def _read(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


_FUNCTION = re.compile(r"^(?:local function (\w+)\b|(\w+) = function\b)")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")
_COMMENT = re.compile(r"--.*$", re.M)
_DECLARATION = re.compile(r"^local \w+\s*$", re.M)  # a forward declaration names, it does not use


def _words(code: str) -> set[str]:
    """The names a piece of Lua mentions outside its comments."""
    return set(_WORD.findall(_COMMENT.sub("", code)))


def _pieces(text: str) -> list[tuple[str | None, str]]:
    """The shared helpers' top-level pieces, in order: ``(name, text)`` of each function
    (with the comment lines just above it), ``(None, text)`` of everything else. A
    function ends on its own line (a one-liner) or at the next ``end`` in column 0."""
    pieces: list[tuple[str | None, str]] = []
    lines, comment, i = text.splitlines(), [], 0
    while i < len(lines):
        line, m = lines[i], _FUNCTION.match(lines[i])
        if line.startswith("--"):
            comment.append(line)
        elif m:
            j = i
            if not line.rstrip().endswith(" end"):
                while lines[j] != "end":
                    j += 1
            pieces.append((m[1] or m[2], "\n".join([*comment, *lines[i:j + 1]])))
            comment, i = [], j
        else:
            pieces.append((None, "\n".join([*comment, line])))
            comment = []
        i += 1
    return pieces


def _needed(shared: list[tuple[str | None, str]], body: str) -> str:
    """The shared code a script sends: every non-function piece, and only the functions
    it reaches. Redis runs a script's top level on every call, so each helper defined
    and not used would cost a closure per call (about 7 µs for all of them)."""
    defined = {name: text for name, text in shared if name}
    want = _words(body) & defined.keys()
    for name, text in shared:
        if name is None:
            want |= _words(_DECLARATION.sub("", _COMMENT.sub("", text))) & defined.keys()
    todo = list(want)
    while todo:
        for w in _words(defined[todo.pop()]) & defined.keys():
            if w not in want:
                want.add(w)
                todo.append(w)
    return "\n".join(text for name, text in shared if name is None or name in want)


@cache
def _shared() -> list[tuple[str | None, str]]:
    return _key_names() + _pieces("\n".join(_read(part) for part in SHARED))


class Script:
    """One Lua script, ready to send: its full source (the constants, the shared helpers
    it uses, itself) and SHA-1 for ``EVALSHA``, and its name in the :func:`library`
    for ``FCALL``."""

    __slots__ = ("name", "source", "sha", "function")

    def __init__(self, name: str) -> None:
        self.name = name
        body = "begin_call()\n" + _read(name)
        head = "local P = ARGV[1]  -- the shard's key prefix\n"
        self.source = _literals(head + _needed(_shared(), body) + "\n" + body)
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()
        self.function = f"{library().name}_{name}"


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua`` (built once per process)."""
    return Script(name)


class Library:
    """Every script as one Redis Functions library (Redis 7+): the helpers are defined
    once, when the library loads, instead of on every call, which is about a fifth of
    an ``EVALSHA``'s work. Each script is the function ``<name>_<script>``; the name
    holds the source's SHA-1, so clients of different versions never call each other's
    code and loading is idempotent (``FUNCTION LOAD REPLACE``).

    The library keeps its locals from one call to the next: each function sets the key
    names when the prefix differs from the last call's (and forgets the memos, which
    belong to one prefix), and ``begin_call`` sets the per-call state (``_prelude.lua``)."""

    __slots__ = ("name", "source")

    def __init__(self) -> None:
        keys = _key_names()
        names = [lua for lua, _ in keys if lua]
        body = "\n".join(text for _, text in _pieces("\n".join(_read(part) for part in SHARED)))
        setter = "\n".join("  " + text.removeprefix("local ") for _, text in keys)
        functions = "\n".join(
            f"redis.register_function('@LIBRARY@_{script}', function(keys, args)\n"
            f"KEYS, ARGV = keys, args\nif args[1] ~= P then set_prefix(args[1]) end\nbegin_call()\n"
            f"{_read(script)}\nend)" for script in SCRIPT_NAMES)
        code = _literals(
            "local KEYS, ARGV, P\n"
            f"local {', '.join(names)}\n"
            f"{body}\n"
            f"local function set_prefix(prefix)\n  P = prefix\n{setter}\n  forget_memos()\nend\n"
            f"{functions}\n")
        self.name = "atp_" + hashlib.sha1(code.encode("utf-8")).hexdigest()[:16]
        self.source = f"#!lua name={self.name}\n" + code.replace("@LIBRARY@", self.name)


@cache
def library() -> Library:
    """All the scripts as one Redis Functions library (built once per process)."""
    return Library()
