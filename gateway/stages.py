"""Channels and stubs to the four stage services."""

from __future__ import annotations

import json

import grpc

from gateway.config import GatewayConfig
from services.common import tracing
from services.common.config import read_setting_file
from services.common.registry import STAGES
from talker.v1 import animator_pb2_grpc, asr_pb2_grpc, llm_pb2_grpc, tts_pb2_grpc

# Retries: only for calls that are safe to repeat. ListVoices and RegisterAvatar are
# unary and idempotent (registering the same image gives the same id), so a transient
# UNAVAILABLE (a replica restarting, a connection reset) is retried with backoff,
# possibly on another replica. The streaming calls (Transcribe, Generate, Synthesize,
# Animate) are NOT retried: once a response message has arrived gRPC would not retry
# anyway, and before that a retry of Synthesize/Animate could repeat audio or frames
# the client has already been sent for earlier sentences, and a retried Transcribe
# would need the audio the gateway has already streamed. The turn fails instead,
# naming the stage, and the client asks again.
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SERVICE_CONFIG = json.dumps({
    # Balance calls over every address the target resolves to (headless Services
    # give one per pod); gRPC otherwise pins a channel to the first address.
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "talker.v1.TtsService", "method": "ListVoices"},
                 {"service": "talker.v1.AnimatorService", "method": "RegisterAvatar"}],
        "retryPolicy": _RETRY_POLICY,
    }],
})


def channel_options(max_message_bytes: int) -> list[tuple[str, object]]:
    return [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Re-resolve DNS promptly when replicas come and go.
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        # Fail fast when a stage is down instead of backing off for up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


def channel_credentials(config: GatewayConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials for the stage channels (with a client certificate for mTLS), or None."""
    if not config.tls_ca_file:
        return None
    ca = read_setting_file("TALKER_GATEWAY_TLS_CA_FILE", config.tls_ca_file)
    key = cert = None
    if config.tls_client_cert_file:
        cert = read_setting_file("TALKER_GATEWAY_TLS_CLIENT_CERT_FILE", config.tls_client_cert_file)
        key = read_setting_file("TALKER_GATEWAY_TLS_CLIENT_KEY_FILE", config.tls_client_key_file)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class StageClients:
    def __init__(self, config: GatewayConfig, max_message_bytes: int):
        opts = channel_options(max_message_bytes)
        if config.tls_server_name:
            opts.append(("grpc.ssl_target_name_override", config.tls_server_name))
        credentials = channel_credentials(config)

        def channel(target: str) -> grpc.aio.Channel:
            if credentials is None:
                return grpc.aio.insecure_channel(target, options=opts, interceptors=tracing.client_interceptors())
            return grpc.aio.secure_channel(target, credentials, options=opts,
                                           interceptors=tracing.client_interceptors())

        self.channels = {stage: channel(config.target(stage)) for stage in STAGES}
        self.asr = asr_pb2_grpc.AsrServiceStub(self.channels["asr"])
        self.llm = llm_pb2_grpc.LlmServiceStub(self.channels["llm"])
        self.tts = tts_pb2_grpc.TtsServiceStub(self.channels["tts"])
        self.animator = animator_pb2_grpc.AnimatorServiceStub(self.channels["animator"])

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
