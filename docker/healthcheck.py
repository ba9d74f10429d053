"""Health check: asks grpc.health.v1 (service "") and exits 0 only when every target answers SERVING.

    healthcheck.py                       the container's own service (Docker HEALTHCHECK, compose): the
                                         health-only port TALKER_HEALTH_PORT, else TALKER_GRPC_PORT; an
                                         HTTP service (the web page) on its own port: GET /healthz
    healthcheck.py TARGET [...]          each target in turn (the chart's `helm test` pod): HOST:PORT asks
                                         gRPC health, an http:// URL wants 200

Kubernetes probes do not use this: they speak gRPC health (and HTTP for the web page) natively.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.registry import SERVICES


def status(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def http_status(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return "SERVING" if reply.status == 200 else f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return f"UNAVAILABLE ({exc})"


def own_http_url() -> str | None:
    """/healthz of this image's HTTP service (TALKER_MODULE names it), on TALKER_<NAME>_PORT or its default."""
    module = os.environ.get("TALKER_MODULE", "")
    service = next((s for s in SERVICES.values() if s.module == module and s.http_port), None)
    if service is None:
        return None
    port = os.environ.get(f"TALKER_{service.name.upper()}_PORT", "").strip() or str(service.http_port)
    return f"http://127.0.0.1:{port}/healthz"


def main(targets: list[str]) -> int:
    url = None if targets else own_http_url()
    if url:
        answer = http_status(url)
        print(f"healthcheck: {url} {answer}")
        return 0 if answer == "SERVING" else 1
    if not targets:
        health = os.environ.get("TALKER_HEALTH_PORT", "").strip()
        port = health if health not in ("", "0") else os.environ.get("TALKER_GRPC_PORT", "").strip()
        if not port.isdigit():
            print("healthcheck: neither TALKER_HEALTH_PORT nor TALKER_GRPC_PORT is set", file=sys.stderr)
            return 1
        targets = [f"127.0.0.1:{port}"]
    failed = 0
    for target in targets:
        answer = http_status(target) if target.startswith(("http://", "https://")) else status(target)
        print(f"healthcheck: {target} {answer}")
        failed += answer != "SERVING"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
