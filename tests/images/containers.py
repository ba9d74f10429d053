"""A built image started for real: `buildah run --isolation chroot` of a working container from it, on
free ports of the host network (chroot isolation shares it), stopped by SIGTERM to its process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from stack.process import ServiceProcess, free_port


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True).stdout.strip()


def image_config(ref: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", ref))["OCIv1"]["config"]


class Container:
    def __init__(self, name: str, ref: str, log: Path, env: dict[str, str] | None = None):
        self.name, self.ref, self.log = name, ref, log
        self.grpc_port, self.metrics_port, self.health_port = free_port(), free_port(), free_port()
        self.host = "127.0.0.1"
        self.ctr = buildah("from", "--pull-never", ref)
        self.proc: subprocess.Popen | None = None
        self.env = {"TALKER_GRPC_PORT": str(self.grpc_port), "TALKER_METRICS_PORT": str(self.metrics_port),
                    "TALKER_HEALTH_PORT": str(self.health_port), "TALKER_GRACE_SECONDS": "2", **(env or {})}

    target = ServiceProcess.target
    metrics_url = ServiceProcess.metrics_url

    def rootfs(self) -> Path:
        """The container's files, mounted on the host for inspection."""
        return Path(buildah("mount", self.ctr))

    def start(self) -> None:
        entrypoint = image_config(self.ref)["Entrypoint"]
        flags = [f for k, v in self.env.items() for f in ("-e", f"{k}={v}")]
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
