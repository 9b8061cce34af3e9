"""The commands that run something: ``worker`` (the fleet) and ``demo``."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from functools import partial
from importlib.util import find_spec

from ..daemon import metrics
from ..daemon.process import worker_tracker
from ..worker import Supervisor, WorkerConfig
from .common import UsageError

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
                          grace=args.grace, cancel_grace=args.cancel_grace,
                          heartbeat=args.heartbeat, wait_for_redis=max(0.0, args.wait_for_redis),
                          serializer=args.serializer, concurrency=args.concurrency,
                          metrics_port=args.metrics_port, metrics_host=args.metrics_host)
    if config.metrics_port is not None and find_spec("prometheus_client") is None:
        print("redis-atp: error: --metrics-port needs prometheus_client: pip install 'redis-atp[metrics]'",
              file=sys.stderr)
        return 2
    supervisor = Supervisor(config)
    try:
        server = metrics.serve(config, supervisor.child_pids, partial(worker_tracker, config))
    except OSError as exc:
        print(f"redis-atp: error: cannot serve metrics on {config.metrics_host}:{config.metrics_port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    with server:
        return supervisor.run()


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.url, args.namespace, args.tasks, args.processes, args.embedded, args.keep,
                    args.dashboard)
