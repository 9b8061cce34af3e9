"""Instructions Redis executes per script call, counted by callgrind: repeatable to the
last digit whatever else the machine does, so a few percent of Lua can be compared.

    python -m benchmarks.instructions [--n 1000] [--against REV] [--out FILE]

Starts ``redis-server`` under ``valgrind --tool=callgrind`` (about 50 times slower),
then for each setting (the events stream on, and off) counts the instructions of
``enqueue_task`` (per call), ``enqueue_many`` (per task) and the worker's ``advance``
(per task: end the last run, claim and start the next), zeroing the counters before
each phase and dumping them after (``callgrind_control``). ``--against REV`` measures
a checkout of REV (a git worktree in a temporary directory) in a subprocess the same
way, for a before/after table. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.redisserver import free_port

REPO = Path(__file__).resolve().parent.parent
PHASES = ("enqueue", "bulk", "advance")


def _measure(port: int, n: int, max_events: int | None) -> dict[str, float]:
    """Instructions per enqueue call, per bulk-enqueued task and per advance, on the
    callgrind server at ``port``, with this interpreter's ``redis_atp``."""
    import redis

    from redis_atp import Tracker
    from redis_atp.daemon.protocol import Claims
    from redis_atp.status import Status

    client = redis.Redis(port=port)
    pid = int(client.info("server")["process_id"])
    out_dir = Path(str(client.config_get("dir")["dir"]))

    def counted(action: Any, per: int) -> float:
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True)
        action()
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
        time.sleep(0.3)
        dump = max(glob.glob(str(out_dir / f"callgrind.out.{pid}*")), key=os.path.getmtime)
        found = re.search(r"^(?:summary|totals):\s+(\d+)", Path(dump).read_text(), re.M)
        assert found, dump
        return int(found.group(1)) / per

    client.flushall()
    options = {} if max_events is None else {"max_events": max_events}
    tracker = Tracker(client, "ir", max_queue_size=0, **options)  # type: ignore[arg-type]
    tracker.register_task_type("t", "x.y")
    tracker.enqueue_many([("t", f"warm{i}", {"n": i}) for i in range(200)])
    figures = {
        "enqueue": counted(lambda: [tracker.enqueue_task("t", f"a{i}", {"n": i}) for i in range(n)], n),
        "bulk": counted(lambda: tracker.enqueue_many([("t", f"m{i}", {"n": i}) for i in range(5 * n)]), 5 * n),
    }
    claims = Claims(tracker)
    step = [claims.advance("o", None)]

    def advance() -> None:
        for _ in range(n):
            step[0] = claims.advance("o", (step[0].tasks[0], Status.FINISHED, ""), maybe_waiting=False)
    figures["advance"] = counted(advance, n)
    return figures


def _server(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out.%p",
                             "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import redis

    deadline = time.monotonic() + 60
    while True:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


_CHILD = """
import json, sys
checkout, port, n, me = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, checkout)
scope = {"__name__": "instructions", "__file__": me}
exec(compile(open(me).read(), me, "exec"), scope)  # this module's _measure, on the checkout's redis_atp
out = {}
for setting, cap in (("default", None), ("max_events=0", 0)):
    try:
        out[setting] = scope["_measure"](port, n, cap)
    except TypeError:  # a checkout from before the events stream (no max_events): its default has none
        pass
print(json.dumps(out))
"""


def _settings(checkout: Path, port: int, n: int) -> dict[str, dict[str, float]]:
    """Both settings measured with ``checkout``'s code, in a subprocess of its own."""
    run = subprocess.run([sys.executable, "-c", _CHILD, str(checkout), str(port), str(n), __file__],
                         capture_output=True, text=True, check=True, cwd=checkout,
                         env={**os.environ, "PYTHONPATH": str(checkout)})
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="calls per phase (default 1000)")
    parser.add_argument("--against", help="also measure this git revision (e.g. 3cb9dc4)")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/instructions-<time>.json)")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="atp-ir-") as tmp:
        proc, port = _server(Path(tmp))
        try:
            results["this checkout"] = _settings(REPO, port, args.n)
            if args.against:
                tree = Path(tmp) / "against"
                subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.against], cwd=REPO,
                               capture_output=True, check=True)
                try:
                    results[args.against] = _settings(tree, port, args.n)
                finally:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
        finally:
            proc.terminate()
            proc.wait(30)
    print("| code | setting | enqueue_task (Ir/call) | enqueue_many (Ir/task) | advance (Ir/task) |")
    print("|---|---|---:|---:|---:|")
    for code, settings in results.items():
        for setting, f in settings.items():
            print(f"| {code} | {setting} | " + " | ".join(f"{f[p] / 1000:,.1f}k" for p in PHASES) + " |")
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"instructions-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
