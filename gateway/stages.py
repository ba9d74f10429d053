"""Channels and stubs to the four stage services."""

from __future__ import annotations

import json

import grpc

from gateway.config import GatewayConfig
from services.common import tracing
from talker.v1 import animator_pb2_grpc, asr_pb2_grpc, llm_pb2_grpc, tts_pb2_grpc

# Balance calls over every address the target resolves to (headless Services
# give one per pod); gRPC otherwise pins a channel to the first address.
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options(max_message_bytes: int) -> list[tuple[str, object]]:
    return [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Re-resolve DNS promptly when replicas come and go.
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
    ]


class StageClients:
    def __init__(self, config: GatewayConfig, max_message_bytes: int):
        opts = channel_options(max_message_bytes)
        targets = {"asr": config.asr_target, "llm": config.llm_target, "tts": config.tts_target,
                   "animator": config.animator_target}
        self.channels = {
            stage: grpc.aio.insecure_channel(target, options=opts, interceptors=tracing.client_interceptors())
            for stage, target in targets.items()
        }
        self.asr = asr_pb2_grpc.AsrStub(self.channels["asr"])
        self.llm = llm_pb2_grpc.LlmStub(self.channels["llm"])
        self.tts = tts_pb2_grpc.TtsStub(self.channels["tts"])
        self.animator = animator_pb2_grpc.AnimatorStub(self.channels["animator"])

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
