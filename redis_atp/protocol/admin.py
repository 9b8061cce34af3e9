"""Operations on the namespace as a whole: task types, the queue limit, and the sweeps
(zombies, retention), which go in bounded batches so no script call blocks Redis long."""

from __future__ import annotations

from .. import validate
from ..errors import InvalidInput
from ..keys import check_text
from ..status import Status
from ..validate import Handler
from .namespace import Namespace, text
from .requests import Op
from .tasks import checked

__all__ = ["register_task_type", "unregister_task_type", "set_max_queue_size", "reap_zombies",
           "reenqueue_zombie_tasks", "promote_due", "retire_step", "delete_retired_tasks", "Recovered", "recovered",
           "REAP_BATCH", "BUCKETS_PER_CALL"]

#: Tasks and id buckets (100 ids each) per call of the batched scripts: each call
#: stays well under 10 ms of Redis time at any scale.
REAP_BATCH = 100
BUCKETS_PER_CALL = 2
#: ``(task id, type, identifier, new status)`` of a task a recovery acted on.
Recovered = tuple[int, str, str, Status]


def recovered(reply: list[bytes | int]) -> list[Recovered]:
    """The ``id type identifier status`` quadruples of a sweep's or recovery's reply."""
    return [(int(reply[i]), text(reply[i + 1]), text(reply[i + 2]), Status(int(reply[i + 3])))  # type: ignore[arg-type]
            for i in range(0, len(reply), 4)]


def register_task_type(ns: Namespace, identifier: str, handler: Handler, timeout: float = 3600,
                       timeret: float = -1, maxrestart: int = 2, retries: int = 0, retry_delay: float = 1.0,
                       retry_backoff: float = 2.0, retry_max_delay: float = 3600,
                       hard_timeout: float | None = None) -> Op[None]:
    check_text("task type", identifier)
    path = validate.handler_path(handler)
    if isinstance(maxrestart, bool) or not isinstance(maxrestart, int):
        raise InvalidInput(f"maxrestart must be an int, not {maxrestart!r:.80}")
    args = (identifier, path, validate.seconds("timeout", timeout), validate.seconds("timeret", timeret),
            max(0, maxrestart), *validate.retry_settings(retries, retry_delay, retry_backoff, retry_max_delay),
            validate.hard_timeout(hard_timeout))
    if not ns.checked:
        yield from ns.check(registering=True)
    for shard in range(ns.shards):
        yield ns.call("register_type", *args, shard=shard)


def unregister_task_type(ns: Namespace, identifier: str, force: bool = False) -> Op[None]:
    check_text("task type", identifier)
    passes = [True, False] if ns.shards > 1 and not force else [False]
    for check_only in passes:
        for shard in range(ns.shards):
            bucket, done = 0, 0
            while not done:
                done, bucket, _ = yield from checked(ns, f"task type {identifier!r}", ns.call(
                    "unregister_type", identifier, "1" if force else "0", bucket, BUCKETS_PER_CALL,
                    "1" if check_only else "0", shard=shard))


def set_max_queue_size(ns: Namespace, limit: int) -> Op[None]:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidInput(f"max_queue_size must be an int, not {limit!r:.80}")
    yield ns.set_limit(limit)


def reap_zombies(ns: Namespace, message: str = "", limit: int | None = None) -> Op[list[Recovered]]:
    msg = validate.message(message)
    if not ns.checked:
        yield from ns.check()
    acted: list[Recovered] = []
    for shard in range(ns.shards):
        done = 0
        while limit is None or done < limit:
            done += REAP_BATCH
            reply = yield ns.call("reap_zombies", REAP_BATCH, msg, shard=shard)
            acted += recovered(reply)
            if len(reply) < REAP_BATCH * 4:
                break
    return acted


def reenqueue_zombie_tasks(ns: Namespace, message: str = "") -> Op[list[tuple[int, str]]]:
    return [(tid, f"{t}::{i}") for tid, t, i, _ in (yield from reap_zombies(ns, message))]


def promote_due(ns: Namespace, shard: int, limit: int = REAP_BATCH, calls: int = 10) -> Op[int]:
    """Move due delayed tasks to the queue on one shard (script ``promote``, ``limit``
    per call, at most ``calls`` calls); returns how many."""
    if not ns.checked:
        yield from ns.check()
    moved = 0
    for _ in range(calls):
        done, _ready = yield ns.call("promote", limit, shard=shard)
        moved += int(done)
        if int(done) < limit:
            break
    return moved


def retire_step(ns: Namespace, shard: int, first_bucket: int,
                buckets: int = BUCKETS_PER_CALL) -> Op[tuple[int, list[tuple[int, str]]]]:
    """One step of the retention sweep on one shard over ``buckets`` id buckets from
    ``first_bucket``; returns the next bucket (0 after the last) and what it removed."""
    if not ns.checked:
        yield from ns.check()
    reply = yield ns.call("retire", first_bucket, buckets, shard=shard)
    removed = [(int(reply[i]), f"{text(reply[i + 1])}::{text(reply[i + 2])}") for i in range(1, len(reply), 3)]
    return int(reply[0]), removed


def delete_retired_tasks(ns: Namespace) -> Op[list[tuple[int, str]]]:
    removed: list[tuple[int, str]] = []
    for shard in range(ns.shards):
        bucket = 0
        while True:
            bucket, step = yield from retire_step(ns, shard, bucket)
            removed += step
            if not bucket:
                break
    return removed
