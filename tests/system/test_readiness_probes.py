"""Readiness follows saturation on the chart's default settings: the ASR service runs with the
environment `helm template` renders for it (ports moved to free ones), its concurrency limit is filled
with open streams, and the probes are asked exactly as the Deployment declares them. Readiness (the
stage's own service on the health-only port) turns NOT_SERVING, liveness stays SERVING, while a health
check on the main port is refused: the limit it shares is why the probes have their own port."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.process import ROOT, ServiceProcess, free_port
from talker.v1 import asr_pb2, asr_pb2_grpc

pytestmark = pytest.mark.system

HELM = os.environ.get("HELM", str(ROOT / ".venv" / "tools" / "bin" / "helm"))


def rendered(deployment: str) -> dict:
    out = subprocess.run([HELM, "template", "talker", str(ROOT / "helm" / "talker"), "--namespace", "talker"],
                         check=True, capture_output=True, text=True).stdout
    dep = next(d for d in yaml.safe_load_all(out)
               if d and d["kind"] == "Deployment" and d["metadata"]["name"] == deployment)
    return dep["spec"]["template"]["spec"]["containers"][0]


def check(port: int, service: str) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def wait_for(port: int, service: str, want: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while (got := check(port, service)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


@pytest.mark.skipif(not os.path.exists(HELM), reason="helm comes from make k8s-tools")
def test_default_chart_probes_take_a_saturated_replica_out_of_rotation_but_keep_it_live(tmp_path):
    container = rendered("talker-asr")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready, live = container["readinessProbe"]["grpc"], container["livenessProbe"]["grpc"]
    # As rendered: both probes on the health-only port, readiness on the stage's own service.
    assert ready["port"] == live["port"] == ports["health"] == int(env["TALKER_HEALTH_PORT"]) != ports["grpc"]
    assert ready.get("service") == "talker.v1.AsrService" and live.get("service", "") == ""
    limit = int(env.get("TALKER_MAX_CONCURRENT_RPCS", "16"))
    health_port = free_port()
    for name in ("TALKER_GRPC_PORT", "TALKER_METRICS_PORT", "TALKER_HOST", "TALKER_METRICS_HOST"):
        env.pop(name, None)
    env["TALKER_HEALTH_PORT"] = str(health_port)
    asr = ServiceProcess("asr", "services.asr", tmp_path / "asr.log", env=env).start()
    release = threading.Event()
    calls = []

    def held_open():
        yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=16000))
        release.wait(60)

    try:
        asr.wait_serving(180)
        assert check(health_port, ready["service"]) == "SERVING"
        stub = asr_pb2_grpc.AsrServiceStub(asr.channel)
        calls = [stub.Transcribe(held_open(), timeout=60) for _ in range(limit)]
        assert wait_for(health_port, ready["service"], "NOT_SERVING") == "NOT_SERVING", "saturated but still ready"
        assert check(health_port, "") == "SERVING", "saturation must not fail liveness"
        with pytest.raises(grpc.RpcError) as err:
            check(asr.grpc_port, "")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "a probe on the main port shares its limit"
        release.set()
        for call in calls:
            call.cancel()
        assert wait_for(health_port, ready["service"], "SERVING") == "SERVING", "not ready again after the calls"
    finally:
        release.set()
        for call in calls:
            call.cancel()
        asr.stop()
