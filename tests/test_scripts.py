"""The Lua scripts: headers match the callers, every refusal code is mapped, a lost
script cache or library (SCRIPT FLUSH, FUNCTION FLUSH, restart) is recovered from,
pipelines included, and the library keeps nothing of one call for the next."""

from __future__ import annotations

import re
import time
import uuid
from importlib.resources import files
from typing import Any

import pytest
import redis

from redis_atp import Status, Tracker
from redis_atp.daemon.protocol import Claims
from redis_atp.errors import Code, QueueEmpty, TaskTypeNotFound, error_for_code
from redis_atp.scripts import _COMMENT, SCRIPT_NAMES, SHARED, _pieces, _read, constants, library, script

from .conftest import AsyncFace, async_client, delete_namespace, runs

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
        assert len(_lua(name).splitlines()) < 480, name


def _flush(client: Any) -> None:
    """What a restart of a Redis that keeps nothing does to scripts: both caches gone."""
    client.script_flush()
    client.function_flush()


def test_recovers_from_script_and_function_flush(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    _flush(tracker.client)
    tid = tracker.enqueue_task("t", "a", 1)
    _flush(tracker.client)
    assert tracker.enqueue_many([("t", f"b{i}", i) for i in range(5)], chunk=2)[0] == tid + 1
    _flush(tracker.client)
    [run] = runs(tracker, "w")
    _flush(tracker.client)
    run.setSuccess()
    assert tracker.get_task_status(tid) == (Status.FINISHED, "FINISHED")
    assert tracker.get_queue_size() == 5


def test_the_async_face_loads_the_library_too(tracker: Tracker, request: pytest.FixtureRequest) -> None:
    face = AsyncFace(tracker, async_client(request))
    try:
        tracker.register_task_type("t", HANDLER)
        _flush(tracker.client)  # on a cluster: every node
        tid = face.enqueue_task("t", "a", 1)
        _flush(tracker.client)
        assert face.enqueue_many([("t", f"b{i}", i) for i in range(3)], chunk=2) == [tid + 1, tid + 2, tid + 3]
        assert face.get_task_status(tid) == (Status.ACCEPTED, "ACCEPTED")
    finally:
        face.close()


def test_pipelined_calls_that_never_ran_run_exactly_once(tracker: Tracker) -> None:
    tracker.register_task_type("t", HANDLER)
    _flush(tracker.client)
    out: list[Any] = tracker.enqueue_many([("t", f"i{i}", i) for i in range(10)], chunk=3)
    assert out == list(range(1, 11))
    assert tracker.get_queue_size() == 10
    _flush(tracker.client)
    assert tracker.enqueue_many([("t", f"j{i}", i) for i in range(4)], chunk=1) == list(range(11, 15))
    assert tracker.get_queue_size() == 14


def test_script_calls_go_as_fcall_of_the_library(real_tracker: Tracker) -> None:
    real_tracker.register_task_type("t", HANDLER)
    real_tracker.client.config_resetstat()
    real_tracker.enqueue_task("t", "a", 1)
    stats = real_tracker.client.info("commandstats")
    assert stats["cmdstat_fcall"]["calls"] == 1 and "cmdstat_evalsha" not in stats
    [flat] = real_tracker.client.function_list(library=library().name)
    functions = dict(zip(flat[::2], flat[1::2], strict=True))[b"functions"]
    assert {dict(zip(f[::2], f[1::2], strict=True))[b"name"].decode() for f in functions} == {
        script(n).function for n in SCRIPT_NAMES}


def test_a_server_that_cannot_fcall_gets_evalsha(real_client: redis.Redis, redis_url: str, namespace: str) -> None:
    """Redis 6.2 has no FCALL, an ACL may forbid it: script calls go as EVALSHA then."""
    user = f"atp-nofcall-{uuid.uuid4().hex[:8]}"
    real_client.acl_setuser(user, enabled=True, nopass=True, keys=["*"], channels=["*"],
                            commands=["+@all", "-fcall", "-function"])
    client = redis.Redis.from_url(redis_url, username=user, password="x")
    try:
        real_client.function_flush()
        t = Tracker(client, namespace)
        t.register_task_type("t", HANDLER)
        real_client.config_resetstat()
        tid = t.enqueue_task("t", "a", 1)
        assert t.enqueue_many([("t", f"b{i}", i) for i in range(3)]) == [tid + 1, tid + 2, tid + 3]
        [run] = runs(t, "w")
        run.setSuccess()
        assert t.get_task_status(tid) == (Status.FINISHED, "FINISHED")
        stats = real_client.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 4 and "cmdstat_function|load" not in stats
    finally:
        client.close()
        real_client.acl_deluser(user)
        delete_namespace(real_client, namespace)


def _shared_top_level() -> tuple[set[str], set[str], set[str]]:
    """The shared helpers' top-level locals: (set by begin_call or forget_memos, functions,
    the others)."""
    pieces = {name: text for name, text in _pieces("\n".join(_read(p) for p in SHARED)) if name}
    state = set()
    for setter in ("begin_call", "forget_memos"):
        lines = pieces[setter].splitlines()
        body = lines[0].split(")", 1)[1] if len(lines) == 1 else "\n".join(lines[1:-1])
        state |= set(re.findall(r"\b([A-Za-z_]\w*)\s*(?:,|=[^=])", body.removesuffix(" end")))
    functions, others = set(), set()
    for name, text in _pieces("\n".join(_read(p) for p in SHARED)):
        if name:
            functions.add(name)
            continue
        for line in _COMMENT.sub("", text).splitlines():
            declared = re.match(r"^local ([\w, ]+?)\s*(?:=|$)", line)
            if declared:
                others |= {n.strip() for n in declared.group(1).split(",")}
    return state, functions, others - functions - state


def test_the_library_keeps_no_state_from_one_call_to_the_next() -> None:
    """A Redis Functions library keeps its locals between calls: every top-level local of
    the helpers is a function, a constant nothing assigns, state begin_call resets, or a
    memo forget_memos resets (when the prefix changes)."""
    state, _, others = _shared_top_level()
    assert {"config_cache", "now_cached", "pause_state", "SHARDS", "types_memo", "types_rev"} <= state
    code = _COMMENT.sub("", "\n".join(_read(n) for n in (*SHARED, *SCRIPT_NAMES)))
    for name in others:
        assert name.isupper(), f"{name}: a top-level local of the helpers that is neither state nor constant"
        assigned = re.findall(rf"^\s*(?!local )[\w, ]*\b{name}\b[\w, ]*=[^=]", code, re.M)
        assert not assigned, f"{name} is assigned after its declaration: {assigned}"
        assert not re.search(rf"\b{name}\s*\[[^]]*\]\s*=[^=]|\b{name}\.\w+\s*=[^=]", code), f"{name} is changed"


def test_each_call_sees_its_own_namespace_and_the_current_settings(real_client: redis.Redis) -> None:
    """Calls that alternate between namespaces, and settings changed between calls: the
    library's key names and caches of one call never leak into the next."""
    a, b = Tracker(real_client, f"lib-a-{uuid.uuid4().hex[:6]}"), Tracker(real_client, f"lib-b-{uuid.uuid4().hex[:6]}")
    try:
        a.register_task_type("t", HANDLER, timeout=10)
        b.register_task_type("t", "other.module.handler", timeout=20)
        for i in range(3):
            assert a.enqueue_task("t", f"x{i}", i) == b.enqueue_task("t", f"x{i}", i) == i + 1
        assert a.get_queue_size() == b.get_queue_size() == 3
        with pytest.raises(TaskTypeNotFound):  # a call that found the type missing...
            b.enqueue_task("late", "x", 1)
        b.register_task_type("late", HANDLER)
        assert b.enqueue_task("late", "x", 1) == 4  # ...and the next one, after it was registered
        assert len(runs(b, "w")) == 1
        claims = Claims(b)
        [first] = claims.advance("w").tasks
        assert first.handler == "other.module.handler"
        b.register_task_type("t", "third.module.handler")  # settings changed between two calls
        [second] = claims.advance("w").tasks
        assert second.handler == "third.module.handler"
        number = b.client.hget(b.ns.keys.types, "late").decode()
        b.client.hset(b.ns.keys.type(number), "handler", "edited.by.hand")  # no revision: seen within a second
        time.sleep(1.1)
        [third] = claims.advance("w").tasks
        assert third.handler == "edited.by.hand"
        b.unregister_task_type("late", force=True)
        with pytest.raises(TaskTypeNotFound):
            b.enqueue_task("late", "y", 1)
        b.enqueue_task("t", "after", 1)
        a.pause_queue()
        with pytest.raises(QueueEmpty):
            runs(a, "w")
        assert len(runs(b, "w")) == 1
        a.resume_queue()
        assert len(runs(a, "w")) == 1
        a.set_max_events(0)
        before = len(a.client.xrange(a.ns.keys.events))
        a.enqueue_task("t", "quiet", 1)
        b.enqueue_task("t", "loud", 1)
        assert len(a.client.xrange(a.ns.keys.events)) == before
        assert b.client.xrevrange(b.ns.keys.events, count=1)[0][1][b"ident"] == b"loud"
        first, second = a.get_task_status(1), a.get_task_status(4)
        assert first[0] == Status.SCHEDULED and second[0] == Status.ACCEPTED
    finally:
        delete_namespace(real_client, a.namespace)
        delete_namespace(real_client, b.namespace)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_scripts_compile(tracker: Tracker, name: str) -> None:
    sha = tracker.client.script_load(script(name).source)
    assert sha == script(name).sha


def test_the_library_loads(real_client: redis.Redis) -> None:
    assert real_client.function_load(library().source, replace=True) == library().name.encode()


def test_a_script_is_sent_with_only_the_helpers_it_can_reach() -> None:
    """Redis runs a script's top level on each call: a helper it cannot reach is never sent."""
    progress, advance = script("progress").source, script("advance").source
    assert "local function claim(" not in progress and "local function claim(" in advance
    assert "local function set_status(" in progress  # what it does call, and what that calls
    for name in SCRIPT_NAMES:
        script(name)  # every script's helpers resolve (a missing one would fail to load)
