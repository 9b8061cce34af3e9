"""``redis-atp dashboard``: serve the web dashboard and ``/metrics`` of a namespace.

It binds to 127.0.0.1 unless ``--host`` says otherwise, and says where it listens and
whether actions are on. Without the extra installed it prints the one line that
installs it and exits 1."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from importlib.util import find_spec
from typing import Any

from ..worker import mask_url

__all__ = ["add_dashboard_parser", "cmd_dashboard", "EXTRA_HINT"]

EXTRA_HINT = "redis-atp: the dashboard needs its extra: pip install 'redis-atp[dashboard]'"
_NEEDS = ("starlette", "uvicorn", "jinja2", "prometheus_client")


def add_dashboard_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``dashboard`` command on the CLI's subparsers."""
    text = "serve the web dashboard and Prometheus /metrics of the namespace"
    p = sub.add_parser("dashboard", parents=[common], help=text,
                       description=f"{text}. Actions (requeue, cancel, delete, pause...) need --token.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--read-only", action="store_true", help="refuse every action and hide its buttons")
    p.add_argument("--token", default=os.environ.get("REDIS_ATP_DASHBOARD_TOKEN") or None,
                   help="token every action must carry ($REDIS_ATP_DASHBOARD_TOKEN); without one, actions are off")
    p.add_argument("--hours", type=int, default=6, choices=range(1, 49), metavar="H",
                   help="hours of history the overview's charts show by default (1-48, default 6)")
    p.set_defaults(func=None, run=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    if any(find_spec(name) is None for name in _NEEDS):
        print(EXTRA_HINT, file=sys.stderr)
        return 1
    import uvicorn

    from ..client import Tracker
    from ..dashboard import DashboardConfig, create_app

    tracker = Tracker.from_url(args.url, namespace=args.namespace, shards=args.shards, serializer=args.serializer)
    try:
        tracker.client.ping()  # an unreachable Redis is the CLI's one-line error, exit 1
        config = DashboardConfig(token=args.token, read_only=args.read_only, hours=args.hours)
        sock = socket.create_server((args.host, args.port), family=socket.AF_INET6 if ":" in args.host
                                    else socket.AF_INET)
        host, port = sock.getsockname()[:2]
        where = f"[{host}]" if ":" in host else host
        actions = {"enabled": "on (token required)", "read-only": "off (--read-only)",
                   "disabled": "off (no --token or REDIS_ATP_DASHBOARD_TOKEN)"}[config.actions]
        print(f"redis-atp dashboard: http://{where}:{port}/  namespace {tracker.namespace!r} on "
              f"{mask_url(args.url)}; actions {actions}", flush=True)
        if host not in ("127.0.0.1", "::1"):
            print("redis-atp dashboard: listening beyond this machine; pages are readable by anyone who can reach "
                  "it (put it behind a proxy with authentication)", flush=True)
        server = uvicorn.Server(uvicorn.Config(create_app(tracker, config), log_level="warning",
                                               access_log=False, lifespan="off"))
        server.run(sockets=[sock])
    finally:
        tracker.close()
    return 0
