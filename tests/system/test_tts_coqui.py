"""The TTS service on the Coqui TTS backend, from its own environment (.venv/tts-coqui).

No weights can be downloaded here, so the test builds a tiny randomly initialised VITS model
(config.json + model.pth, written by tests/data/tts/make_tiny_coqui.py in the Coqui environment)
and runs the service on it: the same TTS(model_path=..., config_path=...) loading and inference
path a real model takes. A tiny random XTTS directory (~90 MB: its HiFi-GAN decoder and speaker
encoder keep their real sizes) exercises the streaming path (inference_stream) and voice cloning
from a reference WAV. The output is noise: the test checks shape, rate, chunking, voices,
speaking rate, cancellation and metrics, not words.

Runs in `make test-tts-coqui` (part of `make test`), which sets TALKER_TEST_TTS_COQUI=1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from stack.process import ROOT, ServiceProcess, venv_dir
from talker.v1 import tts_pb2, tts_pb2_grpc

if os.environ.get("TALKER_TEST_TTS_COQUI") != "1":
    pytest.skip("the Coqui backend's tests run in `make test-tts-coqui` (TALKER_TEST_TTS_COQUI=1)",
                allow_module_level=True)

PYTHON = venv_dir() / "tts-coqui" / "bin" / "python"
RATE = 16000
LONG = ("When the morning fog finally lifted over the harbour, the fishermen, who had waited since dawn, "
        "pushed their boats into the water, and for the first time in weeks the whole village seemed to "
        "breathe again; children ran along the pier, shouting the names of the boats as they passed by.")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    assert PYTHON.exists(), f"{PYTHON} is missing: make {PYTHON.parent.parent}/.installed"
    out = tmp_path_factory.mktemp("tiny-vits")
    run = subprocess.run([str(PYTHON), str(ROOT / "tests/data/tts/make_tiny_coqui.py"), str(out),
                          "--speakers", "alice,bob", "--sample-rate", str(RATE)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "model.pth").is_file() and (out / "config.json").is_file()
    return out


class Service(ServiceProcess):
    def __init__(self, model_dir: Path, log: Path, **extra: str):
        env = dict(TALKER_GRACE_SECONDS="2", TALKER_TTS_BACKEND="coqui",
                   TALKER_TTS_MODEL_PATH=str(model_dir / "model.pth"),
                   TALKER_TTS_CONFIG_PATH=str(model_dir / "config.json"), TALKER_TTS_DEVICE="cpu")
        super().__init__("tts (coqui)", "services.tts", log, venv="tts-coqui", env={**env, **extra})
        self.start()
        self.stub = tts_pb2_grpc.TtsServiceStub(self.channel)


@pytest.fixture(scope="module")
def service(model_dir, tmp_path_factory):
    svc = Service(model_dir, tmp_path_factory.mktemp("coqui-log") / "tts.log")
    try:
        svc.wait_serving(240)
        yield svc
    finally:
        svc.stop()


def synthesize(service, text: str, **kw):
    t0 = time.perf_counter()
    chunks, times = [], []
    for r in service.stub.Synthesize(tts_pb2.SynthesizeRequest(text=text, **kw), timeout=120):
        times.append(time.perf_counter() - t0)
        chunks.append(r.audio)
    return chunks, times


def samples(chunks) -> np.ndarray:
    return np.frombuffer(b"".join(c.pcm for c in chunks), "<i2").astype(np.float32) / 32768


def test_list_voices(service):
    resp = service.stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    assert [v.name for v in resp.voices] == ["alice", "bob"]
    assert resp.default_voice == "alice"
    assert all((v.backend, v.sample_rate, v.language) == ("coqui", RATE, "en") for v in resp.voices)


def test_synthesize_shape_rate_and_chunking(service):
    chunks, _ = synthesize(service, "Hello there, how are you today?")
    assert chunks
    assert all(c.sample_rate == RATE for c in chunks)
    assert all(0 < len(c.pcm) // 2 <= 0.2 * RATE for c in chunks)
    audio = samples(chunks)
    assert audio.size > 0.05 * RATE and np.isfinite(audio).all() and np.abs(audio).max() > 0
    # pts count the samples sent before each chunk
    pts = np.array([c.pts for c in chunks])
    starts = np.cumsum([0] + [len(c.pcm) // 2 for c in chunks[:-1]]) / RATE
    assert np.allclose(pts, starts)


def test_each_speaker_is_a_voice(service):
    a = samples(synthesize(service, "The same words.", voice="alice")[0])
    b = samples(synthesize(service, "The same words.", voice="bob")[0])
    assert a.size and b.size
    assert a.size != b.size or not np.allclose(a, b)


def test_speaking_rate(service):
    normal = samples(synthesize(service, "A sentence to time at two rates.")[0])
    fast = samples(synthesize(service, "A sentence to time at two rates.", speaking_rate=2.0)[0])
    assert fast.size < 0.8 * normal.size, (fast.size, normal.size)


def test_a_long_sentence_streams_piece_by_piece(service):
    before = service.value("talker_tts_requests_total", status="ok")
    chunks, times = synthesize(service, LONG)
    assert len(chunks) > 3
    assert times[0] <= times[-1]
    assert service.value("talker_tts_requests_total", status="ok") == before + 1


def test_cancel_mid_stream(service):
    text = " ".join(f"This is sentence number {i} of a long answer that nobody will hear." for i in range(25))
    before = service.value("talker_tts_requests_total", status="cancelled")
    call = service.stub.Synthesize(tts_pb2.SynthesizeRequest(text=text), timeout=60)
    assert next(call).audio.pcm
    call.cancel()
    deadline = time.monotonic() + 10
    while service.value("talker_tts_requests_total", status="cancelled") == before:
        assert time.monotonic() < deadline, "the service did not report the cancellation"
        time.sleep(0.1)
    assert synthesize(service, "Still here.")[0]


@pytest.mark.parametrize("request_,code,needle", [
    (dict(text=""), grpc.StatusCode.INVALID_ARGUMENT, "text: empty"),
    (dict(text="a" * 100_000), grpc.StatusCode.INVALID_ARGUMENT, "more than the limit"),
    (dict(text="😀🎉"), grpc.StatusCode.INVALID_ARGUMENT, "nothing speakable"),
    (dict(text="Hi.", voice="carol"), grpc.StatusCode.NOT_FOUND, "voice: 'carol' is not available"),
])
def test_bad_input(service, request_, code, needle):
    with pytest.raises(grpc.RpcError) as err:
        list(service.stub.Synthesize(tts_pb2.SynthesizeRequest(**request_), timeout=30))
    assert err.value.code() == code and needle in err.value.details()
    assert synthesize(service, "Next one.")[0]


def test_metrics(service):
    synthesize(service, "Counting.")
    text = service.metrics()
    labels = dict(backend="coqui", voice="alice")
    for name in ("talker_tts_time_to_first_audio_seconds_count", "talker_tts_duration_seconds_count",
                 "talker_tts_real_time_factor_count", "talker_tts_characters_total",
                 "talker_tts_audio_seconds_total"):
        assert service.value(name, **labels) > 0, name
    assert service.value("talker_tts_requests_total", backend="coqui", status="invalid") >= 4
    model = service.value("talker_model_info", stage="tts", backend="coqui", device="cpu")
    assert model == 1.0
    assert 'model="vits:' in text


# --- XTTS: the streaming path ------------------------------------------------------------------

@pytest.fixture(scope="module")
def xtts(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-xtts")
    run = subprocess.run([str(PYTHON), str(ROOT / "tests/data/tts/make_tiny_coqui.py"), str(out), "--xtts"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    svc = Service(out, tmp_path_factory.mktemp("xtts-log") / "tts.log",
                  TALKER_TTS_MODEL_PATH=str(out), TALKER_TTS_VOICE_DIR=str(out / "voices"))
    try:
        svc.wait_serving(240)
        yield svc
    finally:
        svc.stop()


def test_xtts_voices_come_from_reference_recordings(xtts):
    resp = xtts.stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    assert [(v.name, v.sample_rate, v.backend) for v in resp.voices] == [("ref", 24000, "coqui")]
    assert resp.default_voice == "ref"


def test_xtts_streams_audio(xtts):
    chunks, times = synthesize(xtts, LONG)
    assert len(chunks) > 1 and all(c.sample_rate == 24000 for c in chunks)
    audio = samples(chunks)
    assert audio.size > 0 and np.isfinite(audio).all()
    assert times[0] < times[-1]
    assert xtts.value("talker_tts_time_to_first_audio_seconds_count", backend="coqui", voice="ref") >= 1
    assert 'model="xtts:' in xtts.metrics()


def test_xtts_cancel(xtts):
    text = " ".join(f"This is sentence number {i} of a long answer." for i in range(20))
    call = xtts.stub.Synthesize(tts_pb2.SynthesizeRequest(text=text), timeout=120)
    assert next(call).audio.pcm
    call.cancel()
    deadline = time.monotonic() + 15
    while xtts.value("talker_tts_requests_total", status="cancelled") < 1:
        assert time.monotonic() < deadline, "the service did not report the cancellation"
        time.sleep(0.1)
    assert synthesize(xtts, "Still here.")[0]
