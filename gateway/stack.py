"""The local stack: the five services as processes, each from its own environment.

Used by ``talker up/down/status`` and by the system tests. Each service runs
``python -m <module>`` from ``.venv/<service>`` with its ports, a log file
under the run directory and a pid file so ``down`` finds it again.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.client import ClientSecurity
from services.common.audio import pcm16_to_float, write_wav
from services.common.registry import SERVICES, STAGES
from talker.v1 import tts_pb2, tts_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent



@dataclasses.dataclass
class ServiceProcess:
    name: str
    grpc_port: int
    metrics_port: int
    pid_file: Path
    log_file: Path
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def pid(self) -> int | None:
        if self.proc is not None and self.proc.poll() is not None:
            return None  # our child has exited (and is reaped)
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None


class Stack:
    def __init__(self, run_dir: Path | None = None, port_offset: int = 0, venv_dir: Path | None = None,
                 env: dict[str, str] | None = None, service_env: dict[str, dict[str, str]] | None = None,
                 client: ClientSecurity | None = None):
        self.run_dir = Path(run_dir or ROOT / "out" / "stack")
        self.venv_dir = Path(venv_dir or os.environ.get("TALKER_VENV_DIR", ROOT / ".venv"))
        self.env = dict(env or {})  # for every service
        self.per_service = {k: dict(v) for k, v in (service_env or {}).items()}
        # How health checks (and callers of channel()) reach the services: TLS/mTLS when they serve it.
        self.client = client or ClientSecurity.from_env()
        self.services = {
            name: ServiceProcess(name, s.grpc_port + port_offset, s.metrics_port + port_offset,
                                 self.run_dir / f"{name}.pid", self.run_dir / f"{name}.log")
            for name, s in SERVICES.items()
        }

    def python(self, name: str) -> Path:
        return self.venv_dir / name / "bin" / "python"

    def service_env(self, name: str) -> dict[str, str]:
        svc = self.services[name]
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TALKER_GRPC_PORT": str(svc.grpc_port),
            "TALKER_METRICS_PORT": str(svc.metrics_port),
            # CTranslate2 and llama.cpp spin-wait by default; on a small machine that starves the others.
            "OMP_WAIT_POLICY": "PASSIVE",
        })
        if name == "asr":
            # Whisper decodes while the rest of its turn waits for the transcript, so it may use both cores.
            env["TALKER_THREADS"] = os.environ.get("TALKER_ASR_THREADS", "2")
        if name == "gateway":
            for stage in STAGES:
                env[f"TALKER_GATEWAY_{stage.upper()}_TARGET"] = self.services[stage].target
        # Model threads come and go per request; glibc's default of one malloc arena per core x 8
        # lets freed buffers pile up in arenas no thread returns to (the images set the same).
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.update(self.env)
        env.update(self.per_service.get(name, {}))
        return env

    def start(self, names: tuple[str, ...] | None = None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in names or tuple(SERVICES):
            svc = self.services[name]
            if svc.pid():
                continue
            python = self.python(name)
            if not python.exists():
                raise SystemExit(f"{name}: {python} is missing; run `make setup` first")
            log = open(svc.log_file, "ab")
            proc = subprocess.Popen([str(python), "-m", SERVICES[name].module], cwd=ROOT, env=self.service_env(name),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            svc.proc = proc
            svc.pid_file.write_text(str(proc.pid))

    def channel(self, name: str, options: list | None = None) -> grpc.Channel:
        return self.client.channel(self.services[name].target, options)

    def speak(self, text: str, timeout: float = 60.0) -> bytes:
        """``text`` spoken by the stack's TTS service, as a WAV file: a question for tests and benchmarks."""
        with self.channel("tts") as ch:
            request = tts_pb2.SynthesizeRequest(text=text)
            chunks = list(tts_pb2_grpc.TtsServiceStub(ch).Synthesize(request, timeout=timeout))
        return write_wav(pcm16_to_float(b"".join(c.audio.pcm for c in chunks)), chunks[0].audio.sample_rate)

    def health(self, name: str, timeout: float = 1.0) -> str:
        with self.channel(name) as ch:
            try:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""),
                                                            timeout=timeout)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.RpcError as exc:
                return "DOWN" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name

    def wait_serving(self, timeout: float = 300.0, names: tuple[str, ...] | None = None, progress=None) -> None:
        pending = set(names or SERVICES)
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                svc = self.services[name]
                if svc.pid() is None:
                    tail = svc.log_file.read_text(errors="replace")[-2000:] if svc.log_file.exists() else ""
                    raise RuntimeError(f"{name} exited during start-up; last log lines:\n{tail}")
                if self.health(name) == "SERVING":
                    pending.discard(name)
                    if progress:
                        progress(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {timeout:.0f} s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.25)

    def stop(self, names: tuple[str, ...] | None = None, timeout: float = 20.0) -> None:
        order = names or ("gateway", *STAGES)
        for name in order:
            pid = self.services[name].pid()
            if pid:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in order:
            svc = self.services[name]
            while svc.pid() and time.monotonic() < deadline:
                time.sleep(0.1)
            pid = svc.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            svc.pid_file.unlink(missing_ok=True)


