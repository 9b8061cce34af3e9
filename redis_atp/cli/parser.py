"""The argument parser: every command, its flags and their help."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from ..client import Tracker
from ..worker import DEFAULT_CONCURRENCY, DEFAULT_THREADS
from .common import _duration, _env_list, _moment, _positive, _version
from .control import cmd_events, cmd_ls, cmd_pause, cmd_resume
from .dashboard import add_dashboard_parser
from .fleet import cmd_demo, cmd_worker
from .namespace import cmd_config, cmd_info, cmd_retire, cmd_schedules, cmd_types, cmd_zombies
from .tasks import cmd_cancel, cmd_delete, cmd_enqueue, cmd_key, cmd_requeue, cmd_response, cmd_show, cmd_wait


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
    cset.add_argument("setting", choices=["max-queue-size", "max-events"],
                      help="max-queue-size: the queue limit (<= 0: none); max-events: the events stream's cap "
                           "(0: no events)")
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
    reg.add_argument("--hard-timeout", type=_duration, metavar="DURATION",
                     help="a run older than this is killed by its worker (new types: none)")
    reg.add_argument("--retry-delay", type=_duration, metavar="DURATION",
                     help="first retry's delay before jitter, e.g. 500ms, 30s, 5m (new types: 1s)")
    reg.add_argument("--retry-backoff", type=float,
                     help="each retry's delay is the last one's times this (new types: 2)")
    reg.add_argument("--retry-max-delay", type=_duration, metavar="DURATION",
                     help="longest delay of a retry (new types: 1h)")
    unreg = tsub.add_parser("unregister", parents=[common], help="remove a task type")
    unreg.add_argument("type", help="task type name")
    unreg.add_argument("--force", action="store_true", help="delete the type's tasks too")
    sched = cmd("schedules", cmd_schedules, "list schedules (periodic tasks); add or remove one")
    ssub = sched.add_subparsers(dest="action", metavar="ACTION", help="add, rm or ls (the default)")
    add = ssub.add_parser("add", parents=[common], help="create or replace a schedule",
                          description="Create or replace a schedule: each tick creates the task "
                                      "(TYPE, NAME@<tick, ISO 8601 UTC>); workers' housekeeping creates them.")
    add.add_argument("name", help="schedule name")
    add.add_argument("type", help="task type of its tasks")
    every = add.add_mutually_exclusive_group(required=True)
    every.add_argument("--cron", help="5-field cron expression, e.g. '0 3 * * *' (needs redis-atp[cron])")
    every.add_argument("--every", type=_duration, metavar="DURATION", help="a tick each DURATION: 30s, 5m, 1h")
    add.add_argument("--input", default="null", help="each task's input as JSON; @FILE, - for stdin")
    add.add_argument("--tz", default="UTC", help="time zone of --cron (default UTC), e.g. Europe/Vienna")
    add.add_argument("--overlap", choices=["skip", "allow"], default="skip",
                     help="skip a tick while the last tick's task is unfinished (default), or allow it")
    add.add_argument("--misfire", choices=["skip", "once"], default="skip",
                     help="ticks missed while no worker ran: skip them (default), or run the latest once")
    ssub.add_parser("rm", parents=[common], help="remove a schedule").add_argument("name", help="schedule name")
    ssub.add_parser("ls", parents=[common], help="list schedules (the default action)")
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
    p = cmd("requeue", cmd_requeue, "put a task back in the queue (an operator's re-run), or every failed one")
    _task_ref(p)
    p.add_argument("--failed", action="store_true", help="re-run every FAILED task instead of one task")
    p.add_argument("--type", dest="failed_type", metavar="TYPE", help="with --failed: only this type's")
    p.add_argument("--message", default="requeued by operator", help="log message (default: requeued by operator)")
    _task_ref(cmd("delete", cmd_delete, "delete a task and every key of it"))
    p = cmd("cancel", cmd_cancel, "cancel a task: queued, it never runs; running, its run is fenced out")
    _task_ref(p)
    p.add_argument("--message", default="", help="log message")
    p = cmd("wait", cmd_wait, "block until a task ends (no polling); exit 0 if FINISHED, 1 if FAILED or timed out")
    _task_ref(p)
    p.add_argument("--timeout", type=float, help="give up after this many seconds (default: wait forever)")
    p = cmd("ls", cmd_ls, "list tasks, newest first by their last status change")
    p.add_argument("--status", help="only tasks in this status: a name (failed, FAILED) or a code 1-6")
    p.add_argument("--type", help="only tasks of this type")
    p.add_argument("--limit", type=int, default=100, help="tasks per page, 1 to 1000 (default 100)")
    p.add_argument("--before", type=int, metavar="ID", help="the next page: after this task (the last one listed)")
    for name, func, what in (("pause", cmd_pause, "workers take nothing from the namespace, or of TYPE"),
                             ("resume", cmd_resume, "undo pause: the namespace's or TYPE's tasks run again")):
        cmd(name, func, what).add_argument("type", nargs="?", help="task type (default: the whole namespace)")
    p = cmd("events", cmd_events, "print status changes from the events stream, one a line")
    p.add_argument("--since", metavar="ID", help="after this event id; 0: from the oldest kept "
                                                 "(default: 0, with --follow: from now on)")
    p.add_argument("--follow", action="store_true", help="keep waiting for more until Ctrl-C")
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
    w.add_argument("--threads", type=_positive(int), default=DEFAULT_THREADS,
                   help=f"sync handlers at once per process, in threads (default {DEFAULT_THREADS}; "
                        "CPU-bound handlers: 1)")
    w.add_argument("--concurrency", type=_positive(int), default=DEFAULT_CONCURRENCY,
                   help=f"async def handlers at once per process, on its event loop (default {DEFAULT_CONCURRENCY})")
    w.add_argument("-p", "--path", action="append", default=[], help="add a directory to sys.path (repeatable)")
    w.add_argument("--allow", action="append", default=_env_list("REDIS_ATP_ALLOW"), metavar="PREFIX",
                   help="run only handlers under this module prefix (repeatable; $REDIS_ATP_ALLOW, comma-separated)")
    w.add_argument("--burst", action="store_true", help="exit 0 once the queue is empty")
    w.add_argument("--cancel-grace", type=_positive(float), default=5.0,
                   help="seconds a cancelled task's handler gets to stop before its process is stopped (default 5)")
    w.add_argument("--grace", type=_positive(float), default=30.0,
                   help="seconds running tasks get to finish on SIGINT/SIGTERM (default 30)")
    w.add_argument("--heartbeat", type=_positive(float), default=10.0,
                   help="seconds without a heartbeat before a worker's tasks are recovered (default 10)")
    w.add_argument("--wait-for-redis", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for Redis at start (default: fail at once)")
    w.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="INFO logs one line per task start and end (default INFO)")
    w.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics of the fleet here")
    w.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")
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
    d.add_argument("--dashboard", action="store_true",
                   help="serve the dashboard on a loopback port meanwhile and keep the fleet running until Ctrl-C")
    d.set_defaults(func=None, run=cmd_demo)
    add_dashboard_parser(sub, common)
    return parser
