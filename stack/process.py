"""One service as a process from its environment: ports (given or free), start, wait for SERVING, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc

from gateway.client import health

ROOT = Path(__file__).resolve().parent.parent


def venv_dir() -> Path:
    """Where the environments live: .venv/<name> (TALKER_VENV_DIR overrides)."""
    return Path(os.environ.get("TALKER_VENV_DIR", ROOT / ".venv"))


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
    """``python -m <module>`` from ``<venv dir>/<venv>``, its output in ``log_file``.

    Ports default to free ones; with a ``pid_file`` another process (``talker down``) finds it again.
    """

    def __init__(self, name: str, module: str, log_file: Path, venv: str | None = None,
                 grpc_port: int | None = None, metrics_port: int | None = None, pid_file: Path | None = None,
                 env: dict[str, str] | None = None, python: Path | None = None, host: str = "127.0.0.1"):
        self.name = name
        self.host = host  # the loopback address it listens on (TALKER_HOST)
        self.module = module
        self.venv = venv or name
        self._python = python
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.log_file = Path(log_file)
        self.pid_file = pid_file
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self._channel: grpc.Channel | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def python(self) -> Path:
        return self._python or venv_dir() / self.venv / "bin" / "python"

    @property
    def channel(self) -> grpc.Channel:
        """A plaintext channel to the service (for tests' stubs), closed by stop()."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target, options=[("grpc.max_receive_message_length",
                                                                         64 << 20)])
        return self._channel

    def process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TALKER_HOST": self.host,
            "TALKER_GRPC_PORT": str(self.grpc_port),
            "TALKER_METRICS_PORT": str(self.metrics_port),
            # CTranslate2 and llama.cpp spin-wait by default; on a small machine that starves the others.
            "OMP_WAIT_POLICY": "PASSIVE",
        })
        # Model threads come and go per request; glibc's default of one malloc arena per core x 8
        # lets freed buffers pile up in arenas no thread returns to (the images set the same).
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.update(self.env)
        return env

    def start(self) -> ServiceProcess:
        if not self.python.exists():
            raise RuntimeError(f"{self.name}: {self.python} is missing; run `make setup` first")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen([str(self.python), "-m", self.module], cwd=ROOT, env=self.process_env(),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if self.pid_file:
            self.pid_file.write_text(str(self.proc.pid))
        return self

    def pid(self) -> int | None:
        """The running process's id, or None (it exited, or was never started)."""
        if self.proc is not None:
            return None if self.proc.poll() is not None else self.proc.pid
        if self.pid_file is None:
            return None
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def health(self, timeout: float = 1.0) -> str:
        return health(self.channel, timeout)

    def wait_serving(self, timeout: float = 300.0) -> float:
        """Seconds until SERVING; RuntimeError (with the log's tail) if it exits or takes longer."""
        t0 = time.monotonic()
        while self.health(timeout=1.0) != "SERVING":
            if self.pid() is None:
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.name} not SERVING after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)
        return time.monotonic() - t0

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            return r.read().decode()

    def value(self, name: str, **labels: str) -> float:
        return metric_sum(self.metrics(), name, **labels)

    def terminate(self) -> None:
        """SIGTERM: the service drains and exits (see stop())."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        self.terminate()
        deadline = time.monotonic() + timeout
        while self.pid() and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            if self.proc is not None:
                self.proc.wait()
        if self.pid_file:
            self.pid_file.unlink(missing_ok=True)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
