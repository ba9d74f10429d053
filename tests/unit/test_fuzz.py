"""Property-based fuzzing of the request parsers and the sentence splitter (hypothesis)."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.auth import Authenticator, bearer_token, parse_keys
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.service import GatewayServiceServicer
from services.common.audio import read_wav
from services.common.config import ConfigError
from services.common.errors import InvalidArgument
from services.common.segments import SentenceSplitter
from talker.v1 import gateway_pb2

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wav(channels: int, width: int, rate: int, frames: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


@FUZZ
@given(st.binary(max_size=2048))
def test_read_wav_takes_any_bytes_and_fails_only_with_invalid_argument(data):
    try:
        samples, rate = read_wav(data)
    except InvalidArgument as exc:
        assert exc.message.startswith("wav:")
    else:
        assert samples.dtype == np.float32 and 8000 <= rate <= 192000


@FUZZ
@given(st.binary(min_size=44, max_size=512), st.integers(0, 43), st.binary(min_size=1, max_size=4))
def test_read_wav_survives_a_corrupted_header(data, at, junk):
    good = bytearray(wav(1, 2, 16000, data[: len(data) // 2 * 2]))
    good[at:at + len(junk)] = junk
    try:
        read_wav(bytes(good))
    except InvalidArgument:
        pass


@FUZZ
@given(st.sampled_from([1, 2]), st.integers(8000, 48000), st.binary(max_size=4000))
def test_read_wav_reads_what_was_written(channels, rate, frames):
    frames = frames[: len(frames) // (2 * channels) * 2 * channels]
    samples, got = read_wav(wav(channels, 2, rate, frames))
    assert got == rate and samples.size == len(frames) // (2 * channels)
    assert np.all(np.abs(samples) <= 1.0)


text_pieces = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), max_size=30)


@FUZZ
@given(text_pieces)
def test_the_splitter_loses_and_invents_nothing(chunks):
    splitter = SentenceSplitter()
    pieces = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.flush()
    assert all(p and p == p.strip() for p in pieces)
    assert "".join("".join(pieces).split()) == "".join("".join(chunks).split())


@FUZZ
@given(text_pieces)
def test_the_splitter_keeps_pieces_bounded(chunks):
    splitter = SentenceSplitter(max_chars=250)
    pieces = [p for chunk in chunks for p in splitter.feed(chunk)]
    assert all(len(p) <= 250 for p in pieces)


@FUZZ
@given(st.text(max_size=400))
def test_parse_keys_accepts_or_refuses_without_echoing_a_key(text):
    try:
        keys = parse_keys(text)
    except ConfigError as exc:
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) >= 2 and len(parts[1].strip()) >= 4:
                assert parts[1].strip() not in str(exc).split("=", 1)[-1].replace("keys file", "")
    else:
        assert keys and all(k.scopes for k in keys)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["authorization", "Authorization", "x-other", "grpc-trace-bin"]),
                          st.one_of(st.text(max_size=40), st.binary(max_size=40))), max_size=4))
def test_bearer_token_parses_any_metadata(metadata):
    token = bearer_token(metadata)
    assert token is None or (token and token == token.strip())
    auth = Authenticator(parse_keys("a:0123456789abcdef0123"))
    result = auth.check("/talker.v1.GatewayService/Ask", metadata)
    assert result is None or result[0].name in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    if result is None:
        assert token == "0123456789abcdef0123"


@pytest.fixture(scope="module")
def servicer():
    return GatewayServiceServicer(GatewayConfig(), GatewayMetrics())


@FUZZ
@given(text=st.text(max_size=5000))
def test_text_check_accepts_or_names_the_field(servicer, text):
    try:
        assert servicer._check_text(text, "text") == text
    except InvalidArgument as exc:
        assert exc.message.startswith("text:")


@FUZZ
@given(fps=st.integers(-2**31, 2**31 - 1), tokens=st.integers(-2**31, 2**31 - 1),
       fmt=st.integers(0, 2**31 - 1), prompt=st.text(max_size=50))
def test_session_config_check_accepts_or_names_the_field(servicer, fps, tokens, fmt, prompt):
    cfg = gateway_pb2.SessionConfig(fps=fps, max_reply_tokens=tokens, frame_format=fmt, system_prompt=prompt)
    try:
        servicer._check_config(cfg)
    except InvalidArgument as exc:
        assert exc.message.startswith("config.")
    else:
        assert (fps == 0 or 1 <= fps <= 60) and 0 <= tokens <= 1024
