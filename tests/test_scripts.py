"""The Lua scripts: headers match the callers, every refusal code is mapped, and a
lost script cache (SCRIPT FLUSH, restart) is recovered from, pipelines included."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import pytest

from redis_atp import Status, Tracker
from redis_atp.errors import Code, error_for_code
from redis_atp.scripts import _COMMENT, SCRIPT_NAMES, SHARED, constants, script

from .conftest import runs

LUA = files("redis_atp") / "lua"
HANDLER = "redis_atp.tracker.dummyHandler"


def _lua(name: str) -> str:
    return (LUA / f"{name}.lua").read_text()


def test_every_script_file_is_known_and_has_a_header() -> None:
    on_disk = {p.name[:-4] for p in LUA.iterdir() if p.name.endswith(".lua") and not p.name.startswith("_")}
    assert on_disk == set(SCRIPT_NAMES)
    for name in SCRIPT_NAMES:
        text = _lua(name)
        assert text.startswith(f"-- {name}.lua: "), name
        header = text.split("\n\n")[0] if not text.startswith("--") else "\n".join(
            line for line in text.splitlines() if line.startswith("--"))
        assert "KEYS" in header and "Returns" in header, name
        for code in set(re.findall(r"\bE_([A-Z_]+)", text)):
            assert code in header, f"{name}.lua returns E_{code} without documenting it"
        assert len(text.splitlines()) < 90, f"{name}.lua is too long"


def test_arguments_in_headers_match_the_scripts() -> None:
    for name in SCRIPT_NAMES:
        text = _lua(name)
        documented = {int(n) for n in re.findall(r"arg\((\d+)\)", "\n".join(
            line for line in text.splitlines() if line.startswith("--")))}
        used = {int(n) for n in re.findall(r"arg\((\d+)\)", "\n".join(
            line for line in text.splitlines() if not line.startswith("--")))}
        if name == "enqueue":  # per-task arguments are addressed as arg(base + k)
            used |= {1}
        assert used <= documented, f"{name}.lua uses undocumented arguments {used - documented}"


def test_every_code_used_in_lua_is_mapped() -> None:
    all_lua = "".join(_lua(n) for n in (*SCRIPT_NAMES, *SHARED))
    used = set(re.findall(r"\bE_([A-Z_]+)", all_lua))
    assert used <= {c.name for c in Code}
    for c in Code:
        assert error_for_code(c, "x") is not None
    statuses = set(re.findall(r"\bS_([A-Z]+)", all_lua))
    assert statuses <= {s.name for s in Status}
    assert constants()["S_FINISHED"] == Status.FINISHED and constants()["E_STALE"] == Code.STALE
    for name in SCRIPT_NAMES:  # each is written in as a number: no script is left with a name
        assert not re.search(r"\b(S|E)_[A-Z]+\b", _COMMENT.sub("", script(name).source)), name


def test_shared_helpers_are_small() -> None:
    for name in SHARED:  # the state machine, and the queue's: keep each a screenful of helpers
        assert len(_lua(name).splitlines()) < 450, name


def test_recovers_from_script_flush(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tracker.client.script_flush()
    tid = tracker.enqueue_task("t", "a", 1)
    tracker.client.script_flush()
    assert tracker.enqueue_many([("t", f"b{i}", i) for i in range(5)], chunk=2)[0] == tid + 1
    tracker.client.script_flush()
    [run] = runs(tracker, "w")
    tracker.client.script_flush()
    run.setSuccess()
    assert tracker.get_task_status(tid) == (Status.FINISHED, "FINISHED")
    assert tracker.get_queue_size() == 5


def test_pipelined_calls_that_got_noscript_run_exactly_once(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    tracker.client.script_flush()
    out: list[Any] = tracker.enqueue_many([("t", f"i{i}", i) for i in range(10)], chunk=3)
    assert out == list(range(1, 11))
    assert tracker.get_queue_size() == 10


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_compile(tracker: Tracker, name: str) -> None:
    sha = tracker.client.script_load(script(name).source)
    assert sha == script(name).sha


def test_a_script_is_sent_with_only_the_helpers_it_can_reach() -> None:
    """Redis runs a script's top level on each call: a helper it cannot reach is never sent."""
    progress, advance = script("progress").source, script("advance").source
    assert "local function claim(" not in progress and "local function claim(" in advance
    assert "local function set_status(" in progress  # what it does call, and what that calls
    for name in SCRIPT_NAMES:
        script(name)  # every script's helpers resolve (a missing one would fail to load)
