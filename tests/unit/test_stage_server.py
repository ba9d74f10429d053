"""The service runtime built, started, loaded and drained in-process, twice in one process."""

from __future__ import annotations

import asyncio
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common.config import ServerConfig
from services.common.server import LoadedModel, Stage, StageServer
from talker.v1 import tts_pb2, tts_pb2_grpc
from tests.fake_stages import FakeTts, Record, Script


class FakeTtsStage(Stage):
    """The fake TTS servicer as a stage whose model loads when the test says so."""

    name = "tts"
    service_names = ("talker.v1.TtsService",)

    def __init__(self):
        self.loaded = threading.Event()

    def add_to_server(self, server):
        tts_pb2_grpc.add_TtsServiceServicer_to_server(FakeTts(Script(), Record()), server)

    def load(self) -> LoadedModel:
        self.loaded.wait(5)
        return LoadedModel(backend="fake", model="tone")


def test_two_servers_in_one_process_each_with_its_own_registry():
    async def one(registry: CollectorRegistry):
        stage = FakeTtsStage()
        server = StageServer(stage, ServerConfig(grace_seconds=0), registry)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(channel)
        tts = tts_pb2_grpc.TtsServiceStub(channel)
        states = [(await health.Check(health_pb2.HealthCheckRequest(service="talker.v1.TtsService"))).status]
        try:  # refused while the model loads
            [r async for r in tts.Synthesize(tts_pb2.SynthesizeRequest(text="Hi."))]
            refusal = None
        except grpc.aio.AioRpcError as exc:
            refusal = exc
        stop = asyncio.Event()
        loading = asyncio.ensure_future(server.load(stop))
        stage.loaded.set()
        assert await loading
        states.append((await health.Check(health_pb2.HealthCheckRequest(service="talker.v1.TtsService"))).status)
        chunks = [r async for r in tts.Synthesize(tts_pb2.SynthesizeRequest(text="Hi."))]
        await server.drain()
        await channel.close()
        return states, refusal, chunks

    async def main():
        registries = [CollectorRegistry(), CollectorRegistry()]
        return [await one(r) for r in registries], registries

    results, registries = asyncio.run(main())
    for (states, refusal, chunks), registry in zip(results, registries, strict=True):
        assert states == [health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING]
        assert refusal.code() == grpc.StatusCode.UNAVAILABLE and "still loading" in refusal.details()
        assert len(chunks) == 2
        labels = {"grpc_type": "SERVER_STREAM", "grpc_service": "talker.v1.TtsService", "grpc_method": "Synthesize"}
        assert registry.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 1
        assert registry.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "Unavailable"}) == 1
        assert registry.get_sample_value("grpc_server_msg_sent_total", labels) == 2
        assert registry.get_sample_value("talker_model_info", {"stage": "tts", "backend": "fake", "model": "tone",
                                                               "device": "cpu"}) == 1
