"""What the run leaves behind (run files, task logs, counters, worker logs) and the
invariants checked on it."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from redis_atp import Tracker
from redis_atp.errors import TaskNotFound
from redis_atp.models import LogRecord

from .common import (
    BOOM,
    BOOM_MESSAGE,
    LIVE,
    LOG_CAP,
    PROCESSES,
    SLACK_S,
    THREADS,
    TYPES,
    EventLog,
    retrying,
    wall_stamp,
)
from .fleet import Supervisors


# ---------------------------------------------------------------------------- evidence
@dataclass
class RunFile:
    """One execution, as its handler recorded it (see :mod:`benchmarks.chaos_handlers`)."""

    name: str
    tid: int
    token: str
    pid: int
    start: float
    end: float | None = None
    outcome: str | None = None  # returned, stale, raised; None: the process died mid-run
    calls: list[dict[str, Any]] = field(default_factory=list)


def read_runs(runs_dir: Path) -> dict[int, list[RunFile]]:
    """Every run file, by task id, each task's runs in start order."""
    runs: dict[int, list[RunFile]] = {}
    for path in runs_dir.iterdir():
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
        if not lines or lines[0]["ev"] != "start":
            continue
        s = lines[0]
        run = RunFile(path.name, int(s["tid"]), str(s["token"]), int(s["pid"]), float(s["t"]))
        for line in lines[1:]:
            if line["ev"] == "call":
                run.calls.append(line)
            elif line["ev"] == "end":
                run.end, run.outcome = float(line["t"]), line["outcome"]
        runs.setdefault(run.tid, []).append(run)
    for task_runs in runs.values():
        task_runs.sort(key=lambda r: r.start)
    return runs


@dataclass
class TaskView:
    """One task as Redis has it after the run."""

    id: int
    type: str
    ident: str
    status: str
    token: str | None
    nlog: int
    log: list[LogRecord]

    def truncated(self) -> bool:
        return self.nlog > LOG_CAP

    def recoveries(self) -> list[tuple[int, str]]:
        """(log index, message) of each record putting the task back to ACCEPTED."""
        return [(i, msg) for i, (_, (_, name), msg) in enumerate(self.log) if name == "ACCEPTED" and i > 0]

    def terminal_records(self) -> list[int]:
        return [i for i, (_, (_, name), _) in enumerate(self.log) if name in ("FINISHED", "FAILED")]

    def claim_index(self, run: RunFile) -> int | None:
        """Index of the run's own claim/start record: the last SCHEDULED/RUNNING record
        not later than the handler's start."""
        found = None
        for i, (when, (_, name), _) in enumerate(self.log):
            if when.timestamp() > run.start + SLACK_S:
                break
            if name in ("SCHEDULED", "RUNNING"):
                found = i
        return found

    def show_log(self, limit: int = 14) -> str:
        lines = [f"{wall_stamp(w.timestamp())} {name} {msg}".rstrip() for w, (_, name), msg in self.log]
        if len(lines) > limit:
            lines = lines[:3] + ["..."] + lines[-(limit - 4):]
        return " | ".join(lines)


def read_tasks(tracker: Tracker, ids: Iterable[int]) -> tuple[dict[int, TaskView], list[int]]:
    """Every task by id (``describe_task``, and its hash's ``token``/``nlog`` read directly);
    and the ids that no longer exist."""
    views: dict[int, TaskView] = {}
    lost: list[int] = []
    described: dict[int, dict[str, Any]] = {}
    for tid in ids:
        try:
            described[tid] = retrying(partial(tracker.describe_task, tid))
        except TaskNotFound:
            lost.append(tid)
    order = list(described)
    for start in range(0, len(order), 500):
        pipe = tracker.client.pipeline(transaction=False)
        for tid in order[start:start + 500]:
            pipe.hmget(described[tid]["key"], "token", "nlog")
        for tid, (token, nlog) in zip(order[start:start + 500], retrying(pipe.execute), strict=True):
            d = described[tid]
            views[tid] = TaskView(tid, d["type"], d["identifier"], d["status"],
                                  token.decode() if token else None, int(nlog or 0), d["log"])
    return views, lost


@dataclass
class Evidence:
    """Everything the invariants look at."""

    tasks: dict[int, TaskView]
    lost: list[int]
    never_enqueued: int
    refused: list[str]
    runs: dict[int, list[RunFile]]
    counts: dict[str, dict[str, int]]
    owned: dict[str, int]  # owner key -> members
    live_workers: list[tuple[str, list[int]]]
    events: EventLog
    sups: Supervisors
    killed_pids: dict[int, float]
    worker_log: dict[str, Any]
    samples: list[dict[str, Any]]
    soak: bool
    expected: int


@dataclass
class Invariant:
    name: str
    held: bool
    numbers: dict[str, Any]
    examples: list[str] = field(default_factory=list)


def _example(view: TaskView | None, tid: int, what: str, runs: list[RunFile] | None = None) -> str:
    head = f"task {tid}" + (f" ({view.type}::{view.ident}, {view.status})" if view else "")
    run_text = ""
    if runs:
        run_text = " runs: " + "; ".join(
            f"{r.name} token={r.token} {wall_stamp(r.start)}-{wall_stamp(r.end) if r.end else '?'} "
            f"{r.outcome or 'cut short'}" + "".join(f" [{c['what']} raised {c['error'][:100]}]"
                                                     for c in r.calls if not c["ok"])
            for r in runs)
    return f"{head}: {what}.{run_text}" + (f" log: {view.show_log()}" if view else "")


# ---------------------------------------------------------------------------- invariants
def all_terminal(ev: Evidence) -> Invariant:
    live = [v for v in ev.tasks.values() if v.status not in ("FINISHED", "FAILED")]
    examples = [_example(None, tid, "acknowledged enqueue, task missing") for tid in ev.lost[:5]]
    examples += [_example(v, v.id, "not terminal", ev.runs.get(v.id)) for v in live[:5]]
    examples += [f"enqueue refused: {r}" for r in ev.refused[:3]]
    held = not ev.lost and not live and not ev.never_enqueued and not ev.refused and ev.expected == len(ev.tasks)
    return Invariant("all_terminal", held, {"tasks": ev.expected, "found": len(ev.tasks), "lost": len(ev.lost),
                                            "not_terminal": len(live), "never_enqueued": ev.never_enqueued,
                                            "refused": len(ev.refused)}, examples)


def failure_reason(view: TaskView) -> str:
    """The message of the task's FAILED record, with numbers blanked (for grouping)."""
    msgs = [msg for _, (_, name), msg in view.log if name == "FAILED"]
    return re.sub(r"\d+", "N", msgs[-1])[:90] if msgs else "(no FAILED record)"


def no_infra_failures(ev: Evidence) -> Invariant:
    bad: list[TaskView] = []
    crash_limited = 0
    boom_ok = 0
    for v in ev.tasks.values():
        reason = failure_reason(v) if v.status == "FAILED" else ""
        if v.type == BOOM:
            if v.status == "FAILED" and reason.startswith(BOOM_MESSAGE):
                boom_ok += 1
            elif v.status in ("FINISHED", "FAILED"):
                bad.append(v)
        elif v.status == "FAILED":
            crash_limited += "restart limit reached" in reason
            bad.append(v)
    reasons = Counter(failure_reason(v) if v.status == "FAILED" else v.status for v in bad)
    return Invariant("no_infra_failures", not bad,
                     {"failed_by_infrastructure": len(bad), "failed_after_repeated_crashes": crash_limited,
                      "boom_failed_as_expected": boom_ok, "reasons": dict(reasons.most_common(5))},
                     [_example(v, v.id, f"FAILED by the infrastructure: {failure_reason(v)}", ev.runs.get(v.id))
                      for v in bad[:5]])


def executions_bounded(ev: Evidence) -> Invariant:
    over: list[tuple[TaskView, int, int]] = []
    truncated = 0
    for v in ev.tasks.values():
        if v.truncated():
            truncated += 1
            continue
        n, rec = len(ev.runs.get(v.id, [])), len(v.recoveries())
        if n > 1 + rec:
            over.append((v, n, rec))
    executions = sum(len(r) for r in ev.runs.values())
    reruns = sum(max(0, len(r) - 1) for r in ev.runs.values())
    unknown = sorted(set(ev.runs) - set(ev.tasks))
    examples = [_example(v, v.id, f"{n} runs but {rec} recoveries", ev.runs.get(v.id)) for v, n, rec in over[:5]]
    examples += [f"run files for task {tid}, which is not one of ours" for tid in unknown[:3]]
    return Invariant("executions_bounded", not over and not unknown,
                     {"executions": executions, "reruns": reruns, "over_bound": len(over),
                      "logs_truncated": truncated, "runs_of_unknown_tasks": len(unknown)}, examples)


#: What a recovery record says, from its message: the first needle found names it (a
#: cause first; "charged" for a recovery counted against maxrestart that names none).
RECOVERY_KINDS = (
    ("timed out", "timeout"), ("lost its heartbeat", "heartbeat"), ("exited with code", "crash"),
    ("cold shutdown", "cold"), ("stopped; put back", "exited"), ("never started", "exited"),
    ("Redis could not serve the handler", "handler_lost_redis"), ("claim reply lost", "reply_lost"),
    ("stopping; put back", "stopping"), ("re-enqueued (restart", "charged"),
)
#: Recoveries saying a run is over whatever it did (its process, heartbeat or deadline).
RUN_OVER = {"charged", "timeout", "heartbeat", "crash", "cold", "exited"}


def recovery_kind(message: str) -> str:
    return next((kind for needle, kind in RECOVERY_KINDS if needle in message), "other")


def explains(kind: str, run: RunFile) -> bool:
    """Whether a recovery of this kind may end this run (so the task may run again)."""
    return kind in RUN_OVER or (kind == "handler_lost_redis" and run.outcome == "raised")


def reruns_explained(ev: Evidence) -> Invariant:
    bad: list[str] = []
    good: list[str] = []  # a few explained ones, for the JSON report
    superseded = 0
    kinds: Counter[str] = Counter()
    for v in ev.tasks.values():
        kinds.update(recovery_kind(msg) for _, msg in v.recoveries())
        runs = ev.runs.get(v.id, [])
        if len(runs) < 2 or v.truncated():
            continue
        for a, b in zip(runs, runs[1:], strict=False):
            superseded += 1
            ia, ib = v.claim_index(a), v.claim_index(b)
            if ia is None or ib is None:
                bad.append(_example(v, v.id, f"no claim record found for run {a.name if ia is None else b.name}",
                                    runs))
                continue
            between = [recovery_kind(msg) for i, msg in v.recoveries() if ia < i < ib]
            if not any(explains(k, a) for k in between):
                bad.append(_example(v, v.id, f"run {a.name} ({a.outcome or 'cut short'}) was followed by "
                                             f"another run with only {between or 'no'} recoveries between", runs))
            elif len(good) < 3:
                good.append(_example(v, v.id, f"explained by {between}", runs))
    return Invariant("reruns_explained", not bad,
                     {"superseded_runs": superseded, "unexplained": len(bad), "recoveries": dict(kinds)},
                     bad[:5] or good)


def fencing(ev: Evidence) -> Invariant:
    dup_tokens: list[str] = []
    final_bad: list[str] = []
    stale_writes: list[str] = []
    for v in ev.tasks.values():
        runs = ev.runs.get(v.id, [])
        tokens = Counter(r.token for r in runs)
        if any(n > 1 for n in tokens.values()):
            dup_tokens.append(_example(v, v.id, "one token ran more than once", runs))
        for i, a in enumerate(runs):
            later = [b.start for b in runs[i + 1:]]
            if later and any(c["ok"] and c["t0"] > min(later) for c in a.calls):
                stale_writes.append(_example(v, v.id, f"run {a.name}'s call succeeded after a later run started",
                                             runs))
        problem = _final_run_problem(v, runs)
        if problem:
            final_bad.append(_example(v, v.id, problem, runs))
    bad = dup_tokens + final_bad + stale_writes
    return Invariant("fencing", not bad, {"tokens_run_twice": len(dup_tokens), "final_run_wrong": len(final_bad),
                                          "stale_writes_accepted": len(stale_writes)}, bad[:5])


def _final_run_problem(v: TaskView, runs: list[RunFile]) -> str:
    """Why the task's terminal state does not come from its last run ('' if it does).
    Checked for FINISHED tasks and ``boom`` tasks FAILED by their handler."""
    expected = "returned" if v.status == "FINISHED" else "raised"
    if not (v.status == "FINISHED" or (v.type == BOOM and failure_reason(v).startswith(BOOM_MESSAGE))):
        return ""
    if not runs:
        return f"{v.status} without any run"
    last = runs[-1]
    if v.token != last.token:
        owner = next((r.name for r in runs if r.token == v.token), None)
        return f"final token {v.token} is not the last run's ({last.token}); it is {owner or 'no run'}'s"
    if last.outcome != expected:
        return f"the last run's outcome is {last.outcome}, not {expected}"
    terminal = v.terminal_records()
    if terminal and last.end is not None and v.log[terminal[-1]][0].timestamp() < last.end - SLACK_S:
        return "the terminal record is older than the last run's end"
    return ""


def counters_exact(ev: Evidence) -> Invariant:
    found: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    for v in ev.tasks.values():
        found[v.type][v.status] += 1
    mismatch = {}
    for t in TYPES:
        got = {"finished_total": ev.counts[t]["finished_total"], "failed_total": ev.counts[t]["failed_total"]}
        want = {"finished_total": found[t]["FINISHED"], "failed_total": found[t]["FAILED"]}
        if got != want:
            mismatch[t] = {"counters": got, "tasks": want}
    twice = [v for v in ev.tasks.values() if v.status in ("FINISHED", "FAILED") and len(v.terminal_records()) != 1
             and not v.truncated()]
    examples = [f"type {t}: counters {m['counters']} but tasks {m['tasks']}" for t, m in mismatch.items()]
    examples += [_example(v, v.id, f"{len(v.terminal_records())} terminal records", ev.runs.get(v.id))
                 for v in twice[:5]]
    totals = " ".join(f"{t}={ev.counts[t]['finished_total']}/{ev.counts[t]['failed_total']}" for t in TYPES)
    return Invariant("counters_exact", not mismatch and not twice,
                     {"types_mismatched": len(mismatch), "ended_twice": len(twice),
                      "finished/failed_totals": totals}, examples)


def nothing_owned(ev: Evidence) -> Invariant:
    live = {t: {c: ev.counts[t][c] for c in LIVE if ev.counts[t][c]} for t in TYPES}
    live = {t: c for t, c in live.items() if c}
    holding = [(w, tasks) for w, tasks in ev.live_workers if tasks]
    owned_tasks = sum(ev.owned.values())
    examples = [f"type {t}: live counters {c}" for t, c in live.items()]
    examples += [f"owner set {k}: {n} members" for k, n in list(ev.owned.items())[:3] if n]
    examples += [f"live worker {w} holds {tasks[:10]}" for w, tasks in holding[:3]]
    return Invariant("nothing_owned", not live and not holding and not owned_tasks,
                     {"live_counters": sum(sum(c.values()) for c in live.values()), "owned_tasks": owned_tasks,
                      "live_workers": len(ev.live_workers), "workers_holding_tasks": len(holding)}, examples)


def no_timeouts(ev: Evidence) -> Invariant:
    timed_out = [v for v in ev.tasks.values() if any(recovery_kind(m) == "timeout" for _, m in v.recoveries())]
    return Invariant("no_timeouts", not timed_out, {"tasks_timed_out": len(timed_out)},
                     [_example(v, v.id, "recovered by its time-out", ev.runs.get(v.id)) for v in timed_out[:5]])


def fleet_healthy(ev: Evidence) -> Invariant:
    exits = ev.events.of("supervisor_exit")
    stalls = ev.events.of("supervisor_stall")
    unclean = ev.events.of("shutdown_timeout") + ev.events.of("shutdown_unclean")
    worker_exits = ev.worker_log["unexpected_worker_exits"]
    cut_short = [r for runs in ev.runs.values() for r in runs if r.outcome is None and r.pid not in ev.killed_pids]
    examples = [e["detail"] for e in exits + stalls + unclean][:6]
    examples += worker_exits[:3]
    examples += [f"{e} (x{n})" for e, n in ev.worker_log["exceptions"][:5]]
    examples += [f"run {r.name} of pid {r.pid} was cut short, no kill of that pid here" for r in cut_short[:3]]
    held = not exits and not stalls and not unclean and not worker_exits
    return Invariant("fleet_healthy", held,
                     {"supervisors_started": len(ev.sups.all), "supervisor_exits": len(exits), "stalls": len(stalls),
                      "unclean_shutdowns": len(unclean), "unexpected_worker_exits": len(worker_exits),
                      "runs_cut_short_unkilled": len(cut_short),
                      "worker_log_exceptions": sum(n for _, n in ev.worker_log["exceptions"]),
                      "tasks_lost_by_runs": ev.worker_log["task_lost"]}, examples)


def _field(name: str, sample: dict[str, Any]) -> float:
    return float(sample[name])


def _thirds(samples: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> tuple[float, float]:
    k = max(1, len(samples) // 3)
    first, last = [value(s) for s in samples[:k]], [value(s) for s in samples[-k:]]
    return sum(first) / len(first), sum(last) / len(last)


def keys_bounded(ev: Evidence) -> Invariant:
    if not ev.samples:
        return Invariant("keys_bounded", False, {"samples": 0}, ["no sample was taken"])
    last = ev.samples[-1]
    limit = 2 * max(last["live_slots"], PROCESSES * THREADS)
    numbers: dict[str, Any] = {"samples": len(ev.samples), "limit": limit}
    examples = []
    for kind in ("worker_keys", "owned_keys", "mailbox_keys"):
        first, end = _thirds(ev.samples, partial(_field, kind))
        numbers[kind] = {"last": last[kind], "first_third": round(first, 1), "last_third": round(end, 1),
                         "ratio": round(end / first, 2) if first else None}
        if last[kind] > limit:
            examples.append(f"{kind}: {last[kind]} at the last sample > {limit}")
    return Invariant("keys_bounded", not examples, numbers, examples)


def memory_flat(ev: Evidence, baseline: int) -> Invariant:
    usable = [s for s in ev.samples if s["tasks"]]
    if len(usable) < 3:
        return Invariant("memory_flat", True, {"samples": len(usable), "note": "fewer than 3 samples"})
    first, last = _thirds(usable, lambda s: (s["used_memory"] - baseline) / s["tasks"])
    ratio = last / first if first > 0 else 1.0
    return Invariant("memory_flat", ratio <= 1.5,
                     {"samples": len(usable), "bytes_per_task_first_third": round(first),
                      "bytes_per_task_last_third": round(last), "ratio": round(ratio, 2)},
                     [] if ratio <= 1.5 else [f"memory per stored task grew {ratio:.2f}x"])


def scan_worker_logs(sups: Supervisors) -> dict[str, Any]:
    """Counts from the supervisors' logs: worker processes that exited other than by a
    SIGKILL before shutdown began, exception lines (but the boom handler's), lost runs."""
    exits: list[str] = []
    exceptions: Counter[str] = Counter()
    lost = 0
    for sup in sups.all:
        text = sup.log_text()
        before_shutdown = text.split("warm shutdown", 1)[0]
        for m in re.finditer(r"worker process (\S+) exited with code (-?\d+)", before_shutdown):
            if m.group(2) != "-9":
                exits.append(f"{sup.name}: worker process {m.group(1)} exited with code {m.group(2)}")
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                exc = next((x for x in lines[i + 1:] if x and not x.startswith((" ", "Traceback"))), "?")
                if not exc.startswith(BOOM_MESSAGE) and "During handling" not in exc:
                    exceptions[re.sub(r"\d+", "N", exc)[:140]] += 1
        lost += sum(1 for line in lines if "task lost" in line)
    return {"unexpected_worker_exits": exits, "exceptions": exceptions.most_common(), "task_lost": lost}


