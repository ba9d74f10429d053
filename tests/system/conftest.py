"""The system-test stack: all five services as real processes on their real models."""

from __future__ import annotations

import os
import time

import grpc
import pytest

from stack.local import Stack
from talker.v1 import gateway_pb2_grpc
from tests.otlp_receiver import Receiver

# Ports well away from a stack started by `make up`, so tests and a demo can coexist.
PORT_OFFSET = int(os.environ.get("TALKER_TEST_PORT_OFFSET", "300"))


@pytest.fixture(scope="session")
def otlp():
    """Receives the spans every service of the test stack exports."""
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, otlp):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}", "OTEL_EXPORTER_OTLP_INSECURE": "true",
           "OTEL_BSP_SCHEDULE_DELAY": "200"}
    s = Stack(run_dir=tmp_path_factory.mktemp("stack"), port_offset=PORT_OFFSET, env=env)
    s.stop()
    s.start()
    seen: dict[str, list[str]] = {name: [] for name in s.services}  # the gRPC services (no web page)
    deadline = time.monotonic() + 300
    try:
        # Record every health state each service passes through until all are SERVING.
        while any(not v or v[-1] != "SERVING" for v in seen.values()):
            for name in s.services:
                if seen[name] and seen[name][-1] == "SERVING":
                    continue
                if s.services[name].pid() is None:
                    pytest.fail(f"{name} exited during start-up:\n{s.services[name].log_file.read_text()[-3000:]}")
                state = s.health(name, timeout=0.5)
                if not seen[name] or seen[name][-1] != state:
                    seen[name].append(state)
            if time.monotonic() > deadline:
                pytest.fail(f"stack not SERVING after 300 s: {seen}")
            time.sleep(0.05)
        s.health_history = seen
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def gateway(stack):
    channel = grpc.insecure_channel(stack.services["gateway"].target,
                                    options=[("grpc.max_receive_message_length", 64 << 20)])
    yield gateway_pb2_grpc.GatewayServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def channel_to(stack):
    channels = []

    def open_(name: str) -> grpc.Channel:
        ch = grpc.insecure_channel(stack.services[name].target)
        channels.append(ch)
        return ch

    yield open_
    for ch in channels:
        ch.close()
