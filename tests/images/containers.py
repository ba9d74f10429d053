"""A built image started for real: `buildah run --isolation chroot` of a working container from it, on
free ports of the host network (chroot isolation shares it), stopped by SIGTERM to its process group.
A gRPC service gets its gRPC, metrics and health ports; an HTTP service (the web page) its HTTP and
metrics ports (TALKER_<NAME>_PORT, TALKER_<NAME>_METRICS_PORT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from services.common.registry import SERVICES
from stack.process import ServiceProcess, free_port


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True).stdout.strip()


def image_config(ref: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", ref))["OCIv1"]["config"]


class Container:
    def __init__(self, name: str, ref: str, log: Path, env: dict[str, str] | None = None,
                 volumes: tuple[str, ...] = ()):
        self.name, self.ref, self.log, self.volumes = name, ref, log, volumes
        self.grpc_port, self.metrics_port, self.health_port = free_port(), free_port(), free_port()
        self.host = "127.0.0.1"
        service = SERVICES[name.split("-", 1)[0]]
        self.http = service.http_port is not None
        if self.http:
            ports = {f"TALKER_{service.name.upper()}_PORT": self.grpc_port,
                     f"TALKER_{service.name.upper()}_METRICS_PORT": self.metrics_port}
        else:
            ports = {"TALKER_GRPC_PORT": self.grpc_port, "TALKER_METRICS_PORT": self.metrics_port,
                     "TALKER_HEALTH_PORT": self.health_port}
        self.ctr = buildah("from", "--pull-never", ref)
        self.proc: subprocess.Popen | None = None
        self.env = {**{k: str(v) for k, v in ports.items()}, "TALKER_GRACE_SECONDS": "2", **(env or {})}

    target = ServiceProcess.target
    metrics_url = ServiceProcess.metrics_url

    def url(self, path: str) -> str:
        """An HTTP service's URL (its port is the one a gRPC service would have)."""
        return f"http://{self.host}:{self.grpc_port}{path}"

    def rootfs(self) -> Path:
        """The container's files, mounted on the host for inspection."""
        return Path(buildah("mount", self.ctr))

    def start(self) -> None:
        entrypoint = image_config(self.ref)["Entrypoint"]
        flags = [f for k, v in self.env.items() for f in ("-e", f"{k}={v}")]
        flags += [f for v in self.volumes for f in ("-v", v)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["buildah", "run", "--isolation", "chroot", *flags, self.ctr, "--",
                                          *entrypoint], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        subprocess.run(["buildah", "umount", self.ctr], capture_output=True)
        subprocess.run(["buildah", "rm", self.ctr], capture_output=True)


def run_once(ref: str, args: list[str], volumes: tuple[str, ...] = (), env: dict[str, str] | None = None,
             timeout: float = 600) -> str:
    """One command in a fresh container of the image (its own user, host network), its output."""
    flags = [f for v in volumes for f in ("-v", v)] + [f for k, v in (env or {}).items() for f in ("-e", f"{k}={v}")]
    ctr = buildah("from", "--pull-never", ref)
    try:
        done = subprocess.run(["buildah", "run", "--isolation", "chroot", *flags, ctr, "--", *args],
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{ref}: {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
        return done.stdout
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
