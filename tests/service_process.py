"""One service as a process from an environment of choice, on free ports.

For tests that need a service configured or installed apart from the shared stack
(``gateway.stack.Stack`` runs ``.venv/<service>`` on fixed ports): the vLLM and Coqui
environments, tiny models built by the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("TALKER_VENV_DIR", ROOT / ".venv"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples (Prometheus text format, labelled or not) whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


class ServiceProcess:
    def __init__(self, label: str, venv: str, module: str, log: Path, env: dict[str, str],
                 host: str = "127.0.0.1", grpc_port: int | None = None):
        self.label = label
        self.grpc_port, self.metrics_port = grpc_port or free_port(), free_port()
        self.log = log
        full = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE",
                    TALKER_HOST=host, TALKER_GRPC_PORT=str(self.grpc_port), TALKER_METRICS_PORT=str(self.metrics_port),
                    TALKER_GRACE_SECONDS="2")
        full.update(env)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([str(VENV / venv / "bin" / "python"), "-m", module], cwd=ROOT, env=full,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.channel = grpc.insecure_channel(f"{host}:{self.grpc_port}")

    def wait_serving(self, timeout: float) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.label} exited:\n{self.log.read_text()[-4000:]}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.label} not SERVING after {timeout} s:\n{self.log.read_text()[-4000:]}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def value(self, name: str, **labels: str) -> float:
        return metric_sum(self.metrics(), name, **labels)

    def stop(self, timeout: float = 30) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
