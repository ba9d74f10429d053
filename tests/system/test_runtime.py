"""What the service runtime gives every process: health, reflection, metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.registry import SERVICES, STAGES
from stack.process import metric_sum
from talker.v1 import gateway_pb2

# The gRPC services (the web page serves HTTP: tests/web).
EXPECTED_SERVICES = {name: s.grpc_service for name, s in SERVICES.items() if s.grpc_port}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def test_health_went_from_not_serving_to_serving(stack):
    for name in STAGES:
        history = [h for h in stack.health_history[name] if h != "DOWN"]  # DOWN: not yet listening
        assert history[0] == "NOT_SERVING" and history[-1] == "SERVING", (name, stack.health_history[name])
    assert stack.health_history["gateway"][-1] == "SERVING"


@pytest.mark.parametrize("name", list(EXPECTED_SERVICES))
def test_reflection_lists_the_service(stack, channel_to, name):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel_to(name))
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=10)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {EXPECTED_SERVICES[name], "grpc.health.v1.Health"} <= names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is installed by make test")
@pytest.mark.parametrize("name", list(EXPECTED_SERVICES))
def test_metrics_pass_promtool(stack, name):
    text = scrape(stack.services[name].metrics_url)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(rf'^talker_build_info\{{.*service="{name}"', text, re.M)
    assert "process_resident_memory_bytes" in text


def test_grpc_metrics_move_after_a_turn(stack, gateway):
    before = {n: scrape(stack.services[n].metrics_url) for n in EXPECTED_SERVICES}
    list(gateway.Ask(gateway_pb2.AskRequest(text="Say hi.", config=gateway_pb2.SessionConfig(max_reply_tokens=16)),
                     timeout=120))
    after = {n: scrape(stack.services[n].metrics_url) for n in EXPECTED_SERVICES}
    for name in ("gateway", "llm", "tts", "animator"):
        service = EXPECTED_SERVICES[name]
        assert metric_sum(after[name], "grpc_server_handled_total", grpc_service=service) > \
            metric_sum(before[name], "grpc_server_handled_total", grpc_service=service), name
    assert 'talker_model_ready{stage="llm"} 1.0' in after["llm"]
