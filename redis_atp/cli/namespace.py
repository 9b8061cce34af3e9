"""Commands about the namespace as a whole: ``info``, ``config``, ``types``, ``schedules``,
``zombies``, ``retire``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..client import Tracker
from ..daemon.fleet import Fleet
from ..worker import mask_url
from .common import COUNTS, UsageError, _esc, _jsonable, _out, _paused_text, _read_input, _table, _when


def cmd_info(args: argparse.Namespace, tracker: Tracker) -> int:
    types = tracker.list_task_types()
    workers = Fleet(tracker).workers()
    now = time.time()
    size, overdue, limit = tracker.get_queue_size(), tracker.count_overdue(), tracker.get_max_queue_size()
    parts, paused = tracker.get_queue_counts(), tracker.get_pause_state()
    data = {
        "namespace": tracker.namespace, "url": mask_url(args.url),
        "queue": {"size": size, "limit": limit, **parts},
        "paused": paused,
        "overdue": overdue,
        "types": {t.name: t.counts for t in types},
        "workers": [{"id": w.id, "host": w.host, "pid": w.pid, "threads": w.threads, "tasks": w.tasks,
                     "last_heartbeat": w.beat, "heartbeat_expires_ms": w.ttl_ms} for w in workers],
    }
    shards = tracker.shard_stats() if tracker.shards > 1 else []
    if shards:
        data["shards"] = shards

    def text() -> str:
        out = [f"namespace  {tracker.namespace}  ({mask_url(args.url)})",
               f"queue      {size} waiting: {parts['ready']} ready, {parts['delayed']} delayed"
               + (f", {parts['parked']} parked" if parts["parked"] else "")
               + f" ({'no limit' if limit <= 0 else f'limit {limit}'})",
               f"paused     {_paused_text(paused)}",
               f"overdue    {overdue} live tasks past their deadline", ""]
        if shards:
            out.append(_table([[s["shard"], s["prefix"], s["queue"], s["live"], s["overdue"]] for s in shards],
                              ["SHARD", "PREFIX", "QUEUE", "LIVE", "OVERDUE"]))
            out.append("")
        rows = [[_esc(t.name), *(t.counts[c] for c in COUNTS)] for t in types]
        out.append(_table(rows, ["TYPE", "ACCEPTED", "SCHEDULED", "RUNNING", "PAUSED", "FINISHED*", "FAILED*"])
                   if rows else "no task types registered")
        if rows:
            out.append("* runs ever ended FINISHED/FAILED (finished tasks expire by their type's timeret)")
        out.append("")
        wrows = [[w.id, w.host, w.pid, w.threads, ",".join(map(str, w.tasks)) or "-", f"{now - w.beat:.1f}s ago"]
                 for w in workers]
        out.append(_table(wrows, ["WORKER", "HOST", "PID", "THREADS", "TASKS", "LAST SEEN"])
                   if wrows else "no live workers")
        return "\n".join(out)
    return _out(args, data, text)


def cmd_config(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "set":
        (tracker.set_max_queue_size if args.setting == "max-queue-size" else tracker.set_max_events)(args.value)
    limit, events = tracker.get_max_queue_size(), tracker.get_max_events()
    return _out(args, {"max_queue_size": limit, "max_events": events, "serializer": tracker.serializer.name,
                       "shards": tracker.shards},
                lambda: f"max-queue-size  {limit}{' (no limit)' if limit <= 0 else ''}\n"
                        f"max-events      {events}{' (events off)' if events == 0 else ''}\n"
                        f"serializer      {tracker.serializer.name}\nshards          {tracker.shards}")


_TYPE_SETTINGS = ("handler", "timeout", "timeret", "maxrestart", "retries", "retry_delay", "retry_backoff",
                  "retry_max_delay", "hard_timeout")


def cmd_types(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "register":
        try:
            old = tracker.get_task_type(args.type)
            current = {k: getattr(old, k) for k in _TYPE_SETTINGS}
        except LookupError:
            if args.handler is None:
                raise UsageError(f"task type {args.type!r} does not exist: give its HANDLER") from None
            current = {"timeout": 3600, "timeret": -1, "maxrestart": 2, "retries": 0, "retry_delay": 1.0,
                       "retry_backoff": 2.0, "retry_max_delay": 3600, "hard_timeout": None}
        given = {k: getattr(args, k) for k in _TYPE_SETTINGS}
        settings = {**current, **{k: v for k, v in given.items() if v is not None}}
        handler = settings.pop("handler")
        tracker.register_task_type(args.type, handler, settings.pop("timeout"), settings.pop("timeret"),
                                   settings.pop("maxrestart"), **settings)
        t = tracker.get_task_type(args.type)
        return _out(args, t.__dict__, lambda: f"registered {_esc(t.name)} -> {t.handler} (timeout {t.timeout:g}s, "
                                              f"timeret {t.timeret:g}s, maxrestart {t.maxrestart}, "
                                              f"retries {t.retries})")
    if args.action == "unregister":
        tracker.unregister_task_type(args.type, args.force)
        return _out(args, {"unregistered": args.type}, lambda: f"unregistered {args.type}")
    types = tracker.list_task_types()
    rows = [[_esc(t.name), t.handler, f"{t.timeout:g}", f"{t.timeret:g}", t.maxrestart,
             f"{t.retries} ({t.retry_delay:g}s x{t.retry_backoff:g}, max {t.retry_max_delay:g}s)" if t.retries else "0"]
            for t in types]
    return _out(args, [t.__dict__ for t in types],
                lambda: _table(rows, ["TYPE", "HANDLER", "TIMEOUT", "TIMERET", "MAXRESTART", "RETRIES"])
                if rows else "no task types registered")


def cmd_schedules(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "add":
        s = tracker.add_schedule(args.name, args.type, cron=args.cron, every=args.every,
                                 input=_read_input(args.input), tz=args.tz, overlap=args.overlap,
                                 misfire=args.misfire)
        nxt = _when(s.next_run) if s.next_run else "-"
        return _out(args, _schedule_data(s), lambda: f"schedule {_esc(s.name)}: next tick {nxt}")
    if args.action == "rm":
        if not tracker.remove_schedule(args.name):
            raise LookupError(f"schedule {args.name!r} does not exist")
        return _out(args, {"removed": args.name}, lambda: f"removed schedule {_esc(args.name)}")
    found = tracker.list_schedules()
    rows = [[_esc(s.name), _esc(s.type), s.cron or f"every {s.every:g}s", s.tz, s.overlap, s.misfire,
             _when(s.next_run) if s.next_run else "-", _esc(s.last_task or "-")] for s in found]
    return _out(args, [_schedule_data(s) for s in found],
                lambda: _table(rows, ["SCHEDULE", "TYPE", "WHEN", "TZ", "OVERLAP", "MISFIRE", "NEXT", "LAST TASK"])
                if rows else "no schedules")


def _schedule_data(s: Any) -> dict[str, Any]:
    return {**s.__dict__, "input": _jsonable(s.input), "next_run": s.next_run.isoformat() if s.next_run else None}


def cmd_zombies(args: argparse.Namespace, tracker: Tracker) -> int:
    moved = tracker.reap_zombies()
    rows = [[tid, f"{_esc(t)}::{_esc(i)}", s.name] for tid, t, i, s in moved]
    return _out(args, [{"id": tid, "type": t, "identifier": i, "status": s.name} for tid, t, i, s in moved],
                lambda: _table(rows, ["ID", "TASK", "NOW"]) if rows else "no overdue tasks")


def cmd_retire(args: argparse.Namespace, tracker: Tracker) -> int:
    removed = tracker.delete_retired_tasks()
    return _out(args, [{"id": tid, "task": name} for tid, name in removed],
                lambda: "\n".join(f"removed {tid} {_esc(name)}" for tid, name in removed) or "nothing to retire")
