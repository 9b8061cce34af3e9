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
