"""Commands over many tasks or the whole queue: ``ls``, ``pause``, ``resume``, ``events``.
(``requeue --failed`` lives with ``requeue`` in :mod:`.tasks`.)"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..client import Tracker
from ..models import Event, TaskInfo
from ..status import Status
from .common import UsageError, _esc, _out, _paused_text, _table, _when

#: Seconds one ``events --follow`` read waits; the stream's cursor lives in the iterator,
#: so a long wait (read by the library in 5 s slices) loses nothing between reads.
FOLLOW_BLOCK = 3600.0


def _status(text: str) -> Status:
    """``--status``: a name, any case (``failed``, ``FAILED``), or a code 1-6."""
    name = text.strip().upper()
    status = Status[name] if name in Status.__members__ else None
    if name.isdigit() and int(name) in Status._value2member_map_:
        status = Status(int(name))
    if status is None or status == Status.UNDEFINED:
        choices = ", ".join(s.name.lower() for s in Status if s != Status.UNDEFINED)
        raise UsageError(f"--status {text!r:.40}: not a status ({choices}, or a code 1-6)")
    return status


def cmd_ls(args: argparse.Namespace, tracker: Tracker) -> int:
    status = None if args.status is None else _status(args.status)
    page = tracker.list_tasks(args.type, status, limit=args.limit, before=args.before)

    def row(t: TaskInfo) -> dict[str, Any]:
        return {"id": t.task_id, "type": t.type, "identifier": t.identifier, "status": t.status[1],
                "code": int(t.status[0]), "updated": t.updated.isoformat()}

    def text() -> str:
        if not page:
            return "no tasks"
        rows = [[t.task_id, _esc(t.type), _esc(t.identifier), t.status[1], _when(t.updated)] for t in page]
        more = [f"(more: --before {page[-1].task_id})"] if len(page) == args.limit else []
        return "\n".join([_table(rows, ["ID", "TYPE", "IDENTIFIER", "STATUS", "UPDATED"]), *more])
    return _out(args, [row(t) for t in page], text)


def _pause(args: argparse.Namespace, tracker: Tracker, verb: str) -> int:
    (tracker.pause_queue if verb == "paused" else tracker.resume_queue)(args.type)
    state = tracker.get_pause_state()
    what = "the namespace" if args.type is None else f"type {_esc(args.type)}"
    return _out(args, state, lambda: f"{verb} {what}; paused now: {_paused_text(state)}")


def cmd_pause(args: argparse.Namespace, tracker: Tracker) -> int:
    return _pause(args, tracker, "paused")


def cmd_resume(args: argparse.Namespace, tracker: Tracker) -> int:
    return _pause(args, tracker, "resumed")


def _event_line(args: argparse.Namespace, e: Event) -> str:
    if args.json:
        return json.dumps({"id": e.id, "task_id": e.task_id, "type": e.type, "identifier": e.identifier,
                           "status": e.status[1], "code": int(e.status[0]), "time": e.time.isoformat(),
                           "message": e.message})
    return (f"{_when(e.time)}  {e.task_id:>6}  {_esc(e.type)}::{_esc(e.identifier)}  {e.status[1]:<9}  "
            f"{_esc(e.message)}").rstrip()


def cmd_events(args: argparse.Namespace, tracker: Tracker) -> int:
    """Print events, one a line (JSON Lines with ``--json``), flushed each. Without
    ``--follow`` the kept history (``--since`` defaults to ``0``); with it, events from
    now on (or after ``--since``) until Ctrl-C, which exits 0."""
    since = args.since if args.since is not None else (None if args.follow else "0")
    printed = 0
    try:
        while True:
            for event in tracker.events(since, block=FOLLOW_BLOCK if args.follow else None):
                print(_event_line(args, event), flush=True)
                since, printed = event.id, printed + 1
            if not args.follow:
                break
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not printed and not args.json:
        off = tracker.get_max_events() == 0
        print("no events" + (" (events are off: redis-atp config set max-events N)" if off else ""))
    return 0
