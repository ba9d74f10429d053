"""Container health check (Docker HEALTHCHECK, docker-compose): asks the service's own gRPC health
service (grpc.health.v1, service "") and exits 0 only when it answers SERVING.

Kubernetes does not use this: its probes speak gRPC health natively.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    port = os.environ.get("TALKER_GRPC_PORT", "").strip()
    if not port.isdigit():
        print("healthcheck: TALKER_GRPC_PORT is not set", file=sys.stderr)
        return 1
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        except grpc.RpcError as exc:
            print(f"healthcheck: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"healthcheck: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
