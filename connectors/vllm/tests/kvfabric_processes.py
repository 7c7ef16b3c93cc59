"""Real kvfabric-metaserver and kvfabric-node processes for the connector's tests: the repository's bin entries
(node_modules/.bin after `npm ci`, running the compiled dist/), on loopback ports and socket paths chosen at run
time, stopped when the test ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / "node_modules/.bin"
NODE_BIN = BIN / "kvfabric-node"
METASERVER_BIN = BIN / "kvfabric-metaserver"
CLI_BIN = BIN / "kvfabric"
BUILT = [REPO / "apps/node/dist/main.js", REPO / "apps/metaserver/dist/main.js", REPO / "apps/cli/dist/bundle"]
READY_TRIES = 300  # x 0.05 s


def require_built() -> None:
    missing = [str(p) for p in (NODE_BIN, METASERVER_BIN, CLI_BIN, *BUILT) if not p.exists()]
    if missing:
        raise RuntimeError(f"kvfabric is not installed and built ({', '.join(missing)} missing): run `npm ci` first")


def free_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return res.read().decode()


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"kvf-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (open for the process lifetime)
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, http_addr: str) -> None:
        for _ in range(READY_TRIES):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if http_get(f"http://{http_addr}/health", 0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not healthy on {http_addr}:\n{self.logs()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Metaserver:
    def __init__(self):
        require_built()
        self.addr, self.http_addr = free_addr(), free_addr()
        self.proc = Process(
            "metaserver",
            [str(METASERVER_BIN), "--addr", self.addr, "--http-addr", self.http_addr, "--node-stale-secs", "5"],
        )
        self.proc.wait_healthy(self.http_addr)

    def stop(self) -> None:
        self.proc.stop()


class Node:
    def __init__(
        self,
        metaserver: Metaserver | None = None,
        pool_size: str = "128mib",
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        require_built()
        self.dir = tempfile.mkdtemp(prefix="kvf-node-")
        self.engine_socket = os.path.join(self.dir, "engine.sock")
        self.addr, self.http_addr = free_addr(), free_addr()
        args = [
            str(NODE_BIN),
            "--addr",
            self.addr,
            "--http-addr",
            self.http_addr,
            "--engine-socket",
            self.engine_socket,
            "--pool-size",
            pool_size,
            "--transport",
            "tcp",
            "--heartbeat-interval-secs",
            "0.2",
            *(["--metaserver-addr", metaserver.addr] if metaserver else []),
            *(extra or []),
        ]
        self.proc = Process("node", args, env)
        self.proc.wait_healthy(self.http_addr)

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on GET /metrics."""
        total = 0.0
        for line in http_get(f"http://{self.http_addr}/metrics").splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(predicate, what: str, tries: int = 200, pause_s: float = 0.05):
    """Polls a condition a bounded number of times; fails naming what never happened."""
    for _ in range(tries):
        value = predicate()
        if value:
            return value
        time.sleep(pause_s)
    raise AssertionError(f"gave up waiting for {what}")
