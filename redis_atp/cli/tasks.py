"""Commands about one task: ``enqueue``, ``key``, ``show``, ``response``, ``requeue`` (and
``requeue --failed``: every failed task), ``delete``, ``wait``, ``cancel``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client import Tracker
from ..keys import Keys, check_text
from .common import UsageError, _esc, _jsonable, _out, _read_input, _task_id, _when


def cmd_enqueue(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = tracker.enqueue_task(args.type, args.identifier, _read_input(args.input), args.message, delay=args.delay,
                               eta=args.at, priority=args.priority)
    due = tracker.describe_task(tid)["due_ms"] if args.delay or args.at else None
    return _out(args, {"id": tid, **({"due_ms": due} if due else {})},
                lambda: f"enqueued task {tid} ({_esc(args.type)}::{_esc(args.identifier)})"
                        + (f", due {_when(due / 1000)}" if due else ""))


def cmd_key(args: argparse.Namespace, tracker: Tracker) -> int:
    tname, ident = check_text("task type", args.type), check_text("identifier", args.identifier)
    digest = Keys.task_digest(tname, ident)
    keys = tracker.shard_keys[Keys.shard_of(digest, tracker.shards)]
    data: dict[str, Any] = {"task": keys.task(digest), "digest": digest}
    try:
        tid = tracker.get_task_id(args.type, args.identifier)
        data.update(id=tid, id_bucket=keys.ids_bucket(tid, tracker.shards))
    except LookupError:
        data.update(id=None, id_bucket=None)
    return _out(args, data, lambda: "\n".join(f"{k:<10} {v}" for k, v in data.items() if v is not None)
                + ("" if data["id"] else "\n(no such task now)"))


def cmd_show(args: argparse.Namespace, tracker: Tracker) -> int:
    info = tracker.describe_task(_task_id(args, tracker))
    log = info.pop("log")
    info["input"] = _jsonable(info["input"])
    data = {**info, "log": [{"time": t.isoformat(), "status": s[1], "message": m} for t, s, m in log]}

    def text() -> str:
        deadline = _when(info["deadline_ms"] / 1000) if info["deadline_ms"] else "-"
        retention = "kept forever" if info["ttl_ms"] is None else f"expires in {info['ttl_ms'] / 1000:.0f}s"
        response = f"{info['response_bytes']} bytes, {info['mime_type']}" if info["mime_type"] else "none"
        lines = [
            f"task {info['id']}  {_esc(info['type'])}::{_esc(info['identifier'])}",
            f"status     {info['status']} ({info['code']})",
            f"owner      {_esc(info['owner'] or '-')}   run {info['run']}   restarts {info['restarts']}"
            f"   retries {info['retries']}" + (f"   priority {info['priority']}" if info["priority"] else "")
            + (f"   (last run's owner {_esc(info['last_owner'])})" if info["last_owner"] and not info["owner"] else ""),
            f"handler    {info['handler']}",
            f"created    {_when(log[0][0]) if log else '-'}",
            f"updated    {_when(log[-1][0]) if log else '-'}",
            f"deadline   {deadline}",
            *([f"due        {_when(info['due_ms'] / 1000)} (delayed)"] if info["due_ms"] else []),
            f"retention  {retention}",
            f"key        {info['key']}",
            f"input      {_esc(json.dumps(info['input'])[:500])}",
            f"response   {response}",
            "log",
        ]
        lines += [f"  {_when(t)}  {s[1]:<9}  {_esc(m)}" for t, s, m in log]
        return "\n".join(lines)
    return _out(args, data, text)


def cmd_response(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    t, ident = tracker.get_task_identifier(tid)
    response, mime = tracker.get_task_response(t, ident)
    if response is None:
        print(f"redis-atp: task {tid} ({_esc(t)}::{_esc(ident)}) has no response", file=sys.stderr)
        return 1
    raw = response.encode() if isinstance(response, str) else response
    if args.output:
        with open(args.output, "wb") as f:
            f.write(raw)
        return _out(args, {"id": tid, "mime_type": mime, "bytes": len(raw), "file": args.output},
                    lambda: f"wrote {len(raw)} bytes ({mime}) to {args.output}")
    if args.json:
        body = response if isinstance(response, str) else raw.hex()
        return _out(args, {"id": tid, "mime_type": mime, "response": body, "hex": not isinstance(response, str)},
                    str)
    sys.stdout.flush()
    sys.stdout.buffer.write(raw if raw.endswith(b"\n") else raw + b"\n")
    return 0


def cmd_requeue(args: argparse.Namespace, tracker: Tracker) -> int:
    """One task back in the queue; with ``--failed``, every FAILED task (of ``--type``)."""
    if args.failed:
        if args.type or args.identifier or args.task_id is not None:
            raise UsageError("give either --failed or a task (TYPE IDENTIFIER, --id), not both")
        n = tracker.requeue_failed(args.failed_type, args.message)
        return _out(args, {"requeued": n}, lambda: f"{n} failed task{'' if n == 1 else 's'} back in the queue")
    if args.failed_type is not None:
        raise UsageError("--type goes with --failed; one task is TYPE IDENTIFIER or --id ID")
    tid = _task_id(args, tracker)
    tracker.reenqueue_task(tid, args.message)
    return _out(args, {"id": tid, "status": "ACCEPTED"}, lambda: f"task {tid} is back in the queue")


def cmd_delete(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    tracker.delete_task(tid)
    return _out(args, {"deleted": tid}, lambda: f"deleted task {tid}")


def cmd_wait(args: argparse.Namespace, tracker: Tracker) -> int:
    """Exit 0 when the task ended FINISHED, 1 when FAILED or the wait ran out."""
    tid = _task_id(args, tracker)
    try:
        code, name = tracker.wait_task(tid, args.timeout)
    except TimeoutError as exc:
        message = str(exc)
        _out(args, {"id": tid, "status": None, "timed_out": True}, lambda: message)
        return 1
    _out(args, {"id": tid, "status": name, "code": int(code)}, lambda: f"task {tid} {name}")
    return 0 if name == "FINISHED" else 1


def cmd_cancel(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    changed = tracker.cancel_task(tid, args.message)
    return _out(args, {"id": tid, "cancelled": changed},
                lambda: f"cancelled task {tid}" if changed else f"task {tid} had ended already; left alone")
