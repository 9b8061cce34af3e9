"""A throwaway redis-server on a free 127.0.0.1 port, in its own temp dir, stopped by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_version() -> str:
    """``redis-server --version``'s ``v=`` field."""
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=")[-1].split()[0]


class RedisServer:
    """``redis-server --port P --bind 127.0.0.1 --save "" --appendonly no --dir <tmp>``.

    Use as a context manager; the server is stopped by its PID and its directory removed.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="redis-atp-bench-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new redis-py client on this server (bytes replies, as redis-atp needs)."""
        return redis.Redis(host="127.0.0.1", port=self.port)

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        for _ in range(5):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            if self._wait_ready(timeout_s):
                return self
            self.stop()
        raise RuntimeError(f"redis-server did not start: {self._log_tail()}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        log = self.dir / "redis.log"
        return log.read_text(errors="replace")[-800:] if log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server by PID (SIGKILL after 10 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
