"""The public surface: the same objects from both modules, __all__ matching the exports."""

from __future__ import annotations

import redis_atp
import redis_atp.tracker as seed
from redis_atp import STATUS2TEXT, TEXT2STATUS, Status, TaskStatus


def test_all_matches_exports() -> None:
    for module in (redis_atp, seed):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    public = {n for n in dir(redis_atp) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(redis_atp.__all__)


def test_same_objects_from_both_faces() -> None:
    for name in ("Tracker", "Status", "STATUS2TEXT", "TEXT2STATUS", "TaskStatus", "QueueEmpty",
                 "QueueFull", "QueueException", "TaskNotFound", "TaskTypeNotFound", "StaleTask",
                 "RedisATPError", "DuplicateTask", "InvalidInput", "InvalidTransition", "TaskTypeInUse",
                 "DummyLock", "dbLocker"):
        assert getattr(redis_atp, name) is getattr(seed, name), name


def test_statuses() -> None:
    assert [(s.value, s.name) for s in Status] == [
        (0, "UNDEFINED"), (1, "ACCEPTED"), (2, "SCHEDULED"), (3, "RUNNING"), (4, "PAUSED"),
        (5, "FINISHED"), (6, "FAILED")]
    assert STATUS2TEXT == {0: "UNDEFINED", 1: "ACCEPTED", 2: "SCHEDULED", 3: "RUNNING", 4: "PAUSED",
                           5: "FINISHED", 6: "FAILED"}
    assert TEXT2STATUS == {v: k for k, v in STATUS2TEXT.items()}
    assert TaskStatus.ACCEPTED == 1 and TaskStatus.FINISHED == 5 and TaskStatus.UNDEFINED == 0
    assert Status.RUNNING.is_live and not Status.ACCEPTED.is_live
    assert Status.FAILED.is_terminal and not Status.PAUSED.is_terminal
    assert Status.FINISHED.pair() == (5, "FINISHED")


def test_error_tree() -> None:
    assert issubclass(redis_atp.QueueEmpty, redis_atp.QueueException)
    assert issubclass(redis_atp.QueueFull, redis_atp.QueueException)
    assert issubclass(redis_atp.TaskNotFound, LookupError)
    assert issubclass(redis_atp.TaskTypeNotFound, LookupError)
    for name in ("QueueException", "TaskNotFound", "TaskTypeNotFound", "StaleTask", "DuplicateTask",
                 "InvalidInput", "InvalidTransition", "TaskTypeInUse"):
        assert issubclass(getattr(redis_atp, name), redis_atp.RedisATPError)
