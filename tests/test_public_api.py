"""The public surface: the same objects from both modules, __all__ matching the exports,
an async twin for every method."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import redis_atp
import redis_atp.tracker as seed
from redis_atp import STATUS2TEXT, TEXT2STATUS, AsyncTaskStatus, InvalidInput, Status, TaskStatus, Tracker
from redis_atp.aio import AsyncTracker


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
                 "DummyLock", "dbLocker", "TaskCancelled", "Retry", "Fail"):
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


def _public(cls: type) -> dict[str, Any]:
    return {n: getattr(cls, n) for n in dir(cls)
            if not n.startswith("_") and n != "io_class" and callable(getattr(cls, n))}


def test_every_tracker_method_has_an_async_twin_with_the_same_signature() -> None:
    sync, aio = _public(Tracker), _public(AsyncTracker)
    assert set(sync) == set(aio)
    for name, method in sync.items():
        twin = aio[name]
        assert inspect.signature(method).parameters == inspect.signature(twin).parameters, name
        if name == "events":
            assert inspect.isasyncgenfunction(twin)
        elif name not in ("from_url", "task"):
            assert inspect.iscoroutinefunction(twin), name


def test_the_async_task_status_has_every_seed_method_as_a_coroutine() -> None:
    for name in ("getInfo", "getIdentifier", "getStatus", "setSuccess", "setFailure", "setPaused", "setRunning",
                 "storeResponse"):
        sync, twin = getattr(TaskStatus, name), getattr(AsyncTaskStatus, name)
        assert inspect.iscoroutinefunction(twin) and not inspect.iscoroutinefunction(sync), name
        assert inspect.signature(sync) == inspect.signature(twin), name
    assert AsyncTaskStatus.FINISHED == TaskStatus.FINISHED


def test_the_worker_protocol_is_not_on_the_tracker() -> None:
    for name in ("advance", "take_handoff", "claim_started", "wait_for_work", "retire_step"):
        assert not hasattr(Tracker, name) and not hasattr(AsyncTracker, name), name


def test_a_face_refuses_the_other_kind_of_client() -> None:
    import redis
    import redis.asyncio

    with pytest.raises(InvalidInput, match="AsyncTracker"):
        Tracker(redis.asyncio.Redis())
    with pytest.raises(InvalidInput, match="redis_atp.Tracker"):
        AsyncTracker(redis.Redis())


def test_every_subpackage_ships_in_the_wheel() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    listed = set(re.findall(r'"(redis_atp[\w.]*)"', re.search(r"^packages = \[(.*)\]$",
                                                              (root / "pyproject.toml").read_text(), re.M)[1]))
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "redis_atp").rglob("__init__.py")}
    assert found | {"redis_atp.lua"} == listed
