"""The entry point: parse, connect, run the command, turn every error into one line and an
exit code. Logging is configured here (``worker``) only."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import redis
from redis.exceptions import RedisClusterException
from redis.sentinel import MasterNotFoundError

from ..client import Tracker
from ..connection import client_from_url
from ..errors import InvalidInput, RedisATPError
from ..worker import mask_url
from .common import UsageError
from .parser import build_parser


def _fail(args: argparse.Namespace | None, code: int, kind: str, message: str) -> int:
    """Print an error on one line (as JSON on stdout with ``--json``); returns ``code``."""
    message = " ".join(message.split())
    if len(message) > 300:
        message = message[:297] + "..."
    if args is not None and getattr(args, "json", False):
        print(json.dumps({"error": {"type": kind, "message": message, "exit_code": code}}))
    else:
        print(f"redis-atp: {'error' if kind in ('usage', 'redis') else kind}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    where = "Redis"
    try:
        args = build_parser().parse_args(argv)
        where = f"Redis at {mask_url(args.url)}" if getattr(args, "url", None) else "Redis"
        if args.func is None:
            return int(args.run(args))
        client = client_from_url(args.url, socket_connect_timeout=3, socket_timeout=30)
        tracker = Tracker(client, args.namespace, shards=args.shards, serializer=args.serializer)
        try:
            return int(args.func(args, tracker))
        finally:
            client.close()
    except (UsageError, InvalidInput) as exc:
        return _fail(args, 2, "usage", str(exc))
    except (RedisATPError, LookupError) as exc:
        return _fail(args, 1, type(exc).__name__, str(exc))
    except (redis.ConnectionError, redis.TimeoutError, RedisClusterException) as exc:
        return _fail(args, 1, "redis", f"cannot reach {where}: {_reason(exc)}")
    except redis.RedisError as exc:
        return _fail(args, 1, "redis", f"{where} refused: {exc}")
    except ValueError as exc:
        return _fail(args, 2, "usage", str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("REDIS_ATP_DEBUG"):
            raise
        return _fail(args, 1, "internal error", f"{type(exc).__name__}: {exc} (REDIS_ATP_DEBUG=1 shows the traceback)")


def _reason(exc: BaseException) -> str:
    """A connection error's cause, without the pool reprs redis-py puts in some."""
    text = str(exc)
    if isinstance(exc, MasterNotFoundError):
        return f"no Sentinel answered for the master ({text.split(' ', 1)[0] if text else 'unknown'})"
    if isinstance(exc, RedisClusterException):
        return "no cluster node answered"
    return text
