"""Helpers every command shares: output (text or ``--json``), escaping, times, and the
parsers of durations, moments and ``--input``."""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..client import Tracker

COUNTS = ("accepted", "scheduled", "running", "paused", "finished_total", "failed_total")


class UsageError(Exception):
    """Bad arguments the parser could not catch (exit code 2)."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("redis-atp")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _env_list(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(",") if p]


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value
    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def _out(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> int:
    print(json.dumps(data, indent=2, default=str, allow_nan=False) if args.json else text())
    return 0


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _esc(text: object) -> str:
    """Text for a terminal: control characters (newlines in an identifier, ESC) shown
    escaped, so a hostile name cannot rewrite the screen or fake a line."""
    t = str(text)
    return t if t.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in t)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it, unambiguously: bytes as ``{"$bytes": base64}``,
    tuples and sets as lists, anything else JSON lacks as ``{"$repr": repr}``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$repr": repr(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return {"$repr": repr(value)}


def _when(ts: datetime | float) -> str:
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _paused_text(state: dict[str, Any]) -> str:
    """A :meth:`~redis_atp.Tracker.get_pause_state` in words, e.g. ``types a, b (3 tasks parked)``."""
    what = (["the namespace"] if state["namespace"] else []) + (
        ["types " + ", ".join(_esc(t) for t in state["types"])] if state["types"] else [])
    parked = f" ({state['parked']} tasks parked)" if state["parked"] else ""
    return ("; ".join(what) or "nothing") + parked


def _task_id(args: argparse.Namespace, tracker: Tracker) -> int:
    if args.task_id is not None:
        if args.type or args.identifier:
            raise UsageError("give either TYPE IDENTIFIER or --id, not both")
        return int(args.task_id)
    if not (args.type and args.identifier):
        raise UsageError("give TYPE IDENTIFIER, or --id ID")
    return tracker.get_task_id(args.type, args.identifier)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float:
    """``30``, ``30s``, ``500ms``, ``5m``, ``2h``, ``1d`` as seconds (>= 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30, 30s, 500ms, 5m, 2h, 1d)")
    return float(m[1]) * _UNITS[m[2] or "s"]


def _moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-24T18:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _read_input(spec: str) -> Any:
    """``--input``: JSON text, ``@FILE`` or ``-`` (stdin). Non-finite numbers (``NaN``,
    ``1e400``) are refused: JSON has none, and ``show --json`` could not print them."""
    if spec == "-":
        text = sys.stdin.read()
    elif spec.startswith("@"):
        try:
            with open(spec[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"--input {spec}: {exc.strerror}") from None
    else:
        text = spec

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise UsageError(f"--input: {number} is not a finite number")
        return value

    def constant(name: str) -> Any:
        raise UsageError(f"--input: {name} is not JSON")

    try:
        return json.loads(text, parse_float=finite, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input is not valid JSON: {exc}") from None
