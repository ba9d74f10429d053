"""The built images, started for real (`make test-images`): each reaches SERVING with its model loaded,
serves /metrics and answers a request. One spoken turn goes through all five containers (gateway ->
ASR -> LLM -> TTS -> animator), and each image's own metrics must show that it answered its part.
Every failure names the image and the step. The images come from TALKER_TEST_IMAGES
("name=ref name=ref ...", set by make), so these tests run only there."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.process import metric_sum
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.images.containers import Container, image_config

IMAGES = dict(item.split("=", 1) for item in os.environ.get("TALKER_TEST_IMAGES", "").split())
if not IMAGES:
    pytest.skip("TALKER_TEST_IMAGES is not set: run `make test-images`", allow_module_level=True)

STAGES = ("asr", "llm", "tts", "animator")
# The RPC each stage answers during a turn.
METHODS = {"gateway": "Ask", "asr": "Transcribe", "llm": "Generate", "tts": "Synthesize", "animator": "Animate"}
SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech.wav"
START_TIMEOUT = float(os.environ.get("TALKER_TEST_IMAGE_START_TIMEOUT", "300"))


def service_of(name: str) -> str:
    return name.split("-", 1)[0]


def health(port: int, service: str = "") -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def scrape(c: Container) -> str:
    return urllib.request.urlopen(c.metrics_url, timeout=5).read().decode()


@pytest.fixture(scope="module")
def containers(tmp_path_factory):
    """Every image under test, running; the gateway (when tested) reaches the stages' containers."""
    logs = tmp_path_factory.mktemp("images")
    running: dict[str, Container] = {}
    try:
        for name, ref in IMAGES.items():
            if service_of(name) != "gateway":
                running[name] = Container(name, ref, logs / f"{name}.log")
        stage_for = {service_of(n): c for n, c in running.items()}
        for name, ref in IMAGES.items():
            if service_of(name) == "gateway":
                env = {f"TALKER_GATEWAY_{s.upper()}_TARGET": stage_for[s].target for s in STAGES if s in stage_for}
                running[name] = Container(name, ref, logs / f"{name}.log", env)
        for c in running.values():
            c.start()
        deadline = time.monotonic() + START_TIMEOUT
        waiting = set(running)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                c = running[name]
                if c.exited():
                    pytest.fail(f"image {name} ({c.ref}), step start: the container exited:\n"
                                f"{c.log.read_text()[-3000:]}")
                try:
                    if health(c.health_port) == "SERVING":
                        waiting.discard(name)
                except grpc.RpcError:
                    pass
            time.sleep(1)
        if waiting:
            logs_tail = "\n".join(f"--- {n}\n{running[n].log.read_text()[-2000:]}" for n in sorted(waiting))
            pytest.fail(f"step start: not SERVING within {START_TIMEOUT:.0f} s: {', '.join(sorted(waiting))}\n"
                        f"{logs_tail}")
        yield running
    finally:
        for c in running.values():
            c.stop()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_serving_with_the_model_loaded(containers, name):
    c = containers[name]
    assert health(c.grpc_port) == "SERVING", f"image {name}, step serving: main port not SERVING"
    text = scrape(c)
    assert metric_sum(text, "talker_model_ready") == 1, f"image {name}, step model: talker_model_ready is not 1"
    assert "talker_build_info{" in text, f"image {name}, step metrics: no talker_build_info in /metrics"


@pytest.fixture(scope="module")
def turn(containers):
    """One spoken turn through the gateway container: every stage container takes part."""
    gw = next((c for n, c in containers.items() if service_of(n) == "gateway"), None)
    if gw is None or {service_of(n) for n in containers} < {"gateway", *STAGES}:
        pytest.skip("the turn needs the gateway and all four stage images")
    events: dict[str, list] = {}
    with grpc.insecure_channel(gw.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        try:
            for ev in gateway_pb2_grpc.GatewayServiceStub(ch).Ask(
                    gateway_pb2.AskRequest(wav=SPEECH.read_bytes()), timeout=240):
                events.setdefault(ev.WhichOneof("event"), []).append(ev)
        except grpc.RpcError as exc:
            pytest.fail(f"image gateway, step request: Ask failed: {exc.code().name}: {exc.details()}")
    assert "error" not in events, f"step request: the turn failed in {events['error'][0].error.stage}: " \
                                  f"{events['error'][0].error.message}"
    return events


def test_the_turn_has_every_part(turn):
    assert turn["transcript"][0].transcript.text.strip(), "image asr, step request: empty transcript"
    assert "".join(e.reply_text.delta for e in turn["reply_text"]).strip(), "image llm, step request: no reply"
    assert sum(len(e.audio.pcm) for e in turn["audio"]) > 0, "image tts, step request: no audio"
    assert len(turn["frame"]) > 0, "image animator, step request: no frames"
    assert turn["summary"], "image gateway, step request: no summary"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_image_answered_its_part_of_the_turn(containers, turn, name):
    method = METHODS[service_of(name)]
    answered = metric_sum(scrape(containers[name]), "grpc_server_handled_total", grpc_method=method, grpc_code="OK")
    assert answered >= 1, f"image {name}, step request: {method} never completed OK"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_lean_and_non_root(containers, name):
    c = containers[name]
    assert image_config(c.ref).get("User") == "10001:10001", f"image {name}, step user: not the numeric non-root user"
    root = c.rootfs()
    site = next((root / "opt/venv/lib").glob("python3*/site-packages"))
    present = [p for p in ("usr/bin/gcc", "usr/bin/g++", "usr/bin/cc", "usr/bin/make", "opt/venv/bin/pip",
                           "usr/bin/cmake") if (root / p).exists()]
    assert not present, f"image {name}, step lean: build tools in the runtime image: {present}"
    gui = [p.name for pat in ("libX11.so*", "libGL.so*", "libgtk*", "libQt*") for p in root.glob(f"usr/lib/*/{pat}")]
    assert not gui, f"image {name}, step lean: GUI libraries: {gui}"
    unused = [m for m in ("jax", "jaxlib", "cv2/qt", "sounddevice.py", "scipy", "ruff", "pytest", "llm")
              if (site / m).exists()]
    assert not unused, f"image {name}, step lean: unused packages: {unused}"
