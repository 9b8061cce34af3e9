"""Start ``redis-atp dashboard`` as a child process on a free loopback port and learn its
URL from the line it prints: for ``redis-atp demo --dashboard`` and the browser tests."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["Launched", "launch"]

_LISTENING = re.compile(r"redis-atp dashboard: (http://\S+/)")


@dataclass
class Launched:
    """A dashboard process, the URL it serves, and the line it printed on start."""

    process: subprocess.Popen[str]
    url: str
    banner: str

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def launch(url: str, namespace: str, *args: str, stderr: IO[Any] | int | None = None) -> Launched:
    """``redis-atp dashboard --url URL --namespace NS --port 0 ARGS...``, once it listens.

    Raises:
        RuntimeError: it exited before saying where it listens (its error went to ``stderr``).
    """
    proc = subprocess.Popen([sys.executable, "-m", "redis_atp", "dashboard", "--url", url, "--namespace", namespace,
                             "--port", "0", *args], stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := _LISTENING.match(line):
            return Launched(proc, m[1], line)
    proc.wait()
    raise RuntimeError(f"redis-atp dashboard exited with code {proc.returncode} before it listened")
