"""The worker's side of the protocol: claim-and-start, the ``advance`` step, hand-offs to
idle owners, and ending a run on its own, as core operations (sans-IO, see
:mod:`redis_atp.protocol`), plus :class:`Claims`, which runs them on a sync tracker.

None of this is public ``Tracker`` API: it is how a slot of ``redis-atp worker`` owns
its tasks. A returned :class:`~redis_atp.StartedTask` is RUNNING under its claim: its
handler may start.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple, Protocol

from .. import validate
from ..client import Tracker
from ..keys import Keys, check_text
from ..models import StartedTask
from ..protocol import tasks
from ..protocol.namespace import Namespace, text, token_base
from ..protocol.requests import Command, Op
from ..status import Status

__all__ = ["Run", "Ended", "Step", "advance", "claim_started", "take_handoff", "end_run", "Claims"]


class Run(Protocol):
    """A run of a task: what fences it (``StartedTask``, ``Claim`` and ``TaskStatus`` are runs)."""

    @property
    def task_id(self) -> int: ...

    @property
    def token(self) -> int | None: ...


#: A run that is over: ``(run, FINISHED or FAILED, message)``, or with a fourth item for
#: a failure, its retry: ``""`` none, ``"auto"`` (the type's backoff) or seconds.
Ended = tuple[Run, Status, str] | tuple[Run, Status, str, str]


class Step(NamedTuple):
    """What one ``advance`` did: the ending's code (1 ended, 2 retry scheduled, 0 nothing
    to do, or a negative :class:`~redis_atp.errors.Code` such as ``STALE``), the ready
    tasks left on the shard asked (no task and ready above 0: call again), the tasks it
    started, and seconds until the next delayed task is due (``None``: none)."""

    ending: int
    ready: int
    tasks: list[StartedTask]
    due_in: float | None


def _end_args(ended: Ended) -> tuple[Any, ...]:
    """The script arguments of a run's end: id, token, outcome, message, retry, jitter."""
    run, outcome, message = ended[0], ended[1], ended[2]
    retry = ended[3] if len(ended) > 3 else ""
    return (validate.task_id(run.task_id), validate.token(run.token), int(outcome), validate.message(message),
            retry, repr(random.random()) if retry == "auto" else "")


def started(reply: list[Any]) -> list[StartedTask]:
    """The started tasks of a claim's reply: ``id token type identifier handler input`` each."""
    return [StartedTask(int(reply[i]), int(reply[i + 1]), text(reply[i + 2]), text(reply[i + 3]),
                        text(reply[i + 4]), reply[i + 5]) for i in range(0, len(reply), 6)]


def claim_started(ns: Namespace, server_id: str, message: str = "", start_message: str = "",
                  count: int = 1, timeout: float | None = None) -> Op[list[StartedTask]]:
    """Claim up to ``count`` tasks and start them (SCHEDULED, then RUNNING) in one script call."""
    return started((yield from tasks.dequeue(ns, server_id, message, count, timeout,
                                             validate.message(start_message))))


def advance(ns: Namespace, server_id: str, ended: Ended | None = None, start_message: str = "",
            count: int = 1, wait: bool = False, maybe_waiting: bool = True) -> Op[Step]:
    """The slot's step in one round trip (script ``advance``).

    Ends the run ``ended`` unless its handler already ended it; then starts the task
    handed to ``server_id`` (see :func:`take_handoff`) or claims and starts up to
    ``count`` from the queue. With ``wait`` (unsharded), finding nothing, ``server_id``
    waits for a hand-off: the next task that becomes ACCEPTED is claimed for it, to be
    started with :func:`take_handoff`; otherwise wait with
    :func:`~redis_atp.protocol.tasks.wait_for_work`. Stop waiting with
    :meth:`Fleet.release <redis_atp.daemon.fleet.Fleet.release>`. ``maybe_waiting=False``
    (the owner has not registered as a waiter since it last started a task: a busy
    slot) skips the look at its mailbox.

    Returns a :class:`Step`.
    """
    owner = check_text("server id", server_id)
    odig = Keys.owner_digest(owner)
    msg = validate.message(start_message)
    end_args: tuple[Any, ...] = ("", "", "", "", "", "")
    shards = ns.next_shards()
    if ended is not None:
        end_args = _end_args(ended)
        shards = [ns.shard_of_id(end_args[0])] + [s for s in shards if s != ns.shard_of_id(end_args[0])]
    handoff = str(token_base()) if wait and ns.shards == 1 else ""
    if not ns.checked:
        yield from ns.check()
    reply = yield ns.call("advance", owner, odig, *end_args[:4], msg, count, token_base(), handoff,
                          "1" if maybe_waiting else "0", *end_args[4:], shard=shards[0])
    due_in = [int(reply[2])]
    found = started(reply[3:])
    for shard in shards[1:] if not found and count else []:  # sharded: the other shards
        more = yield ns.call("dequeue", owner, odig, count, "", "1", msg, token_base(), shard=shard)
        due_in.append(int(more[1]))
        found = started(more[2:])
        if found:
            break
    due = [d / 1000 for d in due_in if d >= 0]
    return Step(int(reply[0]), int(reply[1]), found, min(due) if due else None)


def take_handoff(ns: Namespace, server_id: str, timeout: float, start_message: str = "") -> Op[list[StartedTask]]:
    """Block up to ``timeout`` seconds for a task handed to ``server_id`` while it waits
    (see :func:`advance`) and start it (script ``take_handoff``), if its claim is still
    current. The wait (``BLMOVE`` of the mailbox onto itself, so the entry stays in
    Redis until the script takes it) and the script go in one write."""
    owner = check_text("server id", server_id)
    odig = Keys.owner_digest(owner)
    mailbox = ns.keys.mailbox(odig)
    wait = Command("BLMOVE", mailbox, mailbox, "LEFT", "LEFT", f"{max(timeout, 0.001):.3f}")
    msg = validate.message(start_message)
    if not ns.checked:
        yield from ns.check()
    return started((yield ns.call("take_handoff", odig, msg, before=wait)))


def end_run(ns: Namespace, ended: Ended) -> Op[int]:
    """End a run on its own, unless it ended its task already: 1 done, 2 retry
    scheduled, 0 already ended, ``Code.STALE`` if the run no longer owns the task
    (script ``finish``)."""
    tid, token, outcome, message, retry, jitter = _end_args(ended)
    if not ns.checked:
        yield from ns.check()
    reply = yield ns.call("finish", tid, token, outcome, message, "1", retry, jitter, shard=ns.shard_of_id(tid))
    return int(reply[0] if isinstance(reply, list) else reply)  # a refusal carries details


class Claims:
    """The worker protocol on a sync tracker's connection."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.ns = tracker.ns
        self.io = tracker.io

    def claim_started(self, server_id: str, message: str = "", start_message: str = "", *,
                      count: int = 1, timeout: float | None = None) -> list[StartedTask]:
        """See :func:`claim_started`."""
        return self.io.run(claim_started(self.ns, server_id, message, start_message, count, timeout))

    def advance(self, server_id: str, ended: Ended | None = None, start_message: str = "", count: int = 1,
                wait: bool = False, maybe_waiting: bool = True) -> Step:
        """See :func:`advance`."""
        return self.io.run(advance(self.ns, server_id, ended, start_message, count, wait, maybe_waiting))

    def take_handoff(self, server_id: str, timeout: float, start_message: str = "") -> list[StartedTask]:
        """See :func:`take_handoff`."""
        return self.io.run(take_handoff(self.ns, server_id, timeout, start_message))

    def wait_for_work(self, timeout: float) -> bool:
        """See :func:`~redis_atp.protocol.tasks.wait_for_work`; True if woken."""
        return self.io.execute(tasks.wait_for_work(self.ns, timeout)) is not None

    def end_run(self, ended: Ended) -> int:
        """See :func:`end_run`."""
        return self.io.run(end_run(self.ns, ended))
