"""The worker fleet (the seed's ATPD, rebuilt): a supervisor and N worker processes.

Lifecycle of a worker process: it registers, then each of its ``threads`` slots
loops on one script call (``advance``) that ends the previous run (FINISHED, or
FAILED with the error) and claims and starts the next task (SCHEDULED, then
RUNNING, with a fencing token), and runs ``handler(task_status, input)`` once
that reply confirmed the claim. A slot that finds no work waits on its own
mailbox, where the next task that becomes ACCEPTED is handed to it (claimed in
its name); the script that takes it from there starts it only if that claim is
still current (sharded namespaces: the slot waits on the wake keys). An idle
fleet sends almost nothing and starts work within a millisecond.

Failure handling:

* A slot that meets any Redis error backs off and retries; it keeps the run it
  ended until Redis acknowledged that end, and after reconnecting hands back
  whatever Redis says it owns but it is not running (a claim whose reply was
  lost), so no task waits for its type's timeout.
* Handlers talk to Redis on connections of their own, and their calls (each safe
  to repeat under the run's token) are retried across connection failures; a
  handler that still fails with a connection error hands its task back
  uncharged: a connection error never fails a task.
* The supervisor renews every child's heartbeat key; housekeeping runs in a
  thread of its own, so it never delays a heartbeat. A child that dies is
  reaped at once: its started tasks go back to the queue, counted against
  ``maxrestart`` whatever its exit code, and a new child is spawned. Tasks of a
  worker whose heartbeat expired (host lost) are recovered by any worker's
  housekeeping round.
* SIGINT/SIGTERM: warm shutdown (no new work, running tasks finish, up to
  ``grace`` seconds); a second signal or the end of the grace: cold shutdown
  (running tasks go back to the queue, ACCEPTED, then exit). Exit code 0.
* ``async def`` handlers run on one event loop per process, up to
  ``concurrency`` at once, as runs of the slot that claimed them: the same
  fencing, recovery and shutdown apply.

The pieces live in :mod:`redis_atp.daemon`: ``config`` (the settings), ``protocol``
(the worker's script calls on the core), ``fleet`` (registry, heartbeats, recovery),
``handlers`` (loading them), ``process`` (the slots), ``aioloop`` (the event loop for
``async def`` handlers), ``supervisor``.
"""

from __future__ import annotations

from .daemon.config import DEFAULT_CONCURRENCY, DEFAULT_THREADS, WorkerConfig, mask_url
from .daemon.handlers import HandlerRefused, Handlers, resolve
from .daemon.process import WorkerProcess
from .daemon.supervisor import Supervisor

__all__ = ["WorkerConfig", "Supervisor", "WorkerProcess", "Handlers", "HandlerRefused", "mask_url", "resolve",
           "DEFAULT_CONCURRENCY", "DEFAULT_THREADS", "run"]


def run(config: WorkerConfig) -> int:
    """Run a worker fleet until it is shut down; returns its exit code."""
    return Supervisor(config).run()
