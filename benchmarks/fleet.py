"""The real worker fleet, ``redis-atp worker``, as a subprocess in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

#: The repository root: ``-p`` puts it on the workers' sys.path for ``benchmarks.handlers``.
REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "redis-atp"


def worker_argv(url: str, namespace: str, processes: int) -> list[str]:
    """The worker command line the benchmark runs (no per-task logging)."""
    return [str(CLI), "worker", "--url", url, "--namespace", namespace, "-n", str(processes),
            "--log-level", "WARNING", "-p", str(REPO_ROOT), "--allow", "benchmarks.handlers"]


class WorkerFleet:
    """``redis-atp worker -n N``, logging to ``log_path`` (never a pipe); stopped with
    SIGTERM (a clean, warm shutdown), then SIGKILL to its group if it outlives ``grace_s``."""

    def __init__(self, url: str, namespace: str, processes: int, log_path: Path) -> None:
        self.argv = worker_argv(url, namespace, processes)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self) -> WorkerFleet:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, grace_s: float = 15.0) -> int | None:
        """Stop the fleet; returns the supervisor's exit code (0 = clean)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return self.exit_code
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        self.exit_code = proc.poll()
        if self.exit_code != 0:  # not a clean exit: kill whatever is left of the group we started
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)
        return self.exit_code

    def __enter__(self) -> WorkerFleet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
