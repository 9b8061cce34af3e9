"""``redis-atp``: the worker and the operator's commands. Logging is configured here only.

Every command takes ``--url``/``--namespace`` (defaults: ``REDIS_ATP_URL``,
``REDIS_ATP_NAMESPACE``) and ``--json``. Exit codes: 0 success, 1 not found /
refused / Redis unreachable, 2 usage (bad arguments or input).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import redis
from redis.exceptions import RedisClusterException
from redis.sentinel import MasterNotFoundError

from .client import Tracker
from .connection import client_from_url
from .daemon.fleet import Fleet
from .errors import InvalidInput, RedisATPError
from .keys import Keys, check_text
from .worker import DEFAULT_CONCURRENCY, Supervisor, WorkerConfig, mask_url

__all__ = ["main"]

COUNTS = ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")


class UsageError(Exception):
    """Bad arguments the parser could not catch (exit code 2)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("redis-atp")
    except PackageNotFoundError:
        return "unknown (not installed)"


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
    parser.add_argument("--version", action="version", version=f"redis-atp {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    def cmd(name: str, func: Callable[[argparse.Namespace, Tracker], Any], text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    cmd("info", cmd_info, "queue, tasks per type and status, overdue tasks, live workers")
    conf = cmd("config", cmd_config, "show or change the namespace's settings, kept in Redis")
    csub = conf.add_subparsers(dest="action", metavar="ACTION", help="get (the default) or set")
    cset = csub.add_parser("set", parents=[common], help="change a setting for every client of the namespace")
    cset.add_argument("setting", choices=["max-queue-size"], help="max-queue-size: the queue limit (<= 0: none)")
    cset.add_argument("value", type=int, help="the new value")
    csub.add_parser("get", parents=[common], help="show the settings (the default action)")
    types = cmd("types", cmd_types, "list task types; register or unregister one")
    tsub = types.add_subparsers(dest="action", metavar="ACTION", help="register or unregister (default: list)")
    reg = tsub.add_parser("register", parents=[common], help="create a task type, or change what is given of one",
                          description="Create a task type, or change the settings given of an existing one "
                                      "(the others keep their values).")
    reg.add_argument("type", help="task type name")
    reg.add_argument("handler", nargs="?", help="dotted path package.module.function (required for a new type)")
    reg.add_argument("--timeout", type=float, help="seconds without a status change (new types: 3600)")
    reg.add_argument("--timeret", type=float, help="seconds finished tasks are kept (new types: -1, forever)")
    reg.add_argument("--maxrestart", type=int, help="re-enqueues after a time-out or crash (new types: 2)")
    reg.add_argument("--retries", type=int, help="re-runs of a task whose handler raised (new types: 0)")
    reg.add_argument("--retry-delay", type=_duration, metavar="DURATION",
                     help="first retry's delay before jitter, e.g. 500ms, 30s, 5m (new types: 1s)")
    reg.add_argument("--retry-backoff", type=float,
                     help="each retry's delay is the last one's times this (new types: 2)")
    reg.add_argument("--retry-max-delay", type=_duration, metavar="DURATION",
                     help="longest delay of a retry (new types: 1h)")
    unreg = tsub.add_parser("unregister", parents=[common], help="remove a task type")
    unreg.add_argument("type", help="task type name")
    unreg.add_argument("--force", action="store_true", help="delete the type's tasks too")
    p = cmd("enqueue", cmd_enqueue, "create a task at the tail of the queue")
    p.add_argument("type", help="task type name")
    p.add_argument("identifier", help="task identifier, unique within its type")
    p.add_argument("--input", default="null",
                   help="task input as JSON (default: null); @FILE reads it from a file, - from stdin")
    p.add_argument("--message", default="", help="first log message")
    p.add_argument("--priority", type=int, default=0, help="-9 to 9, larger runs first (default 0)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=_duration, metavar="DURATION",
                      help="hold the task this long before it joins the queue: 30, 30s, 500ms, 5m, 2h, 1d")
    when.add_argument("--at", type=_moment, metavar="TIME",
                      help="hold the task until this ISO 8601 time (without a zone: UTC)")
    _task_ref(cmd("show", cmd_show, "everything about one task, with its full log"))
    p = cmd("response", cmd_response, "print (or save) a task's response")
    _task_ref(p)
    p.add_argument("-o", "--output", help="write the response to this file")
    p = cmd("requeue", cmd_requeue, "put a task back in the queue (an operator's re-run)")
    _task_ref(p)
    p.add_argument("--message", default="requeued by operator", help="log message (default: requeued by operator)")
    _task_ref(cmd("delete", cmd_delete, "delete a task and every key of it"))
    p = cmd("key", cmd_key, "the Redis key names of a task, for redis-cli")
    p.add_argument("type", help="task type name")
    p.add_argument("identifier", help="task identifier")
    cmd("zombies", cmd_zombies, "re-enqueue (or fail) overdue tasks now; list what moved")
    cmd("retire", cmd_retire, "remove finished tasks past their retention; list them")

    w = sub.add_parser("worker", parents=[common], help="run a supervisor and N worker processes",
                       description="Run a supervisor and N worker processes that claim, run and end tasks "
                                   "(the seed's ATPD). SIGINT/SIGTERM: warm shutdown; a second one: cold.")
    w.add_argument("-n", "--processes", type=_positive(int), default=os.cpu_count() or 1,
                   help="worker processes (default: CPU count)")
    w.add_argument("--threads", type=_positive(int), default=1,
                   help="sync handlers at once per process, in threads (default 1)")
    w.add_argument("--concurrency", type=_positive(int), default=DEFAULT_CONCURRENCY,
                   help=f"async def handlers at once per process, on its event loop (default {DEFAULT_CONCURRENCY})")
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
    w.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="INFO logs one line per task start and end (default INFO)")
    w.set_defaults(func=None, run=cmd_worker)

    d = sub.add_parser("demo", help="run a demo fleet on an embedded (or given) Redis",
                       description="Run a 2-process fleet on 2,000 demo tasks, on an embedded Redis unless "
                                   "--url or $REDIS_ATP_URL names one, and print a summary.")
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
    print(json.dumps(data, indent=2, default=str, allow_nan=False) if args.json else text())
    return 0


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _esc(text: object) -> str:
    """Text for a terminal: control characters (newlines in an identifier, ESC) shown
    escaped, so a hostile name cannot rewrite the screen or fake a line."""
    t = str(text)
    return t if t.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in t)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it, unambiguously: bytes as ``{"$bytes": base64}``,
    tuples and sets as lists, anything else JSON lacks as ``{"$repr": repr}``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$repr": repr(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return {"$repr": repr(value)}


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
    parts = tracker.get_queue_counts()
    data = {
        "namespace": tracker.namespace, "url": mask_url(args.url),
        "queue": {"size": size, "limit": limit, **parts},
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
               f"queue      {size} waiting: {parts['ready']} ready, {parts['delayed']} delayed "
               f"({'no limit' if limit <= 0 else f'limit {limit}'})",
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
        tracker.set_max_queue_size(args.value)
    limit = tracker.get_max_queue_size()
    return _out(args, {"max_queue_size": limit, "serializer": tracker.serializer.name, "shards": tracker.shards},
                lambda: f"max-queue-size  {limit}{' (no limit)' if limit <= 0 else ''}\n"
                        f"serializer      {tracker.serializer.name}\nshards          {tracker.shards}")


_TYPE_SETTINGS = ("handler", "timeout", "timeret", "maxrestart", "retries", "retry_delay", "retry_backoff",
                  "retry_max_delay")


def cmd_types(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.action == "register":
        try:
            old = tracker.get_task_type(args.type)
            current = {k: getattr(old, k) for k in _TYPE_SETTINGS}
        except LookupError:
            if args.handler is None:
                raise UsageError(f"task type {args.type!r} does not exist: give its HANDLER") from None
            current = {"timeout": 3600, "timeret": -1, "maxrestart": 2, "retries": 0, "retry_delay": 1.0,
                       "retry_backoff": 2.0, "retry_max_delay": 3600}
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


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float:
    """``30``, ``30s``, ``500ms``, ``5m``, ``2h``, ``1d`` as seconds (>= 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30, 30s, 500ms, 5m, 2h, 1d)")
    return float(m[1]) * _UNITS[m[2] or "s"]


def _moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-24T18:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _read_input(spec: str) -> Any:
    """``--input``: JSON text, ``@FILE`` or ``-`` (stdin). Non-finite numbers (``NaN``,
    ``1e400``) are refused: JSON has none, and ``show --json`` could not print them."""
    if spec == "-":
        text = sys.stdin.read()
    elif spec.startswith("@"):
        try:
            with open(spec[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"--input {spec}: {exc.strerror}") from None
    else:
        text = spec

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise UsageError(f"--input: {number} is not a finite number")
        return value

    def constant(name: str) -> Any:
        raise UsageError(f"--input: {name} is not JSON")

    try:
        return json.loads(text, parse_float=finite, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input is not valid JSON: {exc}") from None


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
    tid = _task_id(args, tracker)
    tracker.reenqueue_task(tid, args.message)
    return _out(args, {"id": tid, "status": "ACCEPTED"}, lambda: f"task {tid} is back in the queue")


def cmd_delete(args: argparse.Namespace, tracker: Tracker) -> int:
    tid = _task_id(args, tracker)
    tracker.delete_task(tid)
    return _out(args, {"deleted": tid}, lambda: f"deleted task {tid}")


def cmd_zombies(args: argparse.Namespace, tracker: Tracker) -> int:
    moved = tracker.reap_zombies()
    rows = [[tid, f"{_esc(t)}::{_esc(i)}", s.name] for tid, t, i, s in moved]
    return _out(args, [{"id": tid, "type": t, "identifier": i, "status": s.name} for tid, t, i, s in moved],
                lambda: _table(rows, ["ID", "TASK", "NOW"]) if rows else "no overdue tasks")


def cmd_retire(args: argparse.Namespace, tracker: Tracker) -> int:
    removed = tracker.delete_retired_tasks()
    return _out(args, [{"id": tid, "task": name} for tid, name in removed],
                lambda: "\n".join(f"removed {tid} {_esc(name)}" for tid, name in removed) or "nothing to retire")


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
    for path in args.path:
        if not os.path.isdir(path):
            logging.getLogger(__name__).warning("-p %s: no such directory; handlers will not be found there", path)
    config = WorkerConfig(url=args.url, namespace=args.namespace, shards=args.shards, processes=args.processes,
                          threads=args.threads, paths=tuple(args.path), allow=allow, burst=args.burst,
                          grace=args.grace, heartbeat=args.heartbeat, wait_for_redis=max(0.0, args.wait_for_redis),
                          serializer=args.serializer, concurrency=args.concurrency)
    return Supervisor(config).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.url, args.namespace, args.tasks, args.processes, args.embedded, args.keep)


# ---------------------------------------------------------------- entry point
def _fail(args: argparse.Namespace | None, code: int, kind: str, message: str) -> int:
    """Print an error on one line (as JSON on stdout with ``--json``); returns ``code``."""
    message = " ".join(message.split())
    if len(message) > 300:
        message = message[:297] + "..."
    if args is not None and getattr(args, "json", False):
        print(json.dumps({"error": {"type": kind, "message": message, "exit_code": code}}))
    else:
        print(f"redis-atp: {'error' if kind in ('usage', 'redis') else kind}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    where = "Redis"
    try:
        args = build_parser().parse_args(argv)
        where = f"Redis at {mask_url(args.url)}" if getattr(args, "url", None) else "Redis"
        if args.func is None:
            return int(args.run(args))
        client = client_from_url(args.url, socket_connect_timeout=3, socket_timeout=30)
        tracker = Tracker(client, args.namespace, shards=args.shards, serializer=args.serializer)
        try:
            return int(args.func(args, tracker))
        finally:
            client.close()
    except (UsageError, InvalidInput) as exc:
        return _fail(args, 2, "usage", str(exc))
    except (RedisATPError, LookupError) as exc:
        return _fail(args, 1, type(exc).__name__, str(exc))
    except (redis.ConnectionError, redis.TimeoutError, RedisClusterException) as exc:
        return _fail(args, 1, "redis", f"cannot reach {where}: {_reason(exc)}")
    except redis.RedisError as exc:
        return _fail(args, 1, "redis", f"{where} refused: {exc}")
    except ValueError as exc:
        return _fail(args, 2, "usage", str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("REDIS_ATP_DEBUG"):
            raise
        return _fail(args, 1, "internal error", f"{type(exc).__name__}: {exc} (REDIS_ATP_DEBUG=1 shows the traceback)")


def _reason(exc: BaseException) -> str:
    """A connection error's cause, without the pool reprs redis-py puts in some."""
    text = str(exc)
    if isinstance(exc, MasterNotFoundError):
        return f"no Sentinel answered for the master ({text.split(' ', 1)[0] if text else 'unknown'})"
    if isinstance(exc, RedisClusterException):
        return "no cluster node answered"
    return text


if __name__ == "__main__":
    sys.exit(main())
