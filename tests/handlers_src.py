"""Handlers for the worker tests; copied into a temporary directory and passed to the
worker with -p. Side effects are counted in a Redis hash named by the input."""

import os
import time

import redis

R = redis.Redis.from_url(os.environ["REDIS_ATP_TEST_SIDEFX"])


def count(ts, inp):
    R.hincrby(inp["fx"], str(inp["i"]))
    time.sleep(inp.get("sleep", 0))


def boom(ts, inp):
    raise ValueError(f"bad input {inp['i']}")


def steps(ts, inp):
    ts.setPaused("waiting for data")
    ts.setRunning("step 2 of 2")
    ts.storeResponse(f"<r>{inp['i']}</r>", "application/xml")


def succeed_early(ts, inp):
    ts.setSuccess("done by the handler")


def die(ts, inp):
    R.hincrby(inp["fx"], str(inp["i"]))
    os._exit(1)


# --- handlers for tests/test_worker_faults.py ------------------------------------


def poison(ts, inp):
    raise ValueError(os.fsdecode(b"bad-\xff-name"))


def exit_zero(ts, inp):
    R.hincrby(inp["fx"], str(inp["i"]))
    os._exit(0)


def blip(ts, inp):
    r = redis.Redis.from_url(os.environ["REDIS_ATP_TEST_SIDEFX"])
    try:
        r.execute_command("CLIENT", "KILL", "TYPE", "normal")  # every client but this one (SKIPME)
    finally:
        r.close()
    ts.setRunning("after the blip")
    ts.storeResponse("ok", "text/plain")


class Tools:
    @staticmethod
    def work(ts, inp):
        ts.storeResponse(f"tools {inp['i']}", "text/plain")


async def async_work(ts, inp):
    import asyncio

    await asyncio.sleep(0.05)
    R.hincrby(inp["fx"], str(inp["i"]))


def record(ts, inp):
    """Append this run's task id to the file named by $REDIS_ATP_TEST_RUNS (one line per run)."""
    fd = os.open(os.environ["REDIS_ATP_TEST_RUNS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ts.task_id}\n".encode())
    finally:
        os.close(fd)
    time.sleep(inp.get("sleep", 0))


async def nap(ts, inp):
    """Sleep on the event loop; the response records this run's own start and end."""
    import asyncio
    import json

    began = time.time()
    await ts.setRunning("napping")
    await asyncio.sleep(inp["sleep"])
    await ts.storeResponse(json.dumps({"start": began, "end": time.time()}), "application/json")


def flaky(ts, inp):
    """Fails (ValueError) on its first ``inp["fail"]`` runs, then succeeds."""
    if R.hincrby(inp["fx"], str(inp["i"])) <= inp["fail"]:
        raise ValueError(f"flaky run {inp['i']}")


def give_up(ts, inp):
    from redis_atp import Fail

    R.hincrby(inp["fx"], str(inp["i"]))
    raise Fail("the input is wrong; retrying will not help")


def later(ts, inp):
    """Asks for one retry after ``inp["delay"]`` seconds, then succeeds."""
    from redis_atp import Retry

    if R.hincrby(inp["fx"], str(inp["i"])) == 1:
        raise Retry(delay=inp["delay"])


def answer(ts, inp):
    """Returns what the input says to return (a handler's return value is its response)."""
    if inp.get("store"):
        ts.storeResponse(inp["store"], "text/x-stored")
    return inp["value"] if "value" in inp else {"sum": inp["a"] + inp["b"]}


async def async_answer(ts, inp):
    return {"async": inp["a"]}


def looper(ts, inp):
    """Reports progress every 50 ms for up to ``inp["for"]`` seconds; notes how it stopped."""
    from redis_atp import TaskCancelled

    deadline = time.time() + inp["for"]
    try:
        while time.time() < deadline:
            ts.setRunning("looping")
            time.sleep(0.05)
    except TaskCancelled:
        R.hset(inp["fx"], "stopped", "cancelled")
        raise
