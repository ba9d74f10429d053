"""The services of Talker, in one table: names, modules, environments and default ports.

Everything in Python that needs the list of services or their ports reads it from
here: the service entry points, the gateway's default stage targets, the local stack
(``talker up``), the tests and the benchmarks. The Helm chart keeps its own values
(YAML) and a chart test checks them against this table. Adding a service means adding
a row here (and its values in the chart).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    module: str                  # run as `python -m <module>` from .venv/<name>
    metrics_port: int
    grpc_port: int | None        # None: no gRPC server of its own (e.g. a gRPC client with an HTTP face)
    grpc_service: str = ""       # the gRPC service it serves (health, reflection), e.g. talker.v1.AsrService
    http_port: int | None = None  # a public HTTP port, if it has one
    stage: bool = False          # a model stage the gateway calls, in pipeline order

    @property
    def venv(self) -> str:
        return self.name


SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("gateway", "gateway", grpc_port=50051, metrics_port=9101, grpc_service="talker.v1.GatewayService"),
    Service("asr", "services.asr", grpc_port=50052, metrics_port=9102, grpc_service="talker.v1.AsrService",
            stage=True),
    Service("llm", "services.llm", grpc_port=50053, metrics_port=9103, grpc_service="talker.v1.LlmService",
            stage=True),
    Service("tts", "services.tts", grpc_port=50054, metrics_port=9104, grpc_service="talker.v1.TtsService",
            stage=True),
    Service("animator", "services.animator", grpc_port=50055, metrics_port=9105,
            grpc_service="talker.v1.AnimatorService", stage=True),
)}

#: The model stages in pipeline order: ASR -> LLM -> TTS -> animator.
STAGES: tuple[str, ...] = tuple(name for name, s in SERVICES.items() if s.stage)


def local_target(name: str, port_offset: int = 0) -> str:
    """host:port of a service's gRPC server on this machine."""
    port = SERVICES[name].grpc_port
    if port is None:
        raise ValueError(f"{name} has no gRPC port")
    return f"127.0.0.1:{port + port_offset}"


if __name__ == "__main__":
    # `python -m services.common.registry` prints the service names, for the Makefile.
    print(" ".join(SERVICES))
