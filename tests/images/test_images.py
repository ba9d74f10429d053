"""The built images, started for real (`make test-images`, `make test-images-heavy`): each reaches
SERVING with its model loaded, serves /metrics and answers a request. One spoken turn goes through all
five containers (gateway -> ASR -> LLM -> TTS -> animator), and each image's own metrics must show that it
answered its part; a variant image (vLLM, Coqui) answers its own request. The web image serves the page,
/metrics and its health over HTTP, and is ready only while its gateway is. Every failure names the image
and the step. The images come from TALKER_TEST_IMAGES ("name=ref name=ref ...", set by make), so these tests
run only there."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack.process import free_port, metric_sum
from talker.v1 import gateway_pb2, gateway_pb2_grpc, llm_pb2, llm_pb2_grpc, tts_pb2, tts_pb2_grpc
from tests.images.containers import Container, image_config, run_once

IMAGES = dict(item.split("=", 1) for item in os.environ.get("TALKER_TEST_IMAGES", "").split())
# Images built and inspected but not started: the CUDA vLLM image cannot serve without a GPU.
CUDA_IMAGES = dict(item.split("=", 1) for item in os.environ.get("TALKER_TEST_CUDA_IMAGES", "").split())
if not IMAGES and not CUDA_IMAGES:
    pytest.skip("TALKER_TEST_IMAGES is not set: run `make test-images`", allow_module_level=True)
ROOT = Path(__file__).resolve().parents[2]

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


def variant_setup(name: str, ref: str, work: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """Settings and volumes a variant needs to start: Coqui ships no weights, so a tiny random VITS is
    written by the image's own Coqui (tests/data/tts/make_tiny_coqui.py) and mounted read-only."""
    if name == "tts-coqui":
        models = work / "coqui-model"
        models.mkdir(mode=0o777)
        models.chmod(0o777)  # written by the image's user (uid 10001)
        scripts = f"{Path(__file__).resolve().parents[1] / 'data' / 'tts'}:/scripts:ro"
        run_once(ref, ["python", "/scripts/make_tiny_coqui.py", "/models", "--sample-rate", "16000"],
                 (scripts, f"{models}:/models"))
        return ({"TALKER_TTS_MODEL_PATH": "/models/model.pth", "TALKER_TTS_CONFIG_PATH": "/models/config.json",
                 "TALKER_TTS_DEVICE": "cpu"}, (f"{models}:/models:ro",))
    if name == "llm-vllm":
        return {"TALKER_LLM_MAX_TOKENS": "16", "TALKER_THREADS": "2"}, ()
    return {}, ()


def scrape(c: Container) -> str:
    return urllib.request.urlopen(c.metrics_url, timeout=5).read().decode()


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of an HTTP GET; error statuses are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.headers.get_content_type(), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read().decode()


def started(c: Container) -> bool:
    """SERVING (gRPC health on the health port), or for the web page /healthz answering 200."""
    try:
        return get(c.url("/healthz"))[0] == 200 if c.http else health(c.health_port) == "SERVING"
    except (grpc.RpcError, OSError):
        return False


def wait_started(running: dict[str, Container]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = set(running)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            c = running[name]
            if c.exited():
                pytest.fail(f"image {name} ({c.ref}), step start: the container exited:\n{c.log.read_text()[-3000:]}")
            if started(c):
                waiting.discard(name)
        time.sleep(1)
    if waiting:
        logs_tail = "\n".join(f"--- {n}\n{running[n].log.read_text()[-2000:]}" for n in sorted(waiting))
        pytest.fail(f"step start: not SERVING within {START_TIMEOUT:.0f} s: {', '.join(sorted(waiting))}\n{logs_tail}")


@pytest.fixture(scope="module")
def containers(tmp_path_factory):
    """Every image under test, running; the gateway (when tested) reaches the stages' containers."""
    logs = tmp_path_factory.mktemp("images")
    running: dict[str, Container] = {}
    try:
        for name, ref in IMAGES.items():
            if service_of(name) not in ("gateway", "web"):
                env, volumes = variant_setup(name, ref, logs)
                running[name] = Container(name, ref, logs / f"{name}.log", env, volumes)
        stage_for = {service_of(n): c for n, c in running.items()}
        gateway = None
        for name, ref in IMAGES.items():
            if service_of(name) == "gateway":
                env = {f"TALKER_GATEWAY_{s.upper()}_TARGET": stage_for[s].target for s in STAGES if s in stage_for}
                running[name] = gateway = Container(name, ref, logs / f"{name}.log", env)
        for name, ref in IMAGES.items():
            if service_of(name) == "web":
                # The page's gateway: the gateway's container, else an address where none listens.
                target = gateway.target if gateway else f"127.0.0.1:{free_port()}"
                running[name] = Container(name, ref, logs / f"{name}.log", {"TALKER_WEB_GATEWAY_TARGET": target})
        for c in running.values():
            c.start()
        wait_started(running)
        yield running
    finally:
        for c in running.values():
            c.stop()


@pytest.mark.parametrize("name", sorted(n for n in IMAGES if service_of(n) != "web"))
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


@pytest.mark.parametrize("name", sorted(n for n in IMAGES if service_of(n) in METHODS))
def test_each_image_answered_its_part_of_the_turn(containers, turn, name):
    method = METHODS[service_of(name)]
    answered = metric_sum(scrape(containers[name]), "grpc_server_handled_total", grpc_method=method, grpc_code="OK")
    assert answered >= 1, f"image {name}, step request: {method} never completed OK"


@pytest.fixture(scope="module")
def web(containers):
    name = next((n for n in containers if service_of(n) == "web"), None)
    if name is None:
        pytest.skip("the web image is not under test")
    return containers[name]


def test_web_serves_the_page_metrics_and_health(web):
    status, kind, body = get(web.url("/"))
    assert status == 200 and kind == "text/html" and "<title>Talker</title>" in body, \
        f"image web, step page: {status} {kind}"
    assert get(web.url("/healthz"))[0] == 200, "image web, step health: /healthz"
    assert metric_sum(scrape(web), "talker_web_max_sessions") >= 1, "image web, step metrics: no session limit"
    # The image's own HEALTHCHECK (docker/healthcheck.py) finds the page's port from the environment.
    out = run_once(web.ref, ["python", "/usr/local/lib/talker/healthcheck.py"],
                   env={"TALKER_WEB_PORT": str(web.grpc_port)})
    assert f"http://127.0.0.1:{web.grpc_port}/healthz SERVING" in out, f"image web, step healthcheck: {out}"



def test_helm_test_command_checks_the_stages_and_the_page(containers, web):
    """The chart's `helm test` pod: the gateway image's healthcheck.py on gRPC targets and the page's /readyz."""
    gw = next((c for n, c in containers.items() if service_of(n) == "gateway"), None)
    if gw is None:
        pytest.skip("the gateway image is not under test")
    targets = [f"127.0.0.1:{gw.health_port}", web.url("/readyz")]
    out = run_once(gw.ref, ["python", "/usr/local/lib/talker/healthcheck.py", *targets])
    assert all(f"{t} SERVING" in out for t in targets), f"image gateway, step helm test: {out}"


def test_web_is_ready_exactly_while_its_gateway_serves(containers, web, tmp_path):
    """Readiness (/readyz, the chart's readiness probe) follows the gateway: a page without one could only
    show an error. A second web container, its gateway an address where none listens, is live, not ready."""
    if any(service_of(n) == "gateway" for n in containers):
        status, _, body = get(web.url("/readyz"))
        assert status == 200, f"image web, step ready: /readyz {status} {body!r} with the gateway SERVING"
    orphan = Container("web", web.ref, tmp_path / "web-orphan.log",
                       {"TALKER_WEB_GATEWAY_TARGET": f"127.0.0.1:{free_port()}"})
    try:
        orphan.start()
        wait_started({"web (no gateway)": orphan})
        status, _, body = get(orphan.url("/readyz"))
        assert status == 503 and "gateway not serving" in body, f"image web, step not ready: /readyz {status}"
    finally:
        orphan.stop()


@pytest.mark.parametrize("name", sorted(n for n in IMAGES if "-" in n))
def test_a_variant_answers_its_own_request(containers, name):
    """A variant stands in for its service's default image, so it answers that service's RPC."""
    c = containers[name]
    with grpc.insecure_channel(c.target) as ch:
        try:
            if service_of(name) == "llm":
                msg = llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="Say hello.")
                text = "".join(r.text for r in llm_pb2_grpc.LlmServiceStub(ch).Generate(
                    llm_pb2.GenerateRequest(messages=[msg]), timeout=240))
                assert text.strip(), f"image {name}, step request: an empty reply"
            elif service_of(name) == "tts":
                pcm = b"".join(r.audio.pcm for r in tts_pb2_grpc.TtsServiceStub(ch).Synthesize(
                    tts_pb2.SynthesizeRequest(text="Hello there."), timeout=240))
                assert len(pcm) > 0, f"image {name}, step request: no audio"
            else:
                pytest.fail(f"image {name}: no request for this variant's service")
        except grpc.RpcError as exc:
            pytest.fail(f"image {name}, step request: {exc.code().name}: {exc.details()}")
    method = METHODS[service_of(name)]
    answered = metric_sum(scrape(c), "grpc_server_handled_total", grpc_method=method, grpc_code="OK")
    assert answered >= 1, f"image {name}, step metrics: {method} OK not counted"


def distributions(text: str) -> dict[str, str]:
    """name -> version from `name==version` lines (lock entries or what the image reports)."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


@pytest.mark.parametrize("name", sorted({**IMAGES, **CUDA_IMAGES}))
def test_the_environment_is_exactly_its_locks(name):
    """The build installs the locks with --require-hashes --no-deps: the image holds those pins, no more."""
    ref = {**IMAGES, **CUDA_IMAGES}[name]
    locks = subprocess.run(["bash", "docker/image.sh", "locks", name], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    pinned: dict[str, str] = {}
    for lock in locks:
        pinned.update(distributions((ROOT / lock).read_text()))
    listing = run_once(ref, ["python", "-c", "import importlib.metadata as m; "
                             "print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))"])
    assert distributions(listing) == pinned, f"image {name}, step environment: differs from {locks}"


@pytest.mark.parametrize("name", sorted(n for n in IMAGES if n == "tts-coqui"))
def test_the_coqui_image_reads_a_reference_voice(name):
    """XTTS clones a voice from a recording, read by torchaudio through torchcodec and Debian's FFmpeg
    libraries: the runtime packages must be the ones torchcodec links."""
    out = run_once(IMAGES[name], ["python", "-c", "import torchaudio; w, sr = torchaudio.load('/data/speech.wav'); "
                                  "print(sr, w.shape[-1])"], (f"{SPEECH.parent}:/data:ro",))
    rate, samples = map(int, out.split()[-2:])
    assert rate == 16000 and samples > rate, f"image {name}, step reference voice: read {out!r}"


@pytest.mark.parametrize("name", sorted(CUDA_IMAGES))
def test_the_cuda_image_imports_vllm_on_cuda_torch(name):
    """What can be checked without a GPU: vLLM and its CUDA torch import, at the locked versions."""
    out = run_once(CUDA_IMAGES[name], ["python", "-c", "import torch, vllm; "
                                       "print(vllm.__version__, torch.__version__, torch.version.cuda)"])
    vllm_version, torch_version, cuda = out.split()[-3:]
    pinned = distributions((ROOT / "services/llm/requirements-vllm-cuda.txt").read_text())
    # torch reports its CUDA build as a local version (2.13.0+cu130); the lock pins the public one.
    assert (vllm_version, torch_version.split("+")[0]) == (pinned["vllm"], pinned["torch"]), \
        f"image {name}, step import: {out}"
    assert cuda != "None", f"image {name}, step import: torch is not a CUDA build"


# X11/GL client libraries an image cannot leave out: Debian's libavutil57 depends on libX11 and libavdevice59
# on libGL, and torchcodec (Coqui's reference voices) links both. No toolkit (GTK, Qt) is ever allowed.
LINKED_GUI_CLIENTS = {"tts-coqui": {"libX11", "libGL"}}
# Packages kept out of the images unless the image's own framework imports them: Coqui TTS imports scipy
# (TTS/tts/utils/helpers.py, TTS/utils/audio/numpy_transforms.py).
UNUSED = ("jax", "jaxlib", "cv2/qt", "sounddevice.py", "scipy", "ruff", "pytest", "llm")
IMPORTED_BY_FRAMEWORK = {"tts-coqui": {"scipy"}}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_lean_and_non_root(containers, name):
    c = containers[name]
    assert image_config(c.ref).get("User") == "10001:10001", f"image {name}, step user: not the numeric non-root user"
    root = c.rootfs()
    site = next((root / "opt/venv/lib").glob("python3*/site-packages"))
    present = [p for p in ("usr/bin/gcc", "usr/bin/g++", "usr/bin/cc", "usr/bin/make", "opt/venv/bin/pip",
                           "usr/bin/cmake") if (root / p).exists()]
    assert not present, f"image {name}, step lean: build tools in the runtime image: {present}"
    gui = {p.name.split(".so")[0] for pat in ("libX11.so*", "libGL.so*", "libgtk*", "libQt*")
           for p in root.glob(f"usr/lib/*/{pat}")}
    unneeded = gui - LINKED_GUI_CLIENTS.get(name, set())
    assert not unneeded, f"image {name}, step lean: GUI libraries: {sorted(unneeded)}"
    unused = [m for m in UNUSED if m not in IMPORTED_BY_FRAMEWORK.get(name, set()) and (site / m).exists()]
    assert not unused, f"image {name}, step lean: unused packages: {unused}"
