"""A throwaway Ray cluster on 127.0.0.1 for the tests (`ray_cluster` in conftest) and bench/ray_sweep.py."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY_CLI = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """A Ray cluster on 127.0.0.1: a head with `head_cpus` CPUs and, with `worker_node`, a second node of one CPU
    joined to it (two raylets on one machine, as two machines would have). Each node is a `ray start --block` process
    started in a session of its own, so stopping it (its process group) ends every process Ray started for it, and
    nothing else. Kept small (1–2 CPUs, a 200 MB object store): the machine is shared."""

    def __init__(self, head_cpus: int = 1, worker_node: bool = True) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        self.nodes: list[subprocess.Popen] = []
        common = ["--block", "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 * 10**6),
                  "--disable-usage-stats"]
        self._start("head", ["--head", "--port", str(self.port), "--num-cpus", str(head_cpus),
                             "--include-dashboard", "false", "--temp-dir", self.temp, *common])
        self._wait_for_head()
        if worker_node:
            self._start("worker", ["--address", self.address, "--num-cpus", "1", *common])
            self._wait_for_nodes(2)

    def _start(self, name: str, args: list[str]) -> None:
        log = open(Path(self.temp) / f"{name}.out", "w")
        self.nodes.append(subprocess.Popen([str(RAY_CLI), "start", *args], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def _status(self) -> str:
        done = subprocess.run([str(RAY_CLI), "status", "--address", self.address], env=self.env, capture_output=True,
                              text=True, timeout=60)
        return done.stdout if done.returncode == 0 else ""

    def _wait_for_head(self) -> None:
        deadline = time.monotonic() + 120
        while not self._status():
            if time.monotonic() > deadline or self.nodes[0].poll() is not None:
                self.stop()
                raise RuntimeError(f"the Ray head did not start: {(Path(self.temp) / 'head.out').read_text()[-2000:]}")
            time.sleep(1)

    def _wait_for_nodes(self, n: int) -> None:
        deadline = time.monotonic() + 120
        while self._status().count("node_") < n:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Ray worker node did not join: {self._status()[-2000:]}")
            time.sleep(1)

    def kill_head(self) -> None:
        """The head node dies at once (SIGKILL to its every process): the cluster is gone."""
        os.killpg(self.nodes[0].pid, signal.SIGKILL)
        self.nodes[0].wait()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        # Nodes often outlive SIGTERM by 30 s and more; what has not ended within 10 s (all together) is killed, as
        # nothing of a test's cluster is kept.
        deadline = time.monotonic() + 10
        for node in self.nodes:
            try:
                node.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
