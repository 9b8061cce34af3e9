"""redis-atp benchmark: the peer harness's workloads on redis-atp's own API, plus
round trips per task, the cost of single operations at 1k and 1M tasks, and the
control features' figures (``wait``, ``events``, ``lists``: see control.py).

    python -m benchmarks.bench [--n 20000] [--n-mem 50000] [--out FILE] [--quick] [--only w1,w2,lists]

Every workload runs against a fresh throwaway redis-server. Prints a Markdown table and
writes JSON (figures + environment) to benchmarks/results/<UTC date>-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.redisserver import RedisServer, server_version

from . import control, timing
from . import workloads as w
from .cluster import cluster_scaling
from .common import ASYNC_HANDLER
from .fleet import REPO_ROOT
from .roundtrips import roundtrips
from .rtt import slow_link
from .scaling import scaling

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    n: int = 20_000  # W1, W1b, W2
    n_mem: int = 50_000  # W4
    lat_count: int = 300  # W3
    idle_count: int = 20  # W3i
    rt_n: int = 5_000  # round trips, W2-style drains
    rt_idle: int = 200  # round trips, one task at a time
    scaling: tuple[int, ...] = (1_000, 1_000_000)
    cluster_n: int = 10_000  # drains on a 3-master Redis Cluster, shards 1 and 8
    rtt_n: int = 2_000  # W2 over a 1 ms round-trip link, 1 and 4 threads per process
    wait_count: int = 300  # wait_task latency samples
    events_pairs: int = 3  # interleaved on/off pairs of W2 drains (of n tasks) and of script timings
    events_calls: int = 5_000  # enqueue_task and advance calls per script timing
    lists: tuple[int, ...] = (1_000, 1_000_000)  # list_tasks at these namespace sizes
    requeue_n: int = 10_000  # failed tasks re-queued by requeue_failed


QUICK = Sizes(n=2_000, n_mem=5_000, lat_count=50, idle_count=5, rt_n=1_000, rt_idle=50,
              scaling=(1_000, 100_000), cluster_n=2_000, rtt_n=500, wait_count=50, events_calls=500,
              lists=(1_000, 100_000), requeue_n=2_000)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running
def plan(s: Sizes, log_dir: Path) -> list[tuple[str, Callable[[RedisServer], dict[str, Any]]]]:
    """``(name, workload)`` pairs, in running order; each gets a fresh server."""
    steps: list[tuple[str, Callable[[RedisServer], dict[str, Any]]]] = [
        ("w1", lambda srv: w.w1_enqueue(srv, s.n)),
        ("w1b", lambda srv: w.w1b_enqueue_many(srv, s.n)),
        ("w1_async", lambda srv: w.w1_async(srv, s.n)),
        ("w2", lambda srv: w.w2_drain(srv, s.n, 2, log_dir)),
        ("w2_async", lambda srv: w.w2_drain(srv, s.n, 2, log_dir, ASYNC_HANDLER)),
        ("w3", lambda srv: w.w3_latency(srv, s.lat_count, w.W3_GAP_S, log_dir, "w3")),
        ("w3i", lambda srv: w.w3_latency(srv, s.idle_count, w.W3I_GAP_S, log_dir, "w3i")),
        ("w4", lambda srv: w.w4_memory(srv, s.n_mem)),
        ("delay", lambda srv: timing.delayed_enqueue(srv, s.n)),
        ("promote", lambda srv: timing.promotion(srv, s.n * 5)),
        ("priority", lambda srv: timing.priority_claims(srv, s.n)),
        ("wait", lambda srv: control.wait_latency(srv, s.wait_count)),
        ("events", lambda srv: control.events_on_off(srv, s.n, s.events_pairs, s.events_calls, log_dir)),
        ("lifecycle", lambda srv: w.one_client_lifecycle(srv, s.n // 4)),
        ("rt_single", lambda srv: roundtrips(srv, s.rt_n, "single", log_dir)),
        ("rt_bulk", lambda srv: roundtrips(srv, s.rt_n, "bulk", log_dir)),
        ("rt_idle", lambda srv: roundtrips(srv, s.rt_idle, "idle", log_dir)),
    ]
    steps += [(f"lists_{size}", partial(control.lists, size=size, requeue_n=s.requeue_n)) for size in s.lists]
    steps += [(f"scaling_{size}", partial(scaling, size=size)) for size in s.scaling]
    steps.append(("cluster", lambda srv: cluster_scaling(s.cluster_n, log_dir)))
    steps.append(("w2_slow_link", lambda srv: slow_link(srv, s.rtt_n, log_dir)))
    return steps


def run_all(s: Sizes, only: list[str] | None = None) -> dict[str, Any]:
    """Run every workload (or those named in ``only``; ``lists`` names every ``lists_<size>``)
    on its own fresh server; returns ``{name: result}``."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="redis-atp-bench-logs-") as tmp:
        for name, step in plan(s, Path(tmp)):
            if only and name not in only and re.sub(r"_\d+$", "", name) not in only:
                continue
            t0 = time.monotonic()
            with RedisServer() as server:
                results[name] = step(server)
            results[name]["wall_s"] = time.monotonic() - t0
            log(f"{name:14s} done in {results[name]['wall_s']:.1f} s")
    return results


# --------------------------------------------------------------------------- environment
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": server_version(),
        "redis_py": _version("redis"),
        "hiredis": _version("hiredis"),
        "msgpack": _version("msgpack"),
        "redis_atp": _version("redis-atp"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_modified_files": _git("status", "--porcelain", "--untracked-files=no").splitlines(),
    }


# --------------------------------------------------------------------------- report
def _i(v: float) -> str:
    return f"{v:,.0f}"


def _f(v: float, digits: int = 2) -> str:
    return f"{v:,.{digits}f}"


def _top(by_cmd: dict[str, float], k: int = 4) -> str:
    return ", ".join(f"{cmd} {v:.3g}" for cmd, v in list(by_cmd.items())[:k])


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The table: ``(workload, figure)`` rows."""
    out: list[tuple[str, str]] = []
    if "w1" in r:
        x = r["w1"]
        out.append((f"W1 `enqueue_task` x {x['n']:,}, sequential",
                    f"{_i(x['tasks_per_s'])} tasks/s ({_f(x['us_per_call'], 0)} µs/call: Redis "
                    f"{_f(x['server_us_per_script_call'], 1)} µs/script call, "
                    f"PING round trip {_f(x['ping_rtt_us'], 0)} µs)"))
    if "w1b" in r:
        x = r["w1b"]
        out.append((f"W1b `enqueue_many`, calls of {x['batch']} tasks (streamed, default chunk)",
                    f"{_i(x['tasks_per_s'])} tasks/s"))
    if "w1_async" in r:
        x = r["w1_async"]
        out.append((f"W1 from asyncio, `await AsyncTracker.enqueue_task` x {x['n']:,}, sequential",
                    f"{_i(x['tasks_per_s'])} tasks/s ({_f(x['us_per_call'], 0)} µs/call)"))
        out.append((f"W1b from asyncio, `await AsyncTracker.enqueue_many`, calls of {x['batch']} tasks",
                    f"{_i(x['bulk_tasks_per_s'])} tasks/s"))
    if "w2_async" in r:
        x = r["w2_async"]
        out.append((f"W2 drain of {x['n']:,}, `async def` no-op handler, `redis-atp worker -n {x['processes']}`",
                    f"{_i(x['tasks_per_s'])} tasks/s (steady {_i(x['steady_tasks_per_s'])}; "
                    f"{_f(x['script_calls_per_task'])} script calls/task)"))
    if "w2" in r:
        x = r["w2"]
        out += [
            (f"W2 drain of {x['n']:,}, `redis-atp worker -n {x['processes']}`, from fleet start",
             f"{_i(x['tasks_per_s'])} tasks/s"),
            ("W2 drain, first → last completion (steady)",
             f"{_i(x['steady_tasks_per_s'])} tasks/s (10 %→90 %: {_i(x['middle_80pct_tasks_per_s'] or 0)})"),
            ("W2 fleet start → first completion", f"{_f(x['startup_s'])} s"),
            ("W2 where time goes",
             f"Redis {_f(x['server_us_per_script_call'], 1)} µs/script call x {_f(x['script_calls_per_task'])}/task, "
             f"Redis busy {_f(100 * x['redis_cpu_share'], 0)} % of a core; fleet {_f(x['fleet_cpu_ms_per_task'], 3)} "
             f"CPU ms/task"),
            ("W2 check: finished_total / failed_total / queue left / fleet exit",
             f"{x['finished_total']:,} of {x['n']:,} / {x['failed_total']} / {x['queue_left']} / "
             f"{x['fleet_exit_code']}"),
        ]
    for key, label in (("w3", "W3 latency, 1 worker, 10–30 ms gaps"),
                       ("w3i", "W3i latency, idle worker, 1.2–1.8 s gaps")):
        if key in r:
            x = r[key]
            out.append((f"{label} ({x['count']} samples)",
                        f"p50 {_f(x['p50_ms'])} / p90 {_f(x['p90_ms'])} / p99 {_f(x['p99_ms'])} / "
                        f"max {_f(x['max_ms'])} ms"))
    if "w4" in r:
        x = r["w4"]
        out.append((f"W4 memory, {x['n']:,} queued tasks",
                    f"{_i(x['bytes_per_task'])} bytes/task, {_f(x['keys_per_task'], 3)} keys/task"))
    if "delay" in r:
        x = r["delay"]
        out.append((f"`enqueue_task` with `delay=60` / without, x {x['n'] // 2:,} each",
                    f"{_i(x['delayed_tasks_per_s'])} / {_i(x['plain_tasks_per_s'])} tasks/s"))
    if "promote" in r:
        x = r["promote"]
        out.append((f"Promotion of {x['n']:,} due tasks, calls of 100 (housekeeping's script)",
                    f"{_i(x['tasks_per_s'])} tasks/s; Redis {_f(x['redis_us_per_task'], 1)} µs per task, "
                    f"{_f(x['redis_us_per_call'], 0)} µs per call"))
    if "priority" in r:
        x = r["priority"]
        out.append((f"Claims one at a time from {x['n']:,} tasks: one level / {x['levels']} levels in use",
                    f"{_i(x['flat_claims_per_s'])} / {_i(x['levels_claims_per_s'])} claims/s; Redis "
                    f"{_f(x['flat_redis_us'], 1)} / {_f(x['levels_redis_us'], 1)} µs per claim"))
    out += _control_rows(r)
    if "lifecycle" in r:
        x = r["lifecycle"]
        out.append((f"One client, dequeue + start + finish (n={x['n']:,}): seed calls (3 per task) / `advance` (1)",
                    f"{_i(x['seed_calls_tasks_per_s'])} / {_i(x['advance_tasks_per_s'])} tasks/s"))
    for key, label in (("rt_single", "`enqueue_task`, then 2-process drain"),
                       ("rt_bulk", "`enqueue_many`, then 2-process drain"),
                       ("rt_idle", "one task at a time, 1 idle worker")):
        if key in r:
            x = r[key]
            out.append((f"Round trips/task, {label} (n={x['n']:,})",
                        f"{_f(x['round_trips_per_task'], 3)} ({_top(x['round_trips_by_command'], 3)}); "
                        f"Lua-internal {_f(x['lua_commands_per_task'], 1)} ({_top(x['lua_commands_by_command'])}); "
                        f"commandstats {_f(x['commandstats_calls_per_task'], 2)}, total_commands_processed "
                        f"{_f(x['total_commands_processed_per_task'], 2)}; script calls commandstats "
                        f"{x['script_calls_commandstats']:,} vs MONITOR {x['script_calls_monitor']:,}"))
    out += _scaling_rows(r)
    out += _cluster_rows(r)
    if "w2_slow_link" in r:
        x = r["w2_slow_link"]
        out.append((f"W2 over a {_f(x['rtt_ms'], 0)} ms round-trip link, handler with one Redis round trip "
                    f"(n={x['n']:,}), 2 processes of 1 / 4 threads",
                    f"{_i(x['threads_1_tasks_per_s'])} / {_i(x['threads_4_tasks_per_s'])} tasks/s"))
    return out


def _vals(values: list[float]) -> str:
    return ", ".join(_i(v) for v in values)


def _onoff(x: dict[str, float], digits: int = 1) -> str:
    return f"{_f(x['on'], digits)} / {_f(x['off'], digits)}"


def _control_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if "wait" in r:
        x = r["wait"]
        out.append((f"`wait_task` latency, end (`stop_task_success` from another process) → waiter woken "
                    f"({x['count']} samples)",
                    f"p50 {_f(x['p50_ms'])} / p90 {_f(x['p90_ms'])} / p99 {_f(x['p99_ms'])} / max {_f(x['max_ms'])} ms "
                    f"(the end call itself: p50 {_f(x['end_call_p50_ms'])} ms)"))
    if "events" in r:
        x = r["events"]
        on, off = x["drains"]["on"], x["drains"]["off"]
        out += [
            (f"W2 drain of {x['n']:,}, events on (`max_events` {x['max_events_on']:,}) / off, "
             f"{x['pairs']} interleaved pairs: medians [all]",
             f"{_i(x['w2_tasks_per_s']['on'])} [{_vals([d['tasks_per_s'] for d in on])}] / "
             f"{_i(x['w2_tasks_per_s']['off'])} [{_vals([d['tasks_per_s'] for d in off])}] tasks/s; steady "
             f"{_onoff(x['w2_steady_tasks_per_s'], 0)}; "
             f"Redis {_onoff(x['w2_server_us_per_script_call'])} µs/script call"),
            ("Events stream memory (after an \"on\" drain)",
             f"{_i(x['bytes_per_event_freed'])} bytes/event (`used_memory` freed by DEL / XLEN), "
             f"{_i(x['bytes_per_event_memory_usage'])} (MEMORY USAGE / XLEN); {_f(x['events_per_task'])} "
             f"events/task; the stream: {_i(x['stream_bytes'])} bytes for {_i(x['stream_xlen'])} events"),
            (f"Redis µs per script call, events on / off ({x['calls']:,} calls, {x['pairs']} pairs, medians; "
             "in brackets: of it, XADD + XTRIM)", "; ".join(
                 f"{op} {_onoff({k: v[op] for k, v in x['script_us_median'].items()})} "
                 f"({_f(x['stream_us_per_script_call'][op], 1)})" for op in control.OPS)),
        ]
    runs = [r[k] for k in sorted((k for k in r if k.startswith("lists_")), key=lambda k: r[k]["size"])]
    if runs:
        sizes = " → ".join(f"{x['size']:,}" for x in runs)
        out.append((f"Fill for lists ({sizes} tasks, {runs[0]['types']} types): enqueue_many + claims of "
                    f"{control.CLAIM_BATCH} ended in pipelines", " → ".join(
                        f"{_f(x['fill_s'], 1)} s ({x['finished']:,} FINISHED, {x['failed']:,} FAILED, "
                        f"{x['queued']:,} queued)" for x in runs)))
        for key, label in (("failed", "status=FAILED"), ("type", "type=T"), ("all", "everything"),
                           ("deep", "everything, below the Nth newest"), ("accepted", "status=ACCEPTED")):
            cells = " → ".join(
                f"{_f(q['wall_ms_p50'])} ms (Redis {_i(q['redis_us_per_list'])} µs, "
                f"{_f(q['script_calls_per_list'], 1)} calls)" for q in (x["queries"][key] for x in runs))
            n = " / ".join(f"{x['deep_nth']:,}" for x in runs) if key == "deep" else ""
            out.append((f"`list_tasks({label}, limit=100)`{f' (N = {n})' if n else ''}, p50 at {sizes}", cells))
        out.append(("list_tasks: script calls over 10 ms (SLOWLOG); during the fill",
                    " → ".join(f"{len(x['list_slow_scripts'])}; fill {x['fill_slow_scripts']['count']} "
                               f"(max {_i(x['fill_slow_scripts']['max_us'])} µs)" for x in runs)))
        out.append(("Index memory per ended task (MEMORY USAGE / ZCARD), FINISHED / FAILED", " → ".join(
            f"{_i(x['index_bytes_per_entry']['finished'])} / {_i(x['index_bytes_per_entry']['failed'])} bytes"
            for x in runs)))
        out.append((f"`requeue_failed` of {runs[0]['requeue']['n']:,} failed tasks, at {sizes}", " → ".join(
            f"{_i(q['tasks_per_s'])} tasks/s, {q['script_calls']} calls: Redis {_i(q['redis_us_per_script_call'])} "
            f"µs/call, max {_i(q['max_script_us'])} µs" for q in (x["requeue"] for x in runs))))
    return out


def _cluster_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    if "cluster" not in r:
        return []
    c = r["cluster"]
    one, eight = c["shards_1"], c["shards_8"]
    spread = ", ".join(f"{m['drain_calls']:,} ({100 * m['share']:.0f} %)" for m in eight["per_master"].values())
    proj = ", ".join(f"{m} masters {_i(v)}" for m, v in c["projected_tasks_per_s"].items())
    return [
        (f"Cluster ({c['masters']} masters): Redis time per task lifecycle, shards 1 / 8",
         f"{_f(one['server_us_per_task'], 1)} / {_f(eight['server_us_per_task'], 1)} µs from commandstats "
         f"(enqueue {_f(one['enqueue_us_per_task'], 1)} + drain {_f(one['drain_us_per_task'], 1)} with shards 1); "
         f"Redis process CPU {_f(one['redis_cpu_us_per_task'], 1)} / {_f(eight['redis_cpu_us_per_task'], 1)} µs"),
        ("Cluster: ceiling of one slot (1 s / Redis time per task)",
         f"{_i(c['one_slot_ceiling_tasks_per_s'])} tasks/s"),
        ("Cluster: shards 8, drain commands per master (share of Redis time)", spread),
        ("Cluster: projected ceiling (shards ≥ masters, measured balance "
         f"{_f(eight['balance'])})", f"{proj} tasks/s"),
        ("Cluster: drain on this 2-core machine, shards 1 / 8",
         f"{_i(one['drain_tasks_per_s'])} / {_i(eight['drain_tasks_per_s'])} tasks/s"),
    ]


_OPS = (("claim", "claim one task"), ("status_change", "status change (`resume_task`, fenced)"),
        ("zombie_sweep_none", "zombie sweep, nothing overdue"),
        ("zombie_sweep_100", "zombie sweep re-enqueuing 100 overdue"),
        ("promote_100", "promotion of 100 delayed tasks just due (one call)"),
        ("enqueue_one", "`enqueue_task` one more"), ("cancel_queued_at_tail", "cancel a queued task at the tail"))


def _scaling_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    runs = [r[k] for k in sorted((k for k in r if k.startswith("scaling_")), key=lambda k: r[k]["size"])]
    if not runs:
        return []
    sizes = " → ".join(f"{x['size']:,}" for x in runs)
    out = [(f"Fill with `enqueue_many` ({sizes} tasks)", " → ".join(f"{_i(x['fill_tasks_per_s'])} tasks/s"
                                                                     for x in runs))]
    for key, label in _OPS:
        cells = " → ".join(f"{_i(x[key]['p50_us'])} µs (Redis {_i(x[key]['server_us_per_script_call'])})" for x in runs)
        out.append((f"{label}, p50 at {sizes} tasks", cells))
    out.append((f"PING round trip at {sizes} tasks", " → ".join(f"{_i(x['ping_rtt_us'])} µs" for x in runs)))
    if len(runs) > 1:  # memory grows by the same bytes for every task: the line through the two fills
        small, big = runs[0], runs[-1]
        per_task = (big["used_memory"] - small["used_memory"]) / (big["size"] - small["size"])
        projected = big["used_memory"] + (10_000_000 - big["size"]) * per_task
        out.append((f"Redis memory with {big['size']:,} queued tasks, per added task; projected at 10,000,000",
                    f"{big['used_memory'] / 2**20:,.0f} MiB, {per_task:,.0f} bytes; {projected / 2**30:,.2f} GiB "
                    f"(the line through the {small['size']:,} and {big['size']:,} fills)"))
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = ["| workload | figure |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows(r)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> tuple[Sizes, Path, list[str]]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, help="tasks for W1, W1b, W2 (default 20000; 2000 with --quick)")
    ap.add_argument("--n-mem", type=int, help="tasks for W4 (default 50000; 5000 with --quick)")
    ap.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/<UTC date>-<time>.json)")
    ap.add_argument("--quick", action="store_true", help="smoke run, about a minute (100k instead of 1M tasks)")
    ap.add_argument("--only", default="", help="comma-separated workloads to run (default: all), e.g. w1,w2,w3; "
                    "lists or scaling: every size")
    a = ap.parse_args(argv)
    sizes = QUICK if a.quick else Sizes()
    if a.n is not None:
        sizes = Sizes(**{**asdict(sizes), "n": a.n})
    if a.n_mem is not None:
        sizes = Sizes(**{**asdict(sizes), "n_mem": a.n_mem})
    out = a.out or RESULTS_DIR / f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d-%H%M%S}.json"
    return sizes, out, [x for x in a.only.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    sizes, out, only = parse_args(argv)
    env = environment()
    t0 = time.monotonic()
    results = run_all(sizes, only)
    env["total_s"] = time.monotonic() - t0
    env["load_avg_at_end"] = os.getloadavg()
    table = markdown(results)
    print(f"redis-atp {env['redis_atp']} @ {env['git_commit'][:10]}, Redis {env['redis_server']}, "
          f"redis-py {env['redis_py']}, hiredis {env['hiredis']}, Python {env['python']}, "
          f"{env['cpu_count']} CPUs; total {env['total_s']:.0f} s\n")
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "sizes": asdict(sizes), "results": results,
                               "table": table}, indent=1))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
