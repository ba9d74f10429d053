"""Health check: asks grpc.health.v1 (service "") and exits 0 only when every target answers SERVING.

    healthcheck.py                       the container's own service (Docker HEALTHCHECK, compose): the
                                         health-only port TALKER_HEALTH_PORT, else TALKER_GRPC_PORT
    healthcheck.py HOST:PORT [...]       each target in turn (the chart's `helm test` pod)

Kubernetes probes do not use this: they speak gRPC health natively.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def status(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(targets: list[str]) -> int:
    if not targets:
        health = os.environ.get("TALKER_HEALTH_PORT", "").strip()
        port = health if health not in ("", "0") else os.environ.get("TALKER_GRPC_PORT", "").strip()
        if not port.isdigit():
            print("healthcheck: neither TALKER_HEALTH_PORT nor TALKER_GRPC_PORT is set", file=sys.stderr)
            return 1
        targets = [f"127.0.0.1:{port}"]
    failed = 0
    for target in targets:
        answer = status(target)
        print(f"healthcheck: {target} {answer}")
        failed += answer != "SERVING"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
