"""Schedules: periodic tasks without a scheduler process (SPEC §7).

A schedule is a spec (type, ``cron`` or ``every``, input, time zone, policies) and
its next tick, kept on shard 0 (see :mod:`redis_atp.keys`). Each worker's
housekeeping runs :func:`run_due`: for a due schedule it creates the task
``(type, "<name>@<tick, ISO 8601 UTC>")`` and then moves the schedule on with a
compare-and-set on the tick it saw. The identifier is unique, so a tick's task
exists once however many workers or producers look at it at once, and a worker
that dies between the two steps leaves a tick the next round finishes without a
second task. Ticks of ``every=S`` fall on multiples of S seconds since the epoch
(``every=60``: each minute, on the minute); ``cron`` is a 5-field expression in
``tz``, read by ``cronsim``.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import validate
from ..errors import Code, DuplicateTask, InvalidInput, QueueFull, error_for_code
from ..keys import check_text
from ..models import Schedule, epoch_ms, utc_from_ms
from ..status import Status
from .namespace import Namespace, text
from .reads import get_task_status_by_identifier
from .requests import Batch, Command, Op
from .tasks import call, enqueue_task

__all__ = ["add_schedule", "remove_schedule", "list_schedules", "run_due", "next_tick", "MISFIRE_GRACE"]

#: A tick later than this (seconds) when housekeeping first sees it was missed (the
#: fleet was down): ``misfire="skip"`` drops it, ``"once"`` runs the latest one.
MISFIRE_GRACE = 60.0
OVERLAP = ("skip", "allow")
MISFIRE = ("skip", "once")
#: Due schedules one housekeeping round handles at most.
DUE_PER_ROUND = 50


def _cron(expr: str, start: datetime, reverse: bool = False) -> datetime:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:
        raise InvalidInput("cron schedules need cronsim: pip install 'redis-atp[cron]'") from None
    try:
        return next(CronSim(expr, start, reverse=reverse))
    except CronSimError as exc:
        raise InvalidInput(f"bad cron expression {expr!r}: {exc}") from None
    except StopIteration:
        raise InvalidInput(f"cron expression {expr!r} never fires") from None


def next_tick(spec: dict[str, Any], after: datetime, reverse: bool = False) -> datetime:
    """The schedule's first tick strictly after ``after`` (UTC), or with ``reverse`` its
    last tick at or before it."""
    if spec.get("every"):
        every = float(spec["every"])
        k = math.floor(after.timestamp() / every) if reverse else math.floor(after.timestamp() / every) + 1
        return datetime.fromtimestamp(k * every, timezone.utc)
    zone = ZoneInfo(spec["tz"])
    start = after.astimezone(zone)
    if reverse:
        start += timedelta(microseconds=1)  # cronsim's reverse walk is strictly before its start
    return _cron(spec["cron"], start, reverse).astimezone(timezone.utc)


def tick_identifier(name: str, tick: datetime) -> str:
    """``<name>@<tick in ISO 8601 UTC>`` (milliseconds only when there are any)."""
    stamp = tick.strftime("%Y-%m-%dT%H:%M:%S")
    ms = tick.microsecond // 1000
    return f"{name}@{stamp}{f'.{ms:03d}' if ms else ''}Z"


def _spec(ns: Namespace, name: str, type: str, cron: str | None, every: float | None, input: Any, tz: str,
          overlap: str, misfire: str) -> dict[str, Any]:
    check_text("schedule name", name)
    check_text("task type", type)
    if (cron is None) == (every is None):
        raise InvalidInput("a schedule needs cron= or every=, not both")
    if every is not None:
        validate.seconds("every", every)
        if every < 1:
            raise InvalidInput(f"every must be at least 1 second, not {every!r}")
    if cron is not None and not isinstance(cron, str):
        raise InvalidInput(f"cron must be a str, not {cron!r:.80}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput(f"unknown time zone {tz!r:.80}") from None
    if overlap not in OVERLAP or misfire not in MISFIRE:
        raise InvalidInput(f"overlap must be one of {OVERLAP} and misfire one of {MISFIRE}")
    raw = ns.serializer.pack(input, ns.max_input_bytes)
    spec = {"type": type, "cron": cron, "every": every, "tz": tz, "overlap": overlap, "misfire": misfire,
            "input": base64.b64encode(raw).decode("ascii")}
    if cron is not None:
        next_tick(spec, datetime.now(timezone.utc))  # the expression parses, and fires
    return spec


def _schedule(ns: Namespace, name: str, raw: bytes, due: float | None, last: bytes | None) -> Schedule:
    spec = json.loads(raw)
    return Schedule(name=name, type=spec["type"], cron=spec["cron"], every=spec["every"],
                    input=ns.decode_input(base64.b64decode(spec["input"]), fallback=True), tz=spec["tz"],
                    overlap=spec["overlap"], misfire=spec["misfire"],
                    next_run=None if due is None else utc_from_ms(int(due)),
                    last_task=None if last is None else text(last))


def add_schedule(ns: Namespace, name: str, type: str, cron: str | None = None, every: float | None = None,
                 input: Any = None, tz: str = "UTC", overlap: str = "skip", misfire: str = "skip") -> Op[Schedule]:
    spec = _spec(ns, name, type, cron, every, input, tz, overlap, misfire)
    first = next_tick(spec, datetime.now(timezone.utc))
    if not ns.checked:
        yield from ns.check()
    if (yield Command("HGET", ns.keys.types, type)) is None:
        raise error_for_code(Code.TYPE_NOT_FOUND, f"task type {type!r}")
    raw = json.dumps(spec, separators=(",", ":"))
    yield ns.call("schedule_set", name, raw, epoch_ms(first))
    return _schedule(ns, name, raw.encode(), epoch_ms(first), None)


def remove_schedule(ns: Namespace, name: str) -> Op[bool]:
    check_text("schedule name", name)
    return bool((yield from call(ns, ns.call("schedule_set", name, "", ""))))


def list_schedules(ns: Namespace) -> Op[list[Schedule]]:
    if not ns.checked:
        yield from ns.check()
    specs, due, last = yield Batch([Command("HGETALL", ns.keys.schedules),
                                    Command("ZRANGE", ns.keys.schedule_due, 0, -1, "WITHSCORES"),
                                    Command("HGETALL", ns.keys.schedule_last)])
    when = dict(due)
    return sorted((_schedule(ns, text(n), raw, when.get(n), last.get(n)) for n, raw in specs.items()),
                  key=lambda s: s.name)


def _tick_to_run(spec: dict[str, Any], due: datetime, now: datetime) -> datetime | None:
    """The tick a due schedule runs now: the one that was due if it is not late past
    ``MISFIRE_GRACE``; else (missed) the latest tick up to now, which ``misfire="skip"``
    runs only if it is itself on time and ``"once"`` always."""
    if (now - due).total_seconds() <= MISFIRE_GRACE:
        return due
    latest = next_tick(spec, now, reverse=True)
    if spec["misfire"] == "once" or (now - latest).total_seconds() <= MISFIRE_GRACE:
        return latest
    return None


def run_due(ns: Namespace, now: datetime | None = None,
            limit: int = DUE_PER_ROUND) -> Op[list[tuple[str, str | None]]]:
    """Housekeeping's step: create the tasks of due ticks and move their schedules on.
    Returns ``(schedule, identifier of the task created, or None: skipped)`` per
    schedule it moved on. A tick whose task a full queue refused stays due."""
    now = now or datetime.now(timezone.utc)
    if not ns.checked:
        yield from ns.check()
    due = yield Command("ZRANGEBYSCORE", ns.keys.schedule_due, "-inf", epoch_ms(now), "WITHSCORES", "LIMIT", 0, limit)
    if not due:
        return []
    names = [n for n, _ in due]
    specs, lasts = yield Batch([Command("HMGET", ns.keys.schedules, *names),
                                Command("HMGET", ns.keys.schedule_last, *names)])
    done: list[tuple[str, str | None]] = []
    for (name, score), raw, last in zip(due, specs, lasts, strict=True):
        if raw is None:
            continue  # removed meanwhile
        spec = json.loads(raw)
        tick = _tick_to_run(spec, utc_from_ms(int(score)), now)
        ident = None if tick is None else tick_identifier(text(name), tick)
        if ident is not None and spec["overlap"] == "skip" and last is not None:
            try:
                status, _ = yield from get_task_status_by_identifier(ns, spec["type"], text(last))
            except LookupError:
                status = Status.FINISHED
            if not status.is_terminal:
                ident = None  # the last tick's task is still queued or running
        if ident is not None:
            try:
                yield from enqueue_task(ns, spec["type"], ident, ns.decode_input(base64.b64decode(spec["input"])))
            except DuplicateTask:
                pass  # this tick's task exists: another worker got here first
            except QueueFull:
                continue  # stays due: the next round tries again
        moved = yield ns.call("schedule_next", name, int(score), epoch_ms(next_tick(spec, now)), ident or "")
        if moved:
            done.append((text(name), ident))
    return done

