"""Throwaway Redis Cluster and Sentinel deployments for the tests, in the style of
:mod:`tests.redisserver`: loopback only, free ports, one temp dir per process, no
persistence, every process stopped by PID.

``LocalCluster``: ``masters`` masters with ``replicas_per_master`` replicas each,
joined by ``redis-cli --cluster create``. ``LocalSentinel``: a master, one replica
and one sentinel monitoring them as ``mymaster``. Both kill a master with SIGKILL
and wait for the failover::

    with LocalCluster(masters=3, replicas_per_master=1) as cluster:
        rc = cluster.client()
        port, _ = cluster.master_for_slot(rc.keyslot("atp:{ns}:seq"))
        cluster.kill_master(port)
        new_port = cluster.wait_failover(port)

    with LocalSentinel() as sentinel:
        r = sentinel.client()
        sentinel.kill_master()
        new_port = sentinel.wait_failover()

In a test module, ``local_cluster = cluster_fixture()`` and ``local_sentinel =
sentinel_fixture()`` make module-scoped fixtures (skipped if the servers cannot
start, failed under ``CI=true``). ``start_seconds`` and ``failover_seconds`` hold
the last measured durations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pytest
import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from .redisserver import REDIS_SERVER, free_port

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SLOTS = 16384
Scope = Literal["function", "class", "module", "package", "session"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class NodeInfo(NamedTuple):
    """A server process: its port and PID."""

    port: int
    pid: int


def _info(text: str) -> dict[str, str]:
    """``field:value`` lines (``CLUSTER INFO``) as a dict."""
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str]) -> float:
    """Poll ``check`` until true; return the seconds it took, or raise with the logs."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")


class _Node:
    """One redis-server (or sentinel) process on 127.0.0.1 with its own dir and log."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.log = self.dir / "redis.log"
        self.port = 0
        self.bus_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A client for the fixture's own checks: no retries, so a dead node fails fast."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True, retry=Retry(NoBackoff(), 0))

    def call(self, *args: Any) -> Any:
        """One command on a short-lived connection (readiness checks, not the code under test)."""
        with self.client() as c:
            return c.execute_command(*args)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as c:
            return c.info(section)  # type: ignore[no-any-return]

    def ping(self) -> bool:
        """Whether this node's own process answers (not whatever else holds the port)."""
        try:
            with self.client(0.5) as c:
                return self.alive and int(c.info("server")["process_id"]) == self.pid
        except (redis.RedisError, OSError, KeyError, ValueError):
            return False

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log.read_text(errors="replace")[-chars:]
        except OSError:
            text = "(no log)"
        return f"--- {self.name} port {self.port} ---\n{text}"

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()

    def reap(self, timeout: float = 10) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def _start(nodes: list[_Node], args_for: Callable[[_Node], list[str]], taken: set[int],
           bus: bool = False, attempts: int = 5, timeout: float = 20) -> None:
    """Launch ``nodes`` on fresh ports (and bus ports) and wait until each answers PING;
    a node whose process exits (port taken meanwhile) is tried again on new ports."""
    pending = list(nodes)
    for _ in range(attempts):
        for node in pending:
            node.port = _fresh_port(taken)
            node.bus_port = _fresh_port(taken) if bus else 0
            (node.dir / "nodes.conf").unlink(missing_ok=True)
            node.launch(args_for(node))
        deadline = time.monotonic() + timeout
        failed = []
        for node in pending:
            while not node.ping():
                if not node.alive or time.monotonic() > deadline:
                    node.kill()
                    failed.append(node)
                    break
                time.sleep(0.02)
        if not failed:
            return
        pending = failed
    raise RuntimeError("redis-server did not start:\n" + "\n".join(n.log_tail() for n in pending))


def _fresh_port(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def _server_args(node: _Node, *extra: str) -> list[str]:
    return [REDIS_SERVER, "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.dir),
            "--save", "", "--appendonly", "no", "--logfile", str(node.log),
            "--repl-diskless-sync-delay", "0", *extra]


class _Deployment:
    """What both deployments share: a temp root, processes, teardown by PID."""

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.nodes: list[_Node] = []
        self._taken: set[int] = set()
        #: Seconds the last :meth:`start` / ``wait_failover`` took.
        self.start_seconds = 0.0
        self.failover_seconds = 0.0

    def _node(self, name: str) -> _Node:
        node = _Node(self.root, name)
        self.nodes.append(node)
        return node

    def _by_port(self, port: int) -> _Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no node on port {port}")

    def logs(self) -> str:
        return "\n".join(n.log_tail() for n in self.nodes)

    def close(self) -> None:
        """Stop every process by PID (SIGTERM, SIGKILL after 10 s) and remove the temp dirs."""
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.reap()
        shutil.rmtree(self.root, ignore_errors=True)


class LocalCluster(_Deployment):
    """A Redis Cluster of ``masters`` masters with ``replicas_per_master`` replicas each,
    all on 127.0.0.1; ``node_timeout_ms`` is ``cluster-node-timeout``."""

    def __init__(self, masters: int = 3, replicas_per_master: int = 0, node_timeout_ms: int = 2000) -> None:
        super().__init__("redis-atp-cluster-")
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.n_masters = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self._lost: dict[int, tuple[list[tuple[int, int]], set[int]]] = {}
        for i in range(masters * (1 + replicas_per_master)):
            self._node(f"node{i}")

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 60) -> LocalCluster:
        """Start the processes, create the cluster, wait until every node says
        ``cluster_state:ok`` with all slots assigned and every replica is in sync."""
        started = time.monotonic()
        try:
            _start(self.nodes, lambda n: _server_args(
                n, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-port", str(n.bus_port)),
                self._taken, bus=True)
            create = [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                      "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed ({done.returncode}):\n"
                                   f"{done.stdout[-3000:]}{done.stderr[-2000:]}\n{self.logs()}")
            _wait("cluster_state:ok on every node", self._healthy, timeout, self.logs)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _live(self) -> list[_Node]:
        return [n for n in self.nodes if n.alive]

    def _healthy(self) -> bool:
        live = self._live()
        for node in live:
            info = _info(node.call("CLUSTER", "INFO"))
            if (info.get("cluster_state") != "ok" or int(info.get("cluster_slots_assigned", 0)) != SLOTS
                    or int(info.get("cluster_known_nodes", 0)) != len(self.nodes)):
                return False
            repl = node.info("replication")
            if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                return False
            # redis-cli attaches the replicas after the cluster is ok: wait until every node knows them
            flags = [line.split()[2] for line in node.call("CLUSTER", "NODES").splitlines()]
            if sum("slave" in f for f in flags) != self.n_masters * self.replicas_per_master:
                return False
        return True

    # ------------------------------------------------------------------ topology
    def _any(self) -> _Node:
        for node in self._live():
            if node.ping():
                return node
        raise RuntimeError("no cluster node is alive")

    def _slots(self, node: _Node | None = None) -> list[tuple[int, int, int]]:
        """``(first slot, last slot, master port)`` as ``node`` (any live one) sees them."""
        return [(int(r[0]), int(r[1]), int(r[2][1])) for r in (node or self._any()).call("CLUSTER", "SLOTS")]

    def _topology(self) -> list[tuple[int, str, str, str]]:
        """``(port, node id, flags, master id)`` of every node, from ``CLUSTER NODES``."""
        out = []
        for line in self._any().call("CLUSTER", "NODES").splitlines():
            fields = line.split()
            out.append((int(fields[1].split("@")[0].rsplit(":", 1)[1]), fields[0], fields[2], fields[3]))
        return out

    def masters(self) -> list[NodeInfo]:
        """The live masters, by port."""
        ports = sorted({port for _, _, port in self._slots()})
        return [NodeInfo(p, self._by_port(p).pid) for p in ports if self._by_port(p).alive]

    def replicas(self) -> list[NodeInfo]:
        """The live replicas, by port."""
        return [NodeInfo(p, self._by_port(p).pid) for p, _, flags, _ in sorted(self._topology())
                if "slave" in flags and "fail" not in flags and self._by_port(p).alive]

    def master_for_slot(self, slot: int) -> NodeInfo:
        """The master serving ``slot`` (``client().keyslot(key)`` gives a key's slot)."""
        for first, last, port in self._slots():
            if first <= slot <= last:
                return NodeInfo(port, self._by_port(port).pid)
        raise RuntimeError(f"slot {slot} is not served")

    @property
    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        return [redis.cluster.ClusterNode("127.0.0.1", n.port)  # type: ignore[no-untyped-call]
                for n in self._live()]

    @property
    def port(self) -> int:
        """A live node's port (the first node's while it lives)."""
        return self._live()[0].port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.port, **kwargs)

    # ------------------------------------------------------------------ failures
    def kill_master(self, port: int) -> None:
        """SIGKILL the master on ``port``; remembers its slots and replicas for :meth:`wait_failover`."""
        topology = self._topology()
        me = next((t for t in topology if t[0] == port), None)
        if me is None or "master" not in me[2]:
            raise ValueError(f"node {port} is not a master of this cluster")
        slots = [(first, last) for first, last, p in self._slots() if p == port]
        replicas = {p for p, _, _, master_id in topology if master_id == me[1]}
        self._lost[port] = (slots, replicas)
        self._by_port(port).kill()

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """Wait until a replica of the killed master serves its slots (on every live node's
        view, itself ``role:master``) and every live node is ``cluster_state:ok`` again.
        Returns the new master's port; ``failover_seconds`` is measured from this call."""
        slots, replicas = self._lost[old_port]
        if not replicas:
            raise RuntimeError(f"master {old_port} had no replica: nothing can take over its slots")
        new: list[int] = []

        def done() -> bool:
            owners = set()
            for node in self._live():
                if _info(node.call("CLUSTER", "INFO")).get("cluster_state") != "ok":
                    return False
                view = self._slots(node)
                for first, last in slots:
                    owners |= {p for f, la, p in view if f <= first and last <= la}
                    if not any(f <= first and last <= la for f, la, _ in view):
                        return False
            if len(owners) != 1 or not owners <= replicas:
                return False
            port = owners.pop()
            if self._by_port(port).info("replication")["role"] != "master":
                return False
            new[:] = [port]
            return True

        self.failover_seconds = _wait(f"failover of master {old_port}", done, timeout, self.logs)
        return new[0]


class LocalSentinel(_Deployment):
    """A master, one replica (``--replicaof``) and one sentinel watching them as ``mymaster``
    (quorum 1, ``down-after-milliseconds`` 1000, ``failover-timeout`` 3000)."""

    service = "mymaster"

    def __init__(self) -> None:
        super().__init__("redis-atp-sentinel-")
        self._master = self._node("master")
        self._replica = self._node("replica")
        self._sentinel = self._node("sentinel")

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 60) -> LocalSentinel:
        """Start master, then replica (waits for ``master_link_status:up``), then the
        sentinel (waits until it sees the master and the replica)."""
        started = time.monotonic()
        try:
            _start([self._master], _server_args, self._taken)
            _start([self._replica], lambda n: _server_args(
                n, "--replicaof", "127.0.0.1", str(self._master.port)), self._taken)
            _wait("the replica to sync", lambda: self._replica.info("replication")
                  .get("master_link_status") == "up", timeout, self.logs)
            _start([self._sentinel], self._sentinel_args, self._taken)
            _wait("the sentinel to see master and replica", self._watching, timeout, self.logs)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _sentinel_args(self, node: _Node) -> list[str]:
        conf = node.dir / "sentinel.conf"
        conf.write_text(
            f"port {node.port}\nbind 127.0.0.1\ndir {node.dir}\nlogfile {node.log}\n"
            "sentinel resolve-hostnames no\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self._master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 3000\n")
        return [REDIS_SERVER, str(conf), "--sentinel"]

    def _watching(self) -> bool:
        with self._sentinel.client() as s:
            master = s.sentinel_master(self.service)
            replicas = s.sentinel_slaves(self.service)
        return (master["port"] == self._master.port and master["is_master"] and not master["is_sdown"]
                and any(r["port"] == self._replica.port and not r["is_sdown"]
                        and r.get("master-link-status") == "ok" for r in replicas))

    @property
    def sentinel_port(self) -> int:
        return self._sentinel.port

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self._sentinel.port)]

    @property
    def master(self) -> NodeInfo:
        return NodeInfo(self._master.port, self._master.pid)

    @property
    def replica(self) -> NodeInfo:
        return NodeInfo(self._replica.port, self._replica.pid)

    def sentinel(self, socket_timeout: float = 1.0, **kwargs: Any) -> redis.sentinel.Sentinel:
        return redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            self.sentinels, socket_timeout=socket_timeout, **kwargs)

    def client(self, socket_timeout: float = 1.0, **kwargs: Any) -> redis.Redis:
        """A ``master_for("mymaster")`` client (follows failovers)."""
        client: redis.Redis = self.sentinel(socket_timeout, **kwargs).master_for(  # type: ignore[no-untyped-call]
            self.service)
        return client

    def kill_master(self) -> None:
        """SIGKILL the master."""
        self._master.kill()

    def wait_failover(self, timeout: float = 30) -> int:
        """Wait until the sentinel names the replica as master, has ended the failover
        (what redis-py's ``discover_master`` needs: no ``s_down``, ``o_down`` or
        ``failover_in_progress``) and the replica says ``role:master``; returns its port.
        ``failover_seconds`` is measured from this call. Once per :meth:`kill_master`."""

        def done() -> bool:
            with self._sentinel.client() as s:
                addr = s.sentinel_get_master_addr_by_name(self.service)
                state = s.sentinel_master(self.service)
            flags = set(state["flags"].split(","))
            return (addr is not None and int(addr[1]) == self._replica.port
                    and state["port"] == self._replica.port and "master" in flags
                    and not flags & {"s_down", "o_down", "failover_in_progress"}
                    and self._replica.info("replication")["role"] == "master")

        self.failover_seconds = _wait("the sentinel failover", done, timeout, self.logs)
        self._master, self._replica = self._replica, self._master
        return self._master.port


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def cluster_fixture(masters: int = 3, replicas_per_master: int = 1, scope: Scope = "module") -> Any:
    """A pytest fixture yielding a started :class:`LocalCluster` (skipped, or failed in
    CI, if it cannot start). In a test module: ``local_cluster = cluster_fixture()``."""

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[LocalCluster]:
        try:
            cluster = LocalCluster(masters, replicas_per_master).start()
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"cannot start a Redis Cluster: {exc}")
        try:
            yield cluster
        finally:
            cluster.close()

    return fixture


def sentinel_fixture(scope: Scope = "module") -> Any:
    """A pytest fixture yielding a started :class:`LocalSentinel`; in a test module:
    ``local_sentinel = sentinel_fixture()``."""

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[LocalSentinel]:
        try:
            sentinel = LocalSentinel().start()
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"cannot start Redis Sentinel: {exc}")
        try:
            yield sentinel
        finally:
            sentinel.close()

    return fixture
