"""Every Redis key name is built here and nowhere else.

All keys of namespace ``NS`` start with ``atp:{NS}:``: the braces are a Redis
Cluster hash tag, so a namespace lives in one slot and every script runs on a
cluster, and a Redis ACL key pattern ``~atp:{NS}:*`` confines a client to it.
A namespace sharded over S hash tags (``Tracker(..., shards=S)``) keeps shard 0
there and puts shard ``i`` under ``atp:{NS/i}:`` (ACL: ``~atp:{NS}:* ~atp:{NS/*``);
every shard has the layout below, and ``config`` (shard 0) records S.
Key names hold only the namespace, fixed words, integers and fixed-length
digests, never raw user text.

==============================  ======  ===================================================
key                             type    contents
==============================  ======  ===================================================
``atp:{NS}:seq``                string  last task sequence number of the shard; task id =
                                        seq * S + shard (ids are never reused)
``atp:{NS}:config``             hash    settings recorded at the first registration, on every
                                        shard: ``serializer`` (msgpack or pickle),
                                        ``max_queue_size`` (the limit, for every producer),
                                        ``max_events`` (the events stream's cap),
                                        ``types`` (the types' revision, set when one is
                                        registered or removed: scripts cache a type's
                                        settings until it changes, a second at most);
                                        shard 0: ``shards`` (absent: 1)
``atp:{NS}:queue``              list    ACCEPTED tasks, oldest first (``RPUSH``/``LPOP``): the
                                        task id, plus ``:<nq>`` from a task's second time in
                                        the queue on; a task that left it early (cancelled,
                                        deleted, started by hand) leaves its entry behind, and
                                        claims drop entries that are not a task's current one
``atp:{NS}:queue:<P>``          list    the same for priority level P (-9..9 but 0; 0 is ``queue``):
                                        claims take the highest level with work first
``atp:{NS}:levels``             zset    P -> P for each level other than 0 whose list may hold
                                        entries (a claim that finds one empty drops it)
``atp:{NS}:queued``             string  the number of ACCEPTED tasks, ready or delayed: the exact
                                        queue size (with no ready task the queue list, holding
                                        only left-behind entries, goes)
``atp:{NS}:delayed``            zset    queue entry -> due time (ms) of each delayed ACCEPTED task
                                        (``delay=``/``eta=``, retries); a claim or housekeeping
                                        moves it to the queue's tail once due
``atp:{NS}:wake``               zset    one member, ``wake``, while the queue holds ready work (or
                                        briefly after a delayed task became the next due);
                                        awaited with ``BZPOPMIN`` by blocking dequeuers
``atp:{NS}:types``              hash    type name -> type number
``atp:{NS}:typeseq``            string  last type number handed out
``atp:{NS}:type:<n>``           hash    ``name handler timeout timeret maxrestart retries
                                        retry_delay retry_backoff retry_max_delay`` and the
                                        counters ``accepted scheduled running paused``
                                        (tasks now in that status) and ``finished_total
                                        failed_total`` (runs that ended so)
``atp:{NS}:type:<n>:live``      zset    id -> time (ms) of the last status change of each live
                                        (SCHEDULED, RUNNING, PAUSED) task of the type; overdue:
                                        older than the type's current ``timeout``
``atp:{NS}:t:<digest>``         hash    one task (see below); ``<digest>``: 12 characters,
                                        base64url of the first 72 bits of SHA-1 over the
                                        length-prefixed type and identifier (a collision is
                                        detected and refused, never merged)
``atp:{NS}:ids:<id // 100>``    hash    task id -> task digest, for the 100 ids of a bucket,
                                        plus ``pins`` (members without a TTL) and
                                        ``expires`` (latest member expiry, ms)
``atp:{NS}:owned:<digest>``     set     ids of the live tasks an owner (``serverID``) holds
``atp:{NS}:waiters``            list    owner digests of idle worker threads waiting for work,
                                        longest-waiting first (unsharded namespaces)
``atp:{NS}:waiting``            hash    owner digest -> ``"<token> <owner>"`` of each waiter
``atp:{NS}:mailbox:<digest>``   list    ``"<id> <token>"`` of a task handed to that waiter,
                                        claimed for it (SCHEDULED) until it starts it
``atp:{NS}:workers``            hash    worker id -> JSON ``{"digest": d, "slots": [owner digests]}``:
                                        the registry the reaper walks
``atp:{NS}:worker:<digest>``    hash    a live worker process: ``id host pid supervisor started
                                        beat threads slots``; its TTL is the heartbeat (the
                                        supervisor renews it; expired = host lost)
``atp:{NS}:housekeeping``       string  lock (``SET NX PX``) so one worker per interval sweeps
``atp:{NS}:retire_cursor``      string  next id bucket the workers' retention sweep visits
``atp:{NS}:schedules``          hash    schedule name -> its spec, JSON (type, cron or every, tz,
                                        overlap, misfire, input as base64 of the serialized bytes)
``atp:{NS}:schedule_due``       zset    schedule name -> its next tick (ms); housekeeping reads it
``atp:{NS}:schedule_last``      hash    schedule name -> identifier of its last tick's task
``atp:{NS}:type:<n>:finished``  zset    id -> time (ms) it ended, of each FINISHED task of the
``atp:{NS}:type:<n>:failed``            type (FAILED: ``failed``): ``list_tasks`` reads them;
                                        entries of expired tasks are dropped by housekeeping
                                        and by the reads that meet them; ``finished`` keeps
                                        the newest 100,000
``atp:{NS}:type:<n>:parked``    list    queue entries of the type's ACCEPTED tasks taken out of
                                        the queue while the type is paused; resuming puts them
                                        back at the head of the queue
``atp:{NS}:paused``             hash    ``all`` (the namespace is paused), ``t:<type>`` (that type
                                        is), ``parked`` (tasks in parked lists); absent: nothing
                                        paused (claims then pay nothing for pausing)
``atp:{NS}:minute:<m>``         hash    per minute m (unix time // 60), housekeeping's last sample
                                        in it: ``finished_total failed_total`` (the types'
                                        counters: their growth is the throughput) and ``ready
                                        delayed live`` (queue and live tasks); kept 48 hours
``atp:{NS}:events``             stream  one entry per status change (``task type ident status
                                        msg``), capped near ``max_events`` (a ``config`` field,
                                        default 10,000; 0: none written)
==============================  ======  ===================================================

A task hash holds ``id type ident status input``, its log as ``log:<n>`` fields
(``"<unix time> <status code> <message>"``, ``nlog`` = records appended, absent
while there is one), and, once dequeued, ``owner odig run token restarts`` (``run``
counts claims; ``token`` is the current run's random fencing token, removed when the
run is over other than by ending the task itself), ``nq`` (times re-queued),
``due`` (ms) while it is delayed, ``retries`` (retries used, apart from ``restarts``),
``prio`` (its priority level, absent for 0), ``parked`` (1 while its entry is in its
type's parked list), ``cancelled`` (1 once cancelled, until re-run),
plus ``response response_type mime`` once a response is stored. A finished task's
hash carries the retention TTL; its id bucket lives as long as its longest-lived
member (pinned while any member is live or kept forever).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from functools import lru_cache

from .errors import InvalidInput
from .status import Status

__all__ = ["Keys", "LUA_NAMES", "lua_suffixes", "IDS_PER_BUCKET", "DEFAULT_QUEUE_LIMIT", "DEFAULT_MAX_EVENTS",
           "EVENT_MESSAGE_BYTES", "FINISHED_LISTED", "check_text"]

#: Task ids per id-bucket hash (``atp:{NS}:ids:<id // 100>``); the Lua prelude gets it too.
IDS_PER_BUCKET = 100
#: The queue limit a namespace's first registration records (the seed's MAX_QUEUE_SIZE);
#: the scripts apply it to a namespace that has none recorded.
DEFAULT_QUEUE_LIMIT = 64
#: The events stream's cap when the namespace sets none (``max_events``; 0 turns it off).
DEFAULT_MAX_EVENTS = 10_000
#: An event carries at most this many bytes of its log message (the log has all of it).
EVENT_MESSAGE_BYTES = 200
#: A type's index of FINISHED tasks keeps the newest this many per shard (housekeeping
#: trims it): lists show those; FAILED tasks are all indexed, for ``requeue_failed``.
FINISHED_LISTED = 100_000

_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: Longest type name, identifier or server id, in UTF-8 bytes.
MAX_TEXT_BYTES = 4096


def check_text(what: str, value: object) -> bytes:
    """Validate a type name, identifier or server id and return its UTF-8 bytes. An
    ``int`` stands for ``str(value)``, as the seed's database fields stored it (its
    daemon's server id is a random 64-bit integer).

    Raises:
        InvalidInput: not a non-empty ``str`` or an ``int``, not encodable, or longer
        than 4096 bytes.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty str, not {value!r:.80}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid Unicode text: {exc}") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise InvalidInput(f"{what} is {len(raw)} bytes long; the limit is {MAX_TEXT_BYTES}")
    return raw


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _digest(data: bytes) -> str:
    """base64url of the first 72 bits of SHA-1 over ``data`` (length-prefixed parts)."""
    raw = hashlib.sha1(data).digest()[:9]
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode("ascii")


class Keys:
    """The key names of one namespace (the layout table is this module's docstring)."""

    __slots__ = (
        "namespace", "shard", "prefix", "seq", "config", "queue", "queued", "delayed", "levels", "level_prefix",
        "wake", "types", "typeseq",
        "workers", "housekeeping", "retire_cursor", "schedules", "schedule_due", "schedule_last", "task_prefix",
        "events", "paused", "minute_prefix",
        "ids_prefix", "type_prefix",
        "owned_prefix", "worker_prefix", "waiters", "waiting", "mailbox_prefix",
    )

    def __init__(self, namespace: str, shard: int = 0) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise InvalidInput(
                f"namespace must be 1-64 characters of A-Z a-z 0-9 _ . - , not {namespace!r:.80}"
            )
        self.namespace = namespace
        self.shard = shard
        self.prefix = p = f"atp:{{{namespace}}}:" if shard == 0 else f"atp:{{{namespace}/{shard}}}:"
        self.seq = p + "seq"
        self.config = p + "config"
        self.queue = p + "queue"
        self.queued = p + "queued"
        self.delayed = p + "delayed"
        self.levels = p + "levels"
        self.level_prefix = p + "queue:"
        self.wake = p + "wake"
        self.types = p + "types"
        self.typeseq = p + "typeseq"
        self.workers = p + "workers"
        self.housekeeping = p + "housekeeping"
        self.retire_cursor = p + "retire_cursor"
        self.schedules = p + "schedules"
        self.schedule_due = p + "schedule_due"
        self.schedule_last = p + "schedule_last"
        self.events = p + "events"
        self.paused = p + "paused"
        self.minute_prefix = p + "minute:"
        self.task_prefix = p + "t:"
        self.ids_prefix = p + "ids:"
        self.type_prefix = p + "type:"
        self.owned_prefix = p + "owned:"
        self.worker_prefix = p + "worker:"
        self.waiters = p + "waiters"
        self.waiting = p + "waiting"
        self.mailbox_prefix = p + "mailbox:"

    @staticmethod
    def task_digest(type_name: bytes, identifier: bytes) -> str:
        """The fixed-length digest naming the task ``(type, identifier)``."""
        return _digest(b"%d:%b%d:%b" % (len(type_name), type_name, len(identifier), identifier))

    @staticmethod
    def shard_of(digest: str, shards: int) -> int:
        """The shard a task with this digest lives on (bits of the digest the key also uses)."""
        return 0 if shards == 1 else int.from_bytes(base64.urlsafe_b64decode(digest)[:4], "big") % shards

    @staticmethod
    @lru_cache(maxsize=4096)
    def owner_digest(owner: bytes) -> str:
        """The fixed-length digest naming an owner's (``serverID``'s) set of tasks."""
        return _digest(b"%d:%b" % (len(owner), owner))

    def task(self, digest: str) -> str:
        """The task hash named by ``digest`` (see :meth:`task_digest`)."""
        return self.task_prefix + digest

    def ids_bucket(self, task_id: int, shards: int = 1) -> str:
        """The id-bucket hash that maps ``task_id`` to its task digest (ids of a shard
        are ``seq * shards + shard``; a bucket holds 100 of that shard's ids)."""
        return f"{self.ids_prefix}{task_id // (IDS_PER_BUCKET * shards)}"

    def type(self, number: int | str) -> str:
        """The hash of the task type with this type number."""
        return f"{self.type_prefix}{number}"

    def level(self, priority: int) -> str:
        """The queue list of a priority level (0: the default list, ``queue``)."""
        return self.queue if priority == 0 else f"{self.level_prefix}{priority}"

    def live(self, number: int | str) -> str:
        """The set of live tasks of the task type with this type number, by last change."""
        return f"{self.type_prefix}{number}:live"

    def ended(self, number: int | str, status: int) -> str:
        """The index of the type's FINISHED (5) or FAILED (6) tasks, by the time they ended."""
        return f"{self.type_prefix}{number}:{'finished' if status == Status.FINISHED else 'failed'}"

    def minute(self, minute: int) -> str:
        """The sample of one minute (``unix time // 60``): counters and queue sizes."""
        return f"{self.minute_prefix}{minute}"

    def parked(self, number: int | str) -> str:
        """The queue entries of the type's tasks set aside while the type is paused."""
        return f"{self.type_prefix}{number}:parked"

    def owned(self, owner_digest: str) -> str:
        """The set of live task ids held by the owner with this digest."""
        return self.owned_prefix + owner_digest

    def worker(self, worker_digest: str) -> str:
        """The heartbeat hash of the worker process with this digest (see :meth:`owner_digest`)."""
        return self.worker_prefix + worker_digest

    def mailbox(self, owner_digest: str) -> str:
        """The list where tasks handed to an idle owner wait for it to pick them up."""
        return self.mailbox_prefix + owner_digest

    def script_head(self) -> list[str]:
        """``KEYS[1]`` and ``ARGV[1]`` of every script (see ``lua/_prelude.lua``): the queue,
        which routes the call to the shard's slot, and the shard's prefix, from which
        the scripts build every other name (see :data:`LUA_NAMES`)."""
        return [self.queue, self.prefix]


#: The key names and prefixes Lua scripts use, by their Lua name: the :class:`Keys`
#: attribute each one is. ``scripts.py`` turns them into ``local K_QUEUE = P .. 'queue'``
#: (``P``: the shard's prefix, ``ARGV[1]``), so every name is still made from this module.
LUA_NAMES = {
    "K_TYPES": "types", "K_QUEUE": "queue", "K_QUEUED": "queued", "K_WAKE": "wake", "K_SEQ": "seq",
    "K_TYPESEQ": "typeseq", "K_WAITERS": "waiters", "K_WAITING": "waiting", "K_DELAYED": "delayed",
    "K_LEVELS": "levels", "K_CONFIG": "config", "K_EVENTS": "events", "K_PAUSED": "paused",
    "K_SCHEDULES": "schedules", "K_SCHEDULE_DUE": "schedule_due", "K_SCHEDULE_LAST": "schedule_last",
    "P_TASK": "task_prefix", "P_IDS": "ids_prefix", "P_TYPE": "type_prefix", "P_OWNED": "owned_prefix",
    "P_MAILBOX": "mailbox_prefix", "P_LEVEL": "level_prefix",
}


def lua_suffixes() -> dict[str, str]:
    """Each Lua name's key name after the shard's prefix (the same on every shard)."""
    keys = Keys("x")
    return {lua: getattr(keys, attr)[len(keys.prefix):] for lua, attr in LUA_NAMES.items()}
