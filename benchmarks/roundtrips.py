"""Commands per task lifecycle (enqueue -> finished), counted three ways.

A W2-style run (``n`` tasks enqueued, then ``redis-atp worker -n 2`` drains them), or
a W3-style one (one idle worker, one task at a time). Counted over it:

* ``INFO commandstats`` (reset with ``CONFIG RESETSTAT`` before each phase): calls per
  command, client-issued and Lua-internal ones together;
* ``total_commands_processed`` (``INFO stats``), the cross-check of their sum;
* ``MONITOR`` (a ``redis-cli monitor`` subprocess writing to a file), which tells each
  command's source: a client address, or ``lua`` for commands a script ran. Round trips
  are the client-issued commands of the library: the producer's during the enqueue
  phase, the worker fleet's during the drain. The driver's own polling is left out.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from redis_atp import Tracker
from tests.redisserver import RedisServer

from .common import TASK_TYPE, counts, enqueue_bulk, make_tracker, payload, tasks, wait_for
from .fleet import WorkerFleet

REDIS_CLI = "/usr/bin/redis-cli"
_LINE = re.compile(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')
_SUBCOMMANDS = {"SCRIPT", "FUNCTION", "CONFIG", "CLIENT", "OBJECT", "COMMAND"}
_MARK = "bench:phase:"
#: The commands a script call goes as: FCALL of its function in the scripts' library
#: (Redis 7+), EVALSHA (Redis 6.2, or where FCALL is not allowed), EVAL (with the source).
_SCRIPT_CALLS = ("FCALL", "EVALSHA", "EVAL")
#: Commands of the driver's connection that are the producer's library calls: script
#: calls and loading the library or a script (the rest, ECHO markers, INFO and the
#: completion polls, are the benchmark's own).
_LIBRARY = {*_SCRIPT_CALLS, "FUNCTION|LOAD", "SCRIPT|LOAD"}


class Monitor:
    """``redis-cli monitor`` into a file, for the duration of a ``with`` block."""

    def __init__(self, server: RedisServer, path: Path) -> None:
        self.server, self.path = server, path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Monitor:
        with open(self.path, "wb") as out:
            self.proc = subprocess.Popen([REDIS_CLI, "-p", str(self.server.port), "monitor"], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        client = self.server.client()
        wait_for(lambda: any("O" in c["flags"] for c in client.client_list()), 10, "MONITOR attached")
        client.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _command(m: re.Match[str]) -> str:
    name = m.group(2).upper()
    return f"{name}|{m.group(3).upper()}" if name in _SUBCOMMANDS and m.group(3) else name


def parse_monitor(path: Path, driver: str) -> dict[str, dict[str, Counter[str]]]:
    """Per phase (named by the driver's ``ECHO bench:phase:<name>`` markers): Counters of
    commands by source: ``driver``, ``lua`` (run by a script) and ``fleet`` (any other client)."""
    phases: dict[str, dict[str, Counter[str]]] = {}
    current: dict[str, Counter[str]] | None = None
    with open(path, errors="replace") as fh:
        for line in fh:
            m = _LINE.match(line)
            if not m:
                continue
            source, cmd = m.group(1), _command(m)
            if source == driver and cmd == "ECHO" and (m.group(3) or "").startswith(_MARK):
                name = m.group(3)[len(_MARK):]
                current = phases.setdefault(name, {"driver": Counter(), "lua": Counter(), "fleet": Counter()})
                continue
            if current is not None:
                who = "lua" if source == "lua" else "driver" if source == driver else "fleet"
                current[who][cmd] += 1
    return phases


def _stats(client: redis.Redis) -> tuple[dict[str, dict[str, float]], int]:
    """``(commandstats by command, total_commands_processed)`` from one ``INFO`` call."""
    info = client.info("stats", "commandstats")
    cmds = {k[len("cmdstat_"):].upper(): v for k, v in info.items() if k.startswith("cmdstat_")}
    return cmds, int(info["total_commands_processed"])


def _phase(client: redis.Redis, name: str) -> None:
    client.echo(f"{_MARK}{name}")
    client.config_resetstat()


def _per_task(counter: Counter[str], n: int) -> dict[str, float]:
    return {cmd: c / n for cmd, c in counter.most_common()}


def _wait_finished(tracker: Tracker, target: int, fleet: WorkerFleet, poll_s: float) -> int:
    """Poll the type's ``finished_total`` until ``target``; returns the number of polls."""
    polls, deadline = 0, time.monotonic() + 300
    while counts(tracker)["finished_total"] < target:
        polls += 1
        if time.monotonic() > deadline or not fleet.alive():
            raise RuntimeError(f"round trips: drain stuck\n{fleet.log_tail()}")
        time.sleep(poll_s)
    return polls + 1


def roundtrips(server: RedisServer, n: int, mode: str, log_dir: Path) -> dict[str, Any]:
    """``mode``: ``single`` (enqueue_task x n, then a 2-process drain), ``bulk``
    (enqueue_many, then the same drain) or ``idle`` (one worker, one task at a time)."""
    tracker = make_tracker(server.client())
    client = tracker.client
    driver = str(client.client_info()["addr"])
    fleet = WorkerFleet(server.url, tracker.namespace, 1 if mode == "idle" else 2,
                        log_dir / f"roundtrips-{mode}-worker.log")
    with Monitor(server, log_dir / f"roundtrips-{mode}.monitor"):
        if mode == "idle":
            stats = _idle_phases(tracker, fleet, n)
        else:
            stats = _drain_phases(tracker, fleet, n, mode)
        client.echo(f"{_MARK}end")
        exit_code = fleet.stop()
    phases = parse_monitor(log_dir / f"roundtrips-{mode}.monitor", driver)
    return _summary(n, mode, stats, phases, exit_code)


def _drain_phases(tracker: Tracker, fleet: WorkerFleet, n: int, mode: str) -> dict[str, Any]:
    client = tracker.client
    _phase(client, "enqueue")
    if mode == "bulk":
        enqueue_bulk(tracker, tasks("", n))
    else:
        for i in range(n):
            tracker.enqueue_task(TASK_TYPE, str(i), payload(i))
    enqueue_stats = _stats(client)
    _phase(client, "drain")
    fleet.start()
    polls = _wait_finished(tracker, n, fleet, 0.05)
    return {"enqueue": enqueue_stats, "drain": _stats(client), "polls": polls}


def _idle_phases(tracker: Tracker, fleet: WorkerFleet, n: int) -> dict[str, Any]:
    """One worker, warmed up; then n times: enqueue one task, wait until it finished,
    pause 20 ms (the worker goes back to its blocking wait). All in one phase."""
    client = tracker.client
    fleet.start()
    tracker.enqueue_task(TASK_TYPE, "warm", payload(-1))
    _wait_finished(tracker, 1, fleet, 0.01)
    time.sleep(0.05)
    _phase(client, "drain")
    polls = 0
    for i in range(n):
        tracker.enqueue_task(TASK_TYPE, str(i), payload(i))
        polls += _wait_finished(tracker, i + 2, fleet, 0.001)
        time.sleep(0.02)
    return {"drain": _stats(client), "polls": polls}


def _summary(n: int, mode: str, stats: dict[str, Any], phases: dict[str, dict[str, Counter[str]]],
             exit_code: int | None) -> dict[str, Any]:
    client_cmds: Counter[str] = Counter()
    lua_cmds: Counter[str] = Counter()
    for name in ("enqueue", "drain"):
        if name in phases:
            client_cmds.update(phases[name]["fleet"])
            lua_cmds.update(phases[name]["lua"])
            # the producer's library calls; in idle mode they fall within the drain phase
            client_cmds.update({cmd: c for cmd, c in phases[name]["driver"].items() if cmd in _LIBRARY})
    cs_calls: Counter[str] = Counter()
    total = 0
    for name in ("enqueue", "drain"):
        if name in stats:
            cmds, processed = stats[name]
            cs_calls.update({cmd: int(v["calls"]) for cmd, v in cmds.items()})
            total += processed
    return {
        "n": n, "mode": mode, "fleet_exit_code": exit_code,
        "round_trips_per_task": sum(client_cmds.values()) / n,
        "round_trips_by_command": _per_task(client_cmds, n),
        "lua_commands_per_task": sum(lua_cmds.values()) / n,
        "lua_commands_by_command": _per_task(lua_cmds, n),
        "commandstats_calls_per_task": sum(cs_calls.values()) / n,
        "commandstats_by_command": _per_task(cs_calls, n),
        "total_commands_processed_per_task": total / n,
        "script_calls_commandstats": sum(cs_calls[c] for c in _SCRIPT_CALLS),
        "script_calls_monitor": sum(client_cmds[c] for c in _SCRIPT_CALLS),
        "driver_polls": stats["polls"],
        "note": "round trips / Lua commands: MONITOR, library only (producer + fleet, driver polls left out); "
                "commandstats / total_commands_processed: everything the server ran in the same phases, "
                "the driver's polls (HGET + HGETALL each) and CONFIG RESETSTAT included",
    }
