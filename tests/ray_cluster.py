"""A real local Ray cluster for tests: a head and a worker node as separate processes on this machine.

The head offers no CPUs, so every trainer runs on the worker node, placed
there by Ray's scheduler. Each node is `ray start --block` in its own process
session, with its own temp dir and free ports, so the cluster never meets
another one on this machine; teardown kills those sessions (and any Ray
worker process of this cluster that moved to its own process group), never
anything else. One cluster serves the whole test session: starting it costs
tens of seconds.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RAY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "ray"
WORKER_CPUS = 1      # one trainer at a time: a second run has to wait for the cluster
WORKER_MEMORY_MB = 4096   # what the worker node offers trainers, whatever this machine has: a small node
PORTS_PER_NODE = 60  # 8 service ports, then a range for Ray's worker processes


def _free_port_block(count: int) -> int:
    """The first of `count` consecutive ports that nothing listens on, below the kernel's range for ports
    picked at random (32768 and up), where another test's server (port 0) could take one meanwhile."""
    for _ in range(200):
        base = random.randrange(20000, 32768 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports for a test Ray cluster")


def _node_ports(base: int) -> list[str]:
    names = ["node-manager-port", "object-manager-port", "metrics-export-port", "runtime-env-agent-port",
             "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "ray-client-server-port"]
    return ([f"--{name}={base + i}" for i, name in enumerate(names)]
            + [f"--min-worker-port={base + 10}", f"--max-worker-port={base + PORTS_PER_NODE - 1}"])


class LocalCluster:
    def __init__(self):
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))   # short: Ray's socket paths are limited
        self.head_port = _free_port_block(1 + 2 * PORTS_PER_NODE)
        self.address = f"127.0.0.1:{self.head_port}"
        self.nodes: list[subprocess.Popen] = []
        self.started_s = 0.0

    def start(self) -> "LocalCluster":
        began = time.monotonic()
        common = ["--block", "--disable-usage-stats"]
        self._node("head", ["--head", f"--port={self.head_port}", "--num-cpus=0", "--num-gpus=0",
                            "--include-dashboard=false", f"--temp-dir={self.temp_dir}",
                            *_node_ports(self.head_port + 1)], common)
        self._node("worker", [f"--address={self.address}", f"--num-cpus={WORKER_CPUS}", "--num-gpus=0",
                              f"--memory={WORKER_MEMORY_MB << 20}",
                              *_node_ports(self.head_port + 1 + PORTS_PER_NODE)], common)
        self.started_s = time.monotonic() - began
        return self

    def _node(self, name: str, args: list[str], common: list[str]) -> None:
        log_path = self.temp_dir / f"{name}.out"
        # A busy CI machine can take longer than Ray's 30 s to register a node: allow it 3 minutes.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_raylet_start_wait_time_s": "180"}
        env.pop("RAY_ADDRESS", None)
        with open(log_path, "wb") as log:
            node = subprocess.Popen([str(RAY), "start", *args, *common], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.nodes.append(node)
        deadline = time.monotonic() + 300
        while b"Ray runtime started" not in log_path.read_bytes():
            if node.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"the Ray {name} node did not start:\n{output}")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)   # their own sessions: only this cluster's processes
            except ProcessLookupError:
                pass
            node.wait()
        marker = str(self.temp_dir).encode()
        for pid in _pids():      # Ray's workers and trainers it started, which may sit in groups of their own
            try:
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes() or marker in Path(f"/proc/{pid}/environ").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]


_shared: LocalCluster | None = None


def shared() -> LocalCluster:
    """The test session's cluster, started at first use and stopped when the session's process exits
    (after Ray's own exit handler has disconnected this process from it)."""
    global _shared
    if _shared is None:
        import atexit
        _shared = LocalCluster().start()
        atexit.register(_shared.stop)
    return _shared


def kill_trainers(runs_dir: Path) -> None:
    """End the trainers a test's runs left behind (a failed test never stopped them): each is known by
    the pid in its status.json and its own run directory on its command line."""
    from cifar_core import rundir
    for run in Path(runs_dir).glob("*/"):
        pid = rundir.read_status(run).get("pid")
        try:
            if pid and str(run).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
