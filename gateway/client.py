"""Client-side connection settings for the gateway (and the health checks of the local stack).

From the environment (or explicit arguments, e.g. the ``talker`` CLI's flags):

    TALKER_CLIENT_TLS_CA_FILE      verify the server against this CA (turns TLS on)
    TALKER_CLIENT_TLS_CERT_FILE    a client certificate and its key, for mutual TLS
    TALKER_CLIENT_TLS_KEY_FILE
    TALKER_CLIENT_TLS_SERVER_NAME  name to verify instead of the target's host
    TALKER_API_KEY                 sent as ``authorization: Bearer <key>``
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.audio import float_to_pcm16

MICROPHONE_CHUNK_SECONDS = 0.02  # what a microphone callback delivers


@dataclasses.dataclass(frozen=True)
class ClientSecurity:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    api_key: str = dataclasses.field(default="", repr=False)  # never printed

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> ClientSecurity:
        env = os.environ if env is None else env
        values = {
            "ca_file": env.get("TALKER_CLIENT_TLS_CA_FILE", ""),
            "cert_file": env.get("TALKER_CLIENT_TLS_CERT_FILE", ""),
            "key_file": env.get("TALKER_CLIENT_TLS_KEY_FILE", ""),
            "server_name": env.get("TALKER_CLIENT_TLS_SERVER_NAME", ""),
            "api_key": env.get("TALKER_API_KEY", ""),
        }
        values.update({k: v for k, v in overrides.items() if v})
        return cls(**values)

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.ca_file:
            return None

        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()
        cert = read(self.cert_file) if self.cert_file else None
        key = read(self.key_file) if self.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_file), private_key=key,
                                            certificate_chain=cert)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()

    def channel(self, target: str, options: list | None = None) -> grpc.Channel:
        """A blocking channel to ``target``; calls need ``metadata=self.metadata()`` for the key."""
        options = list(options or [])
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        creds = self.credentials()
        if creds is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, creds, options=options)


def microphone_chunks(samples: np.ndarray, rate: int, speed: float = 1.0,
                      chunk_seconds: float = MICROPHONE_CHUNK_SECONDS) -> Iterator[bytes]:
    """PCM16 chunks of float32 ``samples``, each yielded when a live microphone would deliver it
    (``speed`` > 1 plays faster than real time)."""
    step = max(1, int(chunk_seconds * rate))
    t0 = time.monotonic()
    for i in range(0, samples.size, step):
        wait = t0 + (i / rate) / speed - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield float_to_pcm16(samples[i:i + step])


def health(channel: grpc.Channel, timeout: float = 1.0, metadata=()) -> str:
    """A server's overall health: SERVING, NOT_SERVING, DOWN (nothing answers) or the error code's name."""
    try:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                         timeout=timeout, metadata=metadata)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    except grpc.RpcError as exc:
        return "DOWN" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name
