"""Run `redis-atp worker` as a subprocess for tests, with the test handlers on -p."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis_atp import Tracker

HERE = Path(__file__).parent
LIVE = ("accepted", "scheduled", "running", "paused")


def handler_dir(tmp: Path) -> Path:
    """A directory holding `handlers.py` and `marker.py`, as a user's would."""
    d = tmp / "handlers_dir"
    d.mkdir(exist_ok=True)
    shutil.copy(HERE / "handlers_src.py", d / "handlers.py")
    shutil.copy(HERE / "marker_src.py", d / "marker.py")
    return d


class WorkerProc:
    """One `redis-atp worker` process group, logging to a file."""

    def __init__(self, url: str, namespace: str, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = tmp / f"worker-{time.monotonic_ns()}.log"
        if "--threads" not in args:  # the tests reason about one slot per process unless they ask for more
            args = ("--threads", "1", *args)
        cmd = [sys.executable, "-m", "redis_atp", "worker", "--url", url, "--namespace", namespace,
               "-p", str(handler_dir(tmp)), "--log-level", "INFO", *args]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        self.log.close()


def wait_until(pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def start(env: dict[str, Any], url: str, namespace: str, *args: str,
          extra_env: dict[str, str] | None = None) -> WorkerProc:
    """A worker (see the ``env`` fixture), closed at the end of the test."""
    p = WorkerProc(url, namespace, env["tmp"], *args, env=extra_env)
    env["procs"].append(p)
    return p


def counts(tracker: Tracker, *types: str) -> dict[str, int]:
    """The counters of ``types``, summed."""
    total: dict[str, int] = {}
    for t in types:
        for k, v in tracker.get_task_type(t).counts.items():
            total[k] = total.get(k, 0) + v
    return total


def all_ended(tracker: Tracker, *types: str) -> bool:
    c = counts(tracker, *types)
    return not any(c[k] for k in LIVE)
