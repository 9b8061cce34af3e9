"""What an operation asks of a connection, and nothing more: requests without I/O.

An operation of the core is a generator (``Op[T]``): it validates its arguments,
then yields requests and receives their replies, and returns its result or
raises. The faces (:class:`~redis_atp.Tracker`, :class:`~redis_atp.aio.AsyncTracker`)
drive it over their connection, one request at a time, and throw a connection
error into it; a state change is never retried, because one whose reply was lost
may have run, but waits and reads may ride out an outage (:class:`Reconnect`).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Sequence
from typing import Any, TypeVar

from redis.exceptions import ConnectionError, NoPermissionError, NoScriptError, ResponseError, TimeoutError

from ..scripts import Script

__all__ = ["Command", "ScriptCall", "Batch", "Sleep", "BatchRounds", "Request", "Op", "Reconnect", "TRANSIENT",
           "command_of", "never_ran", "FCALL", "EVALSHA", "EVAL"]

#: The errors the faces throw into an operation: the connection failed or timed out.
TRANSIENT = (ConnectionError, TimeoutError)

T = TypeVar("T")


class Command:
    """One plain Redis command; the reply is redis-py's for it (``decode_responses=False``).

    ``quiet``: an error reply is returned as the exception instead of raised."""

    __slots__ = ("args", "quiet")

    def __init__(self, *args: Any, quiet: bool = False) -> None:
        self.args = args
        self.quiet = quiet

    def __repr__(self) -> str:
        return f"Command{self.args!r:.120}"


class ScriptCall:
    """One script call: ``FCALL`` of its function in the scripts' library (Redis 7+),
    else ``EVALSHA``; an answer saying the server did not know it (:func:`never_ran`)
    is repeated (the library loaded, or as ``EVAL`` with the source). ``argv``:
    ``numkeys, *keys, *args``. ``before``: a
    command sent in the same write just before the script, its reply dropped (the
    worker's blocking wait on its mailbox, so the script runs the moment it returns)."""

    __slots__ = ("script", "argv", "before")

    def __init__(self, script: Script, argv: tuple[Any, ...], before: Command | None = None) -> None:
        self.script = script
        self.argv = argv
        self.before = before

    def __repr__(self) -> str:
        return f"ScriptCall({self.script.name}, {self.argv!r:.120})"


class Batch:
    """Requests pipelined in one round trip (not a transaction). The reply is the list
    of their replies in order; once every one has run, the first error is raised.

    ``requests`` may be an iterator: the executor then sends each request as soon as it
    is produced, before producing the next, so that Redis runs one while the client
    builds the next (a bulk enqueue encodes chunk n+1 while Redis stores chunk n)."""

    __slots__ = ("requests",)

    def __init__(self, requests: Iterable[Command | ScriptCall]) -> None:
        self.requests = requests

    def __repr__(self) -> str:
        size = len(self.requests) if isinstance(self.requests, Sequence) else "streamed"
        return f"Batch({size} requests)"


class Sleep:
    """Wait ``seconds`` before the next request (a backoff); the reply is None."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Reconnect:
    """The backoff of an operation whose requests are safe to repeat (a wait, a read):
    the faces throw a connection error into the operation, which answers with
    ``yield reconnect.after(exc)`` and repeats its request; after ``patience`` seconds
    of failures in a row the error is raised."""

    __slots__ = ("patience", "since", "delay")

    def __init__(self, patience: float = 30.0) -> None:
        self.patience = patience
        self.since: float | None = None
        self.delay = 0.05

    def after(self, exc: BaseException) -> Sleep:
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since > self.patience:
            raise exc
        delay, self.delay = self.delay, min(1.0, self.delay * 2)
        return Sleep(delay)

    def ok(self) -> None:
        self.since, self.delay = None, 0.05


Request = Command | ScriptCall | Batch | Sleep
#: An operation: yields requests, is sent their replies, returns its result.
Op = Generator[Request, Any, T]


#: How a script call is sent: ``FCALL`` of its function in the library of every script
#: (Redis 7+: the helpers are defined once, not on every call), ``EVALSHA`` (Redis 6.2,
#: or where the library cannot be loaded), ``EVAL`` with the full source.
FCALL, EVALSHA, EVAL = "FCALL", "EVALSHA", "EVAL"

_UNKNOWN = ("Function not found", "unknown command")


def command_of(request: Command | ScriptCall, form: str) -> tuple[Any, ...]:
    """The command a request sends: its own, or a script call in ``form``."""
    if type(request) is Command:
        return request.args
    call: ScriptCall = request  # type: ignore[assignment]
    if form is FCALL:
        return ("FCALL", call.script.function, *call.argv)
    if form is EVALSHA:
        return ("EVALSHA", call.script.sha, *call.argv)
    return ("EVAL", call.script.source, *call.argv)


def never_ran(reply: Any) -> bool:
    """Whether an error reply says a script call did nothing because the server did not
    know what was called: the script (NOSCRIPT), its function (the library is not
    loaded: a restart, ``FUNCTION FLUSH``), ``FCALL`` itself (Redis 6.2), or the user
    may not run ``FCALL`` (ACL)."""
    if isinstance(reply, NoScriptError):
        return True
    if isinstance(reply, NoPermissionError):
        return "'fcall'" in str(reply).lower()
    return isinstance(reply, ResponseError) and str(reply).startswith(_UNKNOWN)


class BatchRounds:
    """The rounds a :class:`Batch` takes: every request pipelined (scripts in ``form``),
    then those that never ran (:func:`never_ran`) again as ``EVAL``, until none is left;
    then the replies, or the first error once every request has run."""

    __slots__ = ("batch", "replies", "pending", "form", "functions_missing")

    def __init__(self, batch: Batch, form: str) -> None:
        assert isinstance(batch.requests, Sequence)
        self.batch = batch
        self.replies: list[Any] = [None] * len(batch.requests)
        self.pending = list(range(len(batch.requests)))
        self.form = form
        #: a script call's function was not there (the executor loads the library)
        self.functions_missing = False

    def commands(self) -> list[tuple[Any, ...]]:
        """The commands of the next round."""
        requests = self.batch.requests
        assert isinstance(requests, Sequence)
        return [command_of(requests[i], self.form) for i in self.pending]

    def absorb(self, replies: list[Any]) -> None:
        """Take a round's replies (errors as values)."""
        retry, requests = [], self.batch.requests
        assert isinstance(requests, Sequence)
        for i, reply in zip(self.pending, replies, strict=True):
            if self.form is not EVAL and type(requests[i]) is ScriptCall and never_ran(reply):
                retry.append(i)
                self.functions_missing |= self.form is FCALL
            else:
                self.replies[i] = reply
        self.pending, self.form = retry, EVAL

    def result(self) -> list[Any]:
        assert isinstance(self.batch.requests, Sequence)
        for request, reply in zip(self.batch.requests, self.replies, strict=True):
            if isinstance(reply, Exception) and not (type(request) is Command and request.quiet):
                raise reply
        return self.replies
