"""gRPC balancing across replicas: a gateway whose ASR target names two ASR processes spreads turns over
both (on Kubernetes the target is dns:///<release>-asr:50052 over a headless Service; here gRPC's static
multi-address target stands in for the DNS answer, with the same round_robin policy)."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.registry import STAGES
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.system.conftest import PORT_OFFSET

# +150..+170 from the test stack's offset: clear of it (+0), the deadline test (+100) and the
# Prometheus test's second ASR (+180).
ASR_OFFSETS = (PORT_OFFSET + 150, PORT_OFFSET + 160)
GATEWAY_OFFSET = PORT_OFFSET + 170
MAX_TURNS = 8


def transcribe_calls(metrics_url: str) -> float:
    """grpc_server_handled_total for Transcribe, summed over codes, from one ASR process."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "grpc_server_handled_total"
                    and sample.labels.get("grpc_method") == "Transcribe"):
                total += sample.value
    return total


@pytest.fixture(scope="module")
def two_asr(tmp_path_factory):
    stacks = [Stack(run_dir=tmp_path_factory.mktemp(f"asr{i}"), port_offset=off) for i, off in enumerate(ASR_OFFSETS)]
    try:
        for s in stacks:
            s.stop(("asr",))
            s.start(("asr",))
        for s in stacks:
            s.wait_serving(180, names=("asr",))
        yield [s.services["asr"] for s in stacks]
    finally:
        for s in stacks:
            s.stop(("asr",))


@pytest.fixture(scope="module")
def balanced_gateway(stack, two_asr, tmp_path_factory):
    """A gateway whose ASR target lists both ASR processes; its other stages are the test stack's."""
    env = {f"TALKER_GATEWAY_{s.upper()}_TARGET": stack.services[s].target for s in STAGES if s != "asr"}
    env["TALKER_GATEWAY_ASR_TARGET"] = "ipv4:" + ",".join(asr.target for asr in two_asr)
    gw = Stack(run_dir=tmp_path_factory.mktemp("rr-gateway"), port_offset=GATEWAY_OFFSET,
               service_env={"gateway": env})
    gw.stop(("gateway",))
    gw.start(("gateway",))
    try:
        gw.wait_serving(60, names=("gateway",))
        with grpc.insecure_channel(gw.services["gateway"].target,
                                   options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
            yield gateway_pb2_grpc.GatewayServiceStub(ch)
    finally:
        gw.stop(("gateway",))


@pytest.fixture(scope="module")
def question_wav(stack):
    return stack.speak("How far away is the moon?")


def test_spoken_turns_are_spread_over_both_asr_replicas(balanced_gateway, two_asr, question_wav):
    before = [transcribe_calls(asr.metrics_url) for asr in two_asr]
    turns = 0
    moved = [0.0, 0.0]
    # round_robin alternates between READY subchannels; a few turns must reach both.
    while turns < MAX_TURNS and (turns < 4 or not all(moved)):
        events = list(balanced_gateway.Ask(
            gateway_pb2.AskRequest(wav=question_wav, config=gateway_pb2.SessionConfig(max_reply_tokens=8)),
            timeout=120))
        summary = next(e.summary for e in events if e.WhichOneof("event") == "summary")
        assert summary.transcript.strip(), "the turn produced no transcript"
        turns += 1
        moved = [transcribe_calls(asr.metrics_url) - b for asr, b in zip(two_asr, before, strict=True)]
    assert all(m >= 1 for m in moved), f"after {turns} turns the ASR replicas handled {moved} Transcribe calls"
    assert sum(moved) == turns, f"{turns} turns, but the replicas handled {moved} Transcribe calls"
