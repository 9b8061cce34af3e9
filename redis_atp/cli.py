"""``redis-atp``: the worker and the operator's commands. Logging is configured here only.

Every command takes ``--url``/``--namespace`` (defaults: ``REDIS_ATP_URL``,
``REDIS_ATP_NAMESPACE``) and ``--json``. Exit codes: 0 success, 1 not found /
refused / Redis unreachable, 2 usage (bad arguments or input).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import redis

from .client import Tracker
from .connection import client_from_url
from .errors import InvalidInput, RedisATPError
from .fleet import Fleet
from .worker import Supervisor, WorkerConfig, mask_url

__all__ = ["main"]

COUNTS = ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")


class UsageError(Exception):
    """Bad arguments the parser could not catch (exit code 2)."""


def _env_list(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(",") if p]


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value
    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=os.environ.get("REDIS_ATP_URL", "redis://127.0.0.1:6379/0"),
                   help="Redis URL (default: $REDIS_ATP_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--namespace", default=os.environ.get("REDIS_ATP_NAMESPACE", "atp"),
                   help="namespace (default: $REDIS_ATP_NAMESPACE or atp)")
    p.add_argument("--shards", type=_positive(int), default=int(os.environ.get("REDIS_ATP_SHARDS", 1)),
                   help="hash tags the namespace spreads over (default: $REDIS_ATP_SHARDS or 1)")
    p.add_argument("--serializer", choices=["msgpack", "pickle"],
                   default=os.environ.get("REDIS_ATP_SERIALIZER", "msgpack"),
                   help="how task inputs are stored; must be the namespace's (default: $REDIS_ATP_SERIALIZER "
                        "or msgpack)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _task_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("type", nargs="?", help="task type")
    p.add_argument("identifier", nargs="?", help="task identifier")
    p.add_argument("--id", type=int, dest="task_id", help="the task id instead of TYPE IDENTIFIER")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="redis-atp", description="Redis-backed asynchronous task tracker")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, func: Callable[[argparse.Namespace, Tracker], Any], text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    cmd("info", cmd_info, "queue, tasks per type and status, overdue tasks, live workers")
    conf = cmd("config", cmd_config, "show or change the namespace's settings, kept in Redis")
    csub = conf.add_subparsers(dest="action", metavar="ACTION")
    cset = csub.add_parser("set", parents=[common], help="change a setting for every client of the namespace")
    cset.add_argument("setting", choices=["max-queue-size"], help="max-queue-size: the queue limit (<= 0: none)")
    cset.add_argument("value", type=int)
    csub.add_parser("get", parents=[common], help="show the settings (the default action)")
    types = cmd("types", cmd_types, "list task types; register or unregister one")
    tsub = types.add_subparsers(dest="action", metavar="ACTION")
    reg = tsub.add_parser("register", parents=[common], help="create or update a task type")
    reg.add_argument("type")
    reg.add_argument("handler", help="dotted path package.module.function")
    reg.add_argument("--timeout", type=float, default=3600, help="seconds without a status change (default 3600)")
    reg.add_argument("--timeret", type=float, default=-1, help="seconds finished tasks are kept (default: forever)")
    reg.add_argument("--maxrestart", type=int, default=2, help="re-enqueues after a time-out or crash (default 2)")
    unreg = tsub.add_parser("unregister", parents=[common], help="remove a task type")
    unreg.add_argument("type")
    unreg.add_argument("--force", action="store_true", help="delete the type's tasks too")
    p = cmd("enqueue", cmd_enqueue, "create a task at the tail of the queue")
    p.add_argument("type")
    p.add_argument("identifier")
    p.add_argument("--input", default="null", help="task input as JSON (default: null)")
    p.add_argument("--message", default="", help="first log message")
    _task_ref(cmd("show", cmd_show, "everything about one task, with its full log"))
    p = cmd("response", cmd_response, "print (or save) a task's response")
    _task_ref(p)
    p.add_argument("-o", "--output", help="write the response to this file")
    p = cmd("requeue", cmd_requeue, "put a task back in the queue (an operator's re-run)")
    _task_ref(p)
    p.add_argument("--message", default="requeued by operator")
    _task_ref(cmd("delete", cmd_delete, "delete a task and every key of it"))
    cmd("zombies", cmd_zombies, "re-enqueue (or fail) overdue tasks now; list what moved")
    cmd("retire", cmd_retire, "remove finished tasks past their retention; list them")

    w = sub.add_parser("worker", parents=[common], help="run a supervisor and N worker processes")
    w.add_argument("-n", "--processes", type=_positive(int), default=os.cpu_count() or 1,
                   help="worker processes (default: CPU count)")
    w.add_argument("--threads", type=_positive(int), default=1, help="handlers at once per process (default 1)")
    w.add_argument("-p", "--path", action="append", default=[], help="add a directory to sys.path (repeatable)")
    w.add_argument("--allow", action="append", default=_env_list("REDIS_ATP_ALLOW"), metavar="PREFIX",
                   help="run only handlers under this module prefix (repeatable; $REDIS_ATP_ALLOW, comma-separated)")
    w.add_argument("--burst", action="store_true", help="exit 0 once the queue is empty")
    w.add_argument("--grace", type=_positive(float), default=30.0,
                   help="seconds running tasks get to finish on SIGINT/SIGTERM (default 30)")
    w.add_argument("--heartbeat", type=_positive(float), default=10.0,
                   help="seconds without a heartbeat before a worker's tasks are recovered (default 10)")
    w.add_argument("--wait-for-redis", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for Redis at start (default: fail at once)")
    w.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    w.set_defaults(func=None, run=cmd_worker)

    d = sub.add_parser("demo", help="run a demo fleet on an embedded (or given) Redis")
    d.add_argument("--url", default=os.environ.get("REDIS_ATP_URL"),
                   help="Redis to use (default: $REDIS_ATP_URL, else an embedded one)")
    d.add_argument("--namespace", default="demo", help="namespace (default: demo)")
    d.add_argument("--tasks", type=_positive(int), default=2000, help="tasks to run (default 2000)")
    d.add_argument("--processes", type=_positive(int), default=2, help="worker processes (default 2)")
    d.add_argument("--embedded", choices=["auto", "redis-server", "fakeredis"],
                   default=os.environ.get("REDIS_ATP_DEMO_EMBEDDED", "auto"),
                   help="Redis to start when no --url/$REDIS_ATP_URL is given (default: auto)")
    d.add_argument("--keep", action="store_true", help="keep the embedded Redis running after the summary")
    d.set_defaults(func=None, run=cmd_demo)
    return parser


# ---------------------------------------------------------------- output helpers
def _out(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> int:
    print(json.dumps(data, indent=2, default=str) if args.json else text())
    return 0


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _when(ts: datetime | float) -> str:
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _task_id(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.task_id is not None:
        if args.type or args.identifier:
            raise UsageError("give either TYPE IDENTIFIER or --id, not both")
        return int(args.task_id)
    if not (args.type and args.identifier):
        raise UsageError("give TYPE IDENTIFIER, or --id ID")
    return tracker.get_task_id(args.type, args.identifier)


# ---------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace, tracker: Tracker) -> int:
    types = tracker.list_task_types()
    workers = Fleet(tracker).workers()
    now = time.time()
    size, overdue, limit = tracker.get_queue_size(), tracker.count_overdue(), tracker.get_max_queue_size()
    data = {
        "namespace": tracker.namespace, "url": mask_url(args.url),
        "queue": {"size": size, "limit": limit},
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
               f"queue      {size} waiting ({'no limit' if limit <= 0 else f'limit {limit}'})",
               f"overdue    {overdue} live tasks past their deadline", ""]
        if shards:
            out.append(_table([[s["shard"], s["prefix"], s["queue"], s["live"], s["overdue"]] for s in shards],
                              ["SHARD", "PREFIX", "QUEUE", "LIVE", "OVERDUE"]))
            out.append("")
        rows = [[t.name, *(t.counts[c] for c in COUNTS)] for t in types]
        out.append(_table(rows, ["TYPE", "ACCEPTED", "SCHEDULED", "RUNNING", "PAUSED", "FINISHED*", "FAILED*"])
                   if rows else "no task types registered")
        if rows:
            out.append("* transitions ever made into FINISHED/FAILED (finished tasks expire by TTL)")
        out.append("")
        wrows = [[w.id, w.host, w.pid, w.threads, ",".join(map(str, w.tasks)) or "-", f"{now - w.beat:.1f}s ago"]
                 for w in workers]
        out.append(_table(wrows, ["WORKER", "HOST", "PID", "THREADS", "TASKS", "HEARTBEAT"])
                   if wrows else "no live workers")
        return "\n".join(out)
    return _out(args, data, text)


def cmd_config(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "set":
        tracker.set_max_queue_size(args.value)
    limit = tracker.get_max_queue_size()
    return _out(args, {"max_queue_size": limit, "serializer": tracker.serializer.name, "shards": tracker.shards},
                lambda: f"max-queue-size  {limit}{' (no limit)' if limit <= 0 else ''}\n"
                        f"serializer      {tracker.serializer.name}\nshards          {tracker.shards}")


def cmd_types(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "register":
        tracker.register_task_type(args.type, args.handler, args.timeout, args.timeret, args.maxrestart)
        t = tracker.get_task_type(args.type)
        return _out(args, t.__dict__, lambda: f"registered {t.name} -> {t.handler} (timeout {t.timeout:g}s, "
                                              f"timeret {t.timeret:g}s, maxrestart {t.maxrestart})")
    if args.action == "unregister":
        tracker.unregister_task_type(args.type, args.force)
        return _out(args, {"unregistered": args.type}, lambda: f"unregistered {args.type}")
    types = tracker.list_task_types()
    rows = [[t.name, t.handler, f"{t.timeout:g}", f"{t.timeret:g}", t.maxrestart] for t in types]
    return _out(args, [t.__dict__ for t in types],
                lambda: _table(rows, ["TYPE", "HANDLER", "TIMEOUT", "TIMERET", "MAXRESTART"])
                if rows else "no task types registered")


def cmd_enqueue(args: argparse.Namespace, tracker: Tracker) -> int:
    try:
        value = json.loads(args.input)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input is not valid JSON: {exc}") from None
    tid = tracker.enqueue_task(args.type, args.identifier, value, args.message)
    return _out(args, {"id": tid}, lambda: f"enqueued task {tid} ({args.type}::{args.identifier})")


def cmd_show(args: argparse.Namespace, tracker: Tracker) -> int:
    info = tracker.describe_task(_task_id(args, tracker))
    log = info.pop("log")
    data = {**info, "log": [{"time": t.isoformat(), "status": s[1], "message": m} for t, s, m in log]}

    def text() -> str:
        deadline = _when(info["deadline_ms"] / 1000) if info["deadline_ms"] else "-"
        retention = "kept forever" if info["ttl_ms"] is None else f"expires in {info['ttl_ms'] / 1000:.0f}s"
        response = f"{info['response_bytes']} bytes, {info['mime_type']}" if info["mime_type"] else "none"
        lines = [
            f"task {info['id']}  {info['type']}::{info['identifier']}",
            f"status     {info['status']} ({info['code']})",
            f"owner      {info['owner'] or '-'}   run {info['run']}   restarts {info['restarts']}",
            f"handler    {info['handler']}",
            f"created    {_when(log[0][0]) if log else '-'}",
            f"updated    {_when(log[-1][0]) if log else '-'}",
            f"deadline   {deadline}",
            f"retention  {retention}",
            f"key        {info['key']}",
            f"input      {json.dumps(info['input'], default=repr)[:500]}",
            f"response   {response}",
            "log",
        ]
        lines += [f"  {_when(t)}  {s[1]:<9}  {m}" for t, s, m in log]
        return "\n".join(lines)
    return _out(args, data, text)


def cmd_response(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    t, ident = tracker.get_task_identifier(tid)
    response, mime = tracker.get_task_response(t, ident)
    if response is None:
        print(f"redis-atp: task {tid} ({t}::{ident}) has no response", file=sys.stderr)
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
    tid = _task_id(args, tracker)
    tracker.reenqueue_task(tid, args.message)
    return _out(args, {"id": tid, "status": "ACCEPTED"}, lambda: f"task {tid} is back in the queue")


def cmd_delete(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    tracker.delete_task(tid)
    return _out(args, {"deleted": tid}, lambda: f"deleted task {tid}")


def cmd_zombies(args: argparse.Namespace, tracker: Tracker) -> int:
    moved = tracker.reap_zombies()
    rows = [[tid, f"{t}::{i}", s.name] for tid, t, i, s in moved]
    return _out(args, [{"id": tid, "type": t, "identifier": i, "status": s.name} for tid, t, i, s in moved],
                lambda: _table(rows, ["ID", "TASK", "NOW"]) if rows else "no overdue tasks")


def cmd_retire(args: argparse.Namespace, tracker: Tracker) -> int:
    removed = tracker.delete_retired_tasks()
    return _out(args, [{"id": tid, "task": name} for tid, name in removed],
                lambda: "\n".join(f"removed {tid} {name}" for tid, name in removed) or "nothing to retire")


_PREFIX = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _allow_list(values: Sequence[str]) -> tuple[str, ...]:
    """The ``--allow`` prefixes; a value with none (``''``, ``','``) would refuse every
    handler, so it is a usage error, as is anything that is not a dotted module name."""
    prefixes = []
    for value in values:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise UsageError(f"--allow {value!r} names no module prefix")
        for part in parts:
            if not _PREFIX.fullmatch(part):
                raise UsageError(f"--allow {part!r} is not a dotted module name")
        prefixes += parts
    return tuple(prefixes)


def cmd_worker(args: argparse.Namespace) -> int:
    allow = _allow_list(args.allow)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    config = WorkerConfig(url=args.url, namespace=args.namespace, shards=args.shards, processes=args.processes,
                          threads=args.threads, paths=tuple(args.path), allow=allow, burst=args.burst,
                          grace=args.grace, heartbeat=args.heartbeat, wait_for_redis=max(0.0, args.wait_for_redis),
                          serializer=args.serializer)
    return Supervisor(config).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.url, args.namespace, args.tasks, args.processes, args.embedded, args.keep)


# ---------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.func is None:
            return int(args.run(args))
        client = client_from_url(args.url, socket_connect_timeout=3, socket_timeout=30)
        tracker = Tracker(client, args.namespace, shards=args.shards, serializer=args.serializer)
        try:
            return int(args.func(args, tracker))
        finally:
            client.close()
    except (UsageError, InvalidInput) as exc:
        print(f"redis-atp: error: {exc}", file=sys.stderr)
        return 2
    except (RedisATPError, LookupError) as exc:
        print(f"redis-atp: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        print(f"redis-atp: error: cannot reach Redis at {mask_url(args.url)}: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"redis-atp: error: Redis at {mask_url(args.url)} refused: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"redis-atp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("REDIS_ATP_DEBUG"):
            raise
        print(f"redis-atp: internal error: {type(exc).__name__}: {exc} (REDIS_ATP_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
