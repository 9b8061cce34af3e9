"""A short chaos run of a real worker fleet (``benchmarks.chaos``): about 25 s of faults
(worker and supervisor SIGKILLs, CLIENT KILL storms, Redis SIGKILL + AOF restart,
SIGSTOP, OOM refusals, SCRIPT FLUSH + FUNCTION FLUSH, one supervisor behind a slow link) on ~400
tasks; every invariant the run checks must hold. Needs redis-server: skipped without
it, failed with CI=true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IN_CI
from .redisserver import REDIS_SERVER

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The run's own bound; the whole test stays under ~90 s.
TIMEOUT_S = 85


@pytest.mark.real_redis
def test_a_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    if not os.access(REDIS_SERVER, os.X_OK):
        reason = f"redis-server not found ({REDIS_SERVER})"
        if IN_CI:
            pytest.fail(f"real Redis is required in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    argv = [sys.executable, "-m", "benchmarks.chaos", "--minutes", "0.42", "--tasks", "400", "--seed", "7",
            "--drain", "30", "--json", str(tmp_path / "chaos.json"), "--workdir", str(tmp_path / "work")]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the run stops everything it started
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        pytest.fail(f"the chaos run took more than {TIMEOUT_S}s:\n{output[-8000:]}", pytrace=False)
    table = output[output.rfind("chaos run:"):] if "chaos run:" in output else output[-8000:]
    assert proc.returncode == 0, f"chaos run exited {proc.returncode}; logs in {tmp_path / 'work'}\n{table}"
