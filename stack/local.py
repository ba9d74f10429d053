"""The local stack: every service of the registry as a process, each from its own environment.

Used by ``talker up/down/status``, the system tests and the benchmarks. Each service runs
``python -m <module>`` from ``.venv/<service>`` on its registry ports (plus an offset), with a
log file under the run directory and a pid file so ``down`` finds it again.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from gateway.client import ClientSecurity
from services.common.audio import pcm16_to_float, write_wav
from services.common.registry import SERVICES, STAGES
from stack.process import ROOT, ServiceProcess, health
from talker.v1 import tts_pb2, tts_pb2_grpc

# Inference threads per service on a small machine (TALKER_<SERVICE>_THREADS overrides; others take the
# service default, 1). Whisper decodes and the LLM reaches its first clause while the rest of the turn
# waits for them, so both may use the two cores. `bench.pipeline` runs, push-to-talk first frame p50 with
# `quality`: LLM on one thread 2.29 and 2.66 s, on two 1.92, 1.94 and 2.35 s (the machine's speed moved
# between runs as much), for the same CPU per turn (4.4-4.7 s).
LOCAL_THREADS = {"asr": "2", "llm": "2"}


class Stack:
    def __init__(self, run_dir: Path | None = None, port_offset: int = 0, env: dict[str, str] | None = None,
                 service_env: dict[str, dict[str, str]] | None = None, client: ClientSecurity | None = None,
                 web: bool = False):
        self.run_dir = Path(run_dir or ROOT / "out" / "stack")
        self.env = dict(env or {})  # for every service
        self.per_service = {k: dict(v) for k, v in (service_env or {}).items()}
        # How health checks (and callers of channel()) reach the services: TLS/mTLS when they serve it.
        self.client = client or ClientSecurity.from_env()
        # The gRPC services always; the web page (an HTTP service without a gRPC port: grpc_port here is
        # its HTTP port) only with web=True.
        self.services = {
            name: ServiceProcess(name, s.module, self.run_dir / f"{name}.log",
                                 grpc_port=(s.grpc_port or s.http_port) + port_offset,
                                 metrics_port=s.metrics_port + port_offset, pid_file=self.run_dir / f"{name}.pid")
            for name, s in SERVICES.items() if s.grpc_port is not None or (web and name == "web")
        }

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.services['web'].grpc_port}/"

    def service_env(self, name: str) -> dict[str, str]:
        """What the stack sets for a service on top of ServiceProcess's environment."""
        env: dict[str, str] = {}
        if name in LOCAL_THREADS:
            env["TALKER_THREADS"] = os.environ.get(f"TALKER_{name.upper()}_THREADS", LOCAL_THREADS[name])
        if name == "web":
            # On this machine only: localhost is a secure context, so browsers allow the microphone.
            svc = self.services["web"]
            env.update({"TALKER_WEB_HOST": "127.0.0.1", "TALKER_WEB_PORT": str(svc.grpc_port),
                        "TALKER_WEB_METRICS_HOST": "127.0.0.1", "TALKER_WEB_METRICS_PORT": str(svc.metrics_port),
                        "TALKER_WEB_GATEWAY_TARGET": self.services["gateway"].target})
        if name == "gateway":
            for stage in STAGES:
                env[f"TALKER_GATEWAY_{stage.upper()}_TARGET"] = self.services[stage].target
        env.update(self.env)
        env.update(self.per_service.get(name, {}))
        return env

    def start(self, names: tuple[str, ...] | None = None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in names or tuple(self.services):
            svc = self.services[name]
            if svc.pid():
                continue
            svc.env = self.service_env(name)
            try:
                svc.start()
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None

    def channel(self, name: str, options: list | None = None) -> grpc.Channel:
        return self.client.channel(self.services[name].target, options)

    def speak(self, text: str, timeout: float = 60.0) -> bytes:
        """``text`` spoken by the stack's TTS service, as a WAV file: a question for tests and benchmarks."""
        with self.channel("tts") as ch:
            request = tts_pb2.SynthesizeRequest(text=text)
            chunks = list(tts_pb2_grpc.TtsServiceStub(ch).Synthesize(request, timeout=timeout))
        return write_wav(pcm16_to_float(b"".join(c.audio.pcm for c in chunks)), chunks[0].audio.sample_rate)

    def health(self, name: str, timeout: float = 1.0) -> str:
        if name == "web":
            try:
                with urllib.request.urlopen(self.web_url + "readyz", timeout=timeout):
                    return "SERVING"
            except urllib.error.HTTPError:
                return "NOT_SERVING"
            except OSError:
                return "DOWN"
        with self.channel(name) as ch:
            return health(ch, timeout)

    def wait_serving(self, timeout: float = 300.0, names: tuple[str, ...] | None = None, progress=None) -> None:
        pending = set(names or self.services)
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                svc = self.services[name]
                if svc.pid() is None:
                    raise RuntimeError(f"{name} exited during start-up; last log lines:\n{svc.log_tail(2000)}")
                if self.health(name) == "SERVING":
                    pending.discard(name)
                    if progress:
                        progress(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {timeout:.0f} s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.25)

    def stop(self, names: tuple[str, ...] | None = None, timeout: float = 20.0) -> None:
        """SIGTERM to all (the web page and the gateway first), then SIGKILL what is left after ``timeout`` seconds."""
        first = tuple(n for n in ("web", "gateway") if n in self.services)
        order = names or (*first, *(n for n in self.services if n not in first))
        for name in order:
            self.services[name].terminate()
        deadline = time.monotonic() + timeout
        for name in order:
            self.services[name].stop(max(0.0, deadline - time.monotonic()))
