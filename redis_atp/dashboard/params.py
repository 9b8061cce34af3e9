"""The dashboard's URL parameters, checked before any Redis call: a bad one is a clear
400 (an unknown task a 404), never an error from deeper down, and nothing is written."""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.exceptions import HTTPException

from ..errors import InvalidInput
from ..keys import check_text
from ..models import TaskInfo
from ..status import Status

__all__ = ["status_param", "text_param", "limit_param", "task_id_param", "before_param", "hours_param",
           "PAGE", "MAX_PAGE", "MAX_QUERY"]

#: Tasks per list page by default, and at most.
PAGE = 50
MAX_PAGE = 200
#: Longest query string served (a type name or identifier is at most 4096 bytes,
#: percent-encoded three times that).
MAX_QUERY = 16_384
#: Task ids are positive 64-bit integers: more digits name no task.
_MAX_ID_DIGITS = 19


def bad(detail: str) -> HTTPException:
    return HTTPException(400, detail)


def status_param(raw: str | None) -> Status | None:
    """A status by name (any case) or code 1-6; empty or absent: any."""
    if not raw:
        return None
    if raw.isdigit() and len(raw) == 1 and 1 <= int(raw) <= 6:
        return Status(int(raw))
    try:
        status = Status[raw.upper()] if raw.isascii() else None
    except KeyError:
        status = None
    if status is None or status == Status.UNDEFINED:
        raise bad(f"status must be a name (accepted .. failed) or a code 1-6, not {raw[:40]!r}")
    return status


def text_param(what: str, raw: str | None) -> str | None:
    """A type name or identifier: non-empty, valid text, at most 4096 UTF-8 bytes."""
    if raw is None or raw == "":
        return None
    try:
        check_text(what, raw)
    except InvalidInput as exc:
        raise bad(str(exc)) from None
    return raw


def _int(what: str, raw: str, low: int, high: int) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) or not low <= int(raw) <= high:
        raise bad(f"{what} must be an integer from {low} to {high}, not {raw[:40]!r}")
    return int(raw)


def limit_param(raw: str | None) -> int:
    return PAGE if not raw else _int("limit", raw, 1, MAX_PAGE)


def hours_param(raw: str | None, default: int) -> int:
    """Hours of history in the charts: 1-48 (the per-minute figures are kept 48 hours)."""
    return default if not raw else _int("hours", raw, 1, 48)


def task_id_param(raw: str) -> int:
    """A task id from a URL path; anything that cannot be one names no task (404)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_ID_DIGITS or int(raw) < 1:
        raise HTTPException(404, "no such task")
    return int(raw)


def before_param(raw_id: str | None, raw_at: str | None) -> int | TaskInfo | None:
    """The cursor of the next page: the last task's id and, when given, the time (ms) of
    its last change, so paging goes on even after that task expired or was deleted."""
    if not raw_id:
        return None
    task_id = _int("before", raw_id, 1, 10**_MAX_ID_DIGITS - 1)
    if not raw_at:
        return task_id
    at = _int("at", raw_at, 0, 10**15)
    return TaskInfo(task_id, "", "", Status.UNDEFINED.pair(), datetime.fromtimestamp(at / 1000, timezone.utc))
