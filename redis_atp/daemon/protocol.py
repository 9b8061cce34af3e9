"""The worker's side of the protocol: claim-and-start, the ``advance`` step, hand-offs to
idle owners, and ending a run on its own, as core operations (sans-IO, see
:mod:`redis_atp.protocol`), plus :class:`Claims`, which runs them on a sync tracker.

None of this is public ``Tracker`` API: it is how a slot of ``redis-atp worker`` owns
its tasks. A returned :class:`~redis_atp.StartedTask` is RUNNING under its claim: its
handler may start.
"""

from __future__ import annotations

from typing import Any, Protocol

from .. import validate
from ..client import Tracker
from ..keys import Keys, check_text
from ..models import StartedTask
from ..protocol import tasks
from ..protocol.namespace import Namespace, text, token_base
from ..protocol.requests import Command, Op
from ..status import Status

__all__ = ["Run", "Ended", "advance", "claim_started", "take_handoff", "end_run", "Claims"]


class Run(Protocol):
    """A run of a task: what fences it (``StartedTask``, ``Claim`` and ``TaskStatus`` are runs)."""

    @property
    def task_id(self) -> int: ...

    @property
    def token(self) -> int | None: ...


#: A run that is over: ``(run, FINISHED or FAILED, message)``.
Ended = tuple[Run, Status, str]


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
            count: int = 1, wait: bool = False, maybe_waiting: bool = True) -> Op[tuple[int, int, list[StartedTask]]]:
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

    Returns the ending's code (1 done, 0 nothing to do, or a negative
    :class:`~redis_atp.errors.Code` such as ``STALE``), the queue size left on the
    shard asked (no task and a size above 0: call again), and the started tasks.
    """
    owner = check_text("server id", server_id)
    odig = Keys.owner_digest(owner)
    msg = validate.message(start_message)
    end_args: tuple[Any, ...] = ("", "", "", "")
    shards = ns.next_shards()
    if ended is not None:
        run, outcome, message = ended
        tid = validate.task_id(run.task_id)
        end_args = (tid, validate.token(run.token), int(outcome), validate.message(message))
        shards = [ns.shard_of_id(tid)] + [s for s in shards if s != ns.shard_of_id(tid)]
    handoff = str(token_base()) if wait and ns.shards == 1 else ""
    if not ns.checked:
        yield from ns.check()
    reply = yield ns.call("advance", owner, odig, *end_args, msg, count, token_base(), handoff,
                          "1" if maybe_waiting else "0", shard=shards[0])
    found = started(reply[2:])
    for shard in shards[1:] if not found and count else []:  # sharded: the other shards
        found = started((yield ns.call("dequeue", owner, odig, count, "", "1", msg, token_base(), shard=shard))[1:])
        if found:
            break
    return int(reply[0]), int(reply[1]), found


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
    """End a run on its own, unless it ended its task already: 1 done, 0 already ended,
    ``Code.STALE`` if the run no longer owns the task (script ``finish``)."""
    run, outcome, message = ended
    tid = validate.task_id(run.task_id)
    if not ns.checked:
        yield from ns.check()
    reply = yield ns.call("finish", tid, validate.token(run.token), int(outcome), validate.message(message), "1",
                          shard=ns.shard_of_id(tid))
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
                wait: bool = False, maybe_waiting: bool = True) -> tuple[int, int, list[StartedTask]]:
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
