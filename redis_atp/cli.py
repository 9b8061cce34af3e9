"""``redis-atp``: the worker and the operator's commands. Logging is configured here only.

Exit codes: 0 success, 1 not found / refused / Redis unreachable, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .worker import Supervisor, WorkerConfig

__all__ = ["main"]


def _env_list(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(",") if p]


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("REDIS_ATP_URL", "redis://127.0.0.1:6379/0"),
                   help="Redis URL (default: $REDIS_ATP_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--namespace", default=os.environ.get("REDIS_ATP_NAMESPACE", "atp"),
                   help="namespace (default: $REDIS_ATP_NAMESPACE or atp)")


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value
    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redis-atp", description="Redis-backed asynchronous task tracker")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("worker", help="run a supervisor and N worker processes")
    _add_connection(w)
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
    w.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    w.set_defaults(func=cmd_worker)
    return parser


def cmd_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s [%(process)d] %(message)s")
    for path in reversed(args.path):
        sys.path.insert(0, os.path.abspath(path))
    config = WorkerConfig(url=args.url, namespace=args.namespace, processes=args.processes,
                          threads=args.threads, paths=tuple(args.path), allow=tuple(args.allow),
                          burst=args.burst, grace=args.grace, heartbeat=args.heartbeat)
    return Supervisor(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
