"""Argument checks shared by the tracker's methods: bad input is refused before any
call to Redis, so a refusal never writes anything."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidInput, TaskNotFound

__all__ = ["task_id", "seconds", "message", "clean_text", "handler_path", "token", "due", "retry_settings", "priority",
           "hard_timeout", "Handler"]

Handler = str | Callable[..., Any]
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def task_id(value: object) -> int:
    """The task id as an int; anything that is not a positive integer names no task."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise TaskNotFound(f"task {value!r:.80} does not exist (task ids are positive integers)")


#: Largest number of seconds a setting may hold (about 31 years; the Lua prelude's
#: MAX_SECONDS): a finite number that stays exact in milliseconds.
MAX_SECONDS = 10**9
#: Latest due time accepted, in seconds since the epoch (the year 5000).
MAX_EPOCH = 95_617_584_000
#: Longest log message, in UTF-8 bytes.
MAX_MESSAGE_BYTES = 64 * 1024


def seconds(what: str, value: object) -> str:
    """A number of seconds as the text the scripts parse: finite, at most ``MAX_SECONDS``
    either way (``inf`` or NaN would reach Redis as a number no script can use)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or abs(value) > MAX_SECONDS:
        raise InvalidInput(f"{what} must be a finite number of seconds within ±{MAX_SECONDS:,}, not {value!r:.80}")
    return repr(value) if isinstance(value, float) else str(value)


def message(value: object) -> str:
    """A log message: text that encodes as UTF-8, at most ``MAX_MESSAGE_BYTES``."""
    if not isinstance(value, str):
        raise InvalidInput(f"a log message must be str, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"a log message must be valid Unicode text: {exc}") from None
    if size > MAX_MESSAGE_BYTES:
        raise InvalidInput(f"a log message is {size} bytes long; the limit is {MAX_MESSAGE_BYTES}")
    return value


def clean_text(value: str, limit: int) -> str:
    """``value`` made safe to log: lone surrogates (``os.fsdecode`` of a non-UTF-8 name)
    escaped as ``\\udcxx``, cut to ``limit`` characters. For text the worker writes
    on its own (a handler's error), which must never be refused."""
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def handler_path(handler: Handler | int) -> str:
    """A handler's dotted path; a callable is stored as ``module.qualname`` (a
    staticmethod as ``module.Class.method``, which the worker resolves), an ``int`` as
    ``str(value)``, as the seed's database field did."""
    if isinstance(handler, int) and not isinstance(handler, bool):
        return str(handler)
    if callable(handler) and not isinstance(handler, str):
        module = getattr(handler, "__module__", None)
        path = f"{module}.{getattr(handler, '__qualname__', '')}"
        if not module or not _DOTTED.fullmatch(path):
            raise InvalidInput(f"handler {handler!r} has no importable dotted path")
        return path
    if not isinstance(handler, str) or not _DOTTED.fullmatch(handler):
        raise InvalidInput(f"handler must be a dotted path 'package.module.function', not {handler!r:.80}")
    return handler


def token(value: int | None) -> str:
    """A run's fencing token as script text; ``''`` is the unfenced operator path."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"token must be an int run number, not {value!r:.80}")
    return str(value)


def due(delay: float | None, eta: datetime | float | None) -> tuple[str, str]:
    """``delay`` (seconds from now, by the Redis clock) or ``eta`` (a datetime, naive ones
    meaning UTC, or seconds since the epoch) as the enqueue script's ``(delay ms, due
    ms)`` arguments; ``("", "")`` for neither."""
    if delay is not None and eta is not None:
        raise InvalidInput("give delay or eta, not both")
    if delay is not None:
        seconds("delay", delay)
        if delay < 0:
            raise InvalidInput(f"delay must not be negative, not {delay!r}")
        return str(math.ceil(delay * 1000)), ""
    if eta is None:
        return "", ""
    if isinstance(eta, datetime):
        stamp = (eta if eta.tzinfo else eta.replace(tzinfo=timezone.utc)).timestamp()
    elif isinstance(eta, (int, float)) and not isinstance(eta, bool):
        stamp = float(eta)
    else:
        raise InvalidInput(f"eta must be a datetime or seconds since the epoch, not {eta!r:.80}")
    if not math.isfinite(stamp) or not 0 <= stamp <= MAX_EPOCH:
        raise InvalidInput(f"eta must be a time between 1970 and the year 5000, not {eta!r:.80}")
    return "", str(math.ceil(stamp * 1000))


def retry_settings(retries: int, retry_delay: float, retry_backoff: float, retry_max_delay: float) -> tuple[str, ...]:
    """A type's retry settings as script text, checked: ``retries`` an int >= 0, delays
    >= 0 s, ``retry_backoff`` >= 1."""
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10**9:
        raise InvalidInput(f"retries must be an int from 0, not {retries!r:.80}")
    out = (str(retries), seconds("retry_delay", retry_delay), seconds("retry_backoff", retry_backoff),
           seconds("retry_max_delay", retry_max_delay))
    if retry_delay < 0 or retry_max_delay < 0 or retry_backoff < 1:
        raise InvalidInput("retry_delay and retry_max_delay must be >= 0 and retry_backoff >= 1")
    return out


#: Priority levels: larger runs first; 0 is the default.
MIN_PRIORITY, MAX_PRIORITY = -9, 9


def priority(value: object) -> str:
    """A priority level as script text: an int from ``MIN_PRIORITY`` to ``MAX_PRIORITY``."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be an int from {MIN_PRIORITY} to {MAX_PRIORITY}, not {value!r:.80}")
    return str(value)


def hard_timeout(value: float | None) -> str:
    """A type's ``hard_timeout`` as script text: positive seconds, or ``"0"`` for none."""
    if value is None:
        return "0"
    text = seconds("hard_timeout", value)
    if value <= 0:
        raise InvalidInput(f"hard_timeout must be positive (or None: no limit), not {value!r}")
    return text
