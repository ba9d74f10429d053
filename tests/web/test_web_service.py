"""The web service without a browser: settings, the page's start request, the media playhead, and the
HTTP edge (security headers, same-origin, the session limit) on a real aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import socket

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.common.config import ConfigError, from_env
from talker.v1 import common_pb2, gateway_pb2
from web.app import make_app
from web.config import WebConfig
from web.media import PACKET, RATE, Playout
from web.metrics import WebMetrics
from web.rtc import rtc_configuration
from web.session import BadStart, event_json, parse_start


def metrics() -> WebMetrics:
    return WebMetrics(registry=CollectorRegistry())


def test_settings_are_checked():
    assert from_env(WebConfig, "TALKER_WEB_", {"TALKER_WEB_ICE_SERVERS": "stun:a:3478,turn:b:3478"}).ice_servers \
        == ("stun:a:3478", "turn:b:3478")
    for bad in ({"TALKER_WEB_ICE_SERVERS": "http://a"}, {"TALKER_WEB_MAX_SESSIONS": "0"},
                {"TALKER_WEB_TURN_DETECTION": "sometimes"}, {"TALKER_WEB_TLS_CERT_FILE": "/x.pem"}):
        with pytest.raises(ConfigError):
            from_env(WebConfig, "TALKER_WEB_", bad)


def test_no_ice_servers_unless_configured():
    # aiortc asks a public STUN server when iceServers is None: the configuration is always a list.
    assert rtc_configuration(WebConfig()).iceServers == []
    servers = rtc_configuration(WebConfig(ice_servers=("turn:t:3478",), ice_username="u", ice_credential="p"))
    assert [(s.urls, s.username, s.credential) for s in servers.iceServers] == [(["turn:t:3478"], "u", "p")]


def test_start_request():
    config = WebConfig(voices=("joe",), require_api_key=True, max_avatar_bytes=10)
    opts = parse_start({"voice": "joe", "key": "k", "avatar": base64.b64encode(b"abc").decode()}, config)
    assert (opts.voice, opts.avatar_image, opts.api_key) == ("joe", b"abc", "k")
    assert "k" not in repr(opts)
    for body, field in (({"voice": "amy", "key": "k"}, "voice"), ({}, "key"), ({"key": "k", "avatar": "%%"}, "avatar"),
                        ({"key": "k", "avatar": base64.b64encode(b"x" * 11).decode()}, "avatar"), ([], "JSON")):
        with pytest.raises(BadStart, match=field):
            parse_start(body, config)


def test_events_for_the_page():
    summary = gateway_pb2.ConverseResponse(turn=2, summary=gateway_pb2.TurnSummary(
        transcript="hi", reply="hello", time_to_first_frame_seconds=0.5, cancelled=True))
    assert event_json(summary)["gateway_first_frame"] == 0.5 and event_json(summary)["cancelled"]
    error = gateway_pb2.ConverseResponse(turn=1, error=gateway_pb2.TurnError(stage="asr", code=3, message="bad"))
    assert event_json(error) == {"type": "error", "turn": 1, "stage": "asr", "code": "ERROR_CODE_INVALID_ARGUMENT",
                                 "message": "bad"}
    assert event_json(gateway_pb2.ConverseResponse(turn=1, frame=common_pb2.Frame(pts=0.1))) is None


def test_playout_shows_the_frame_the_audio_has_reached():
    m = metrics()
    play = Playout(m, "webrtc")
    rate = 16000
    chunk = common_pb2.AudioChunk(pcm=(np.ones(rate, np.int16) * 1000).tobytes(), sample_rate=rate, pts=0.0)
    play.add_audio(1, chunk)
    for i in range(25):  # one second at 25 fps
        play.add_frame(1, common_pb2.Frame(pts=i / 25, data=bytes([i])))
    assert play.next_frame() == (bytes([0]), True)  # pts 0 is due at once
    for _ in range(10):  # 200 ms of audio played
        assert play.next_audio().size == PACKET
    assert play.playhead == pytest.approx(10 * PACKET / RATE)
    frame, reply = play.next_frame()
    assert frame == bytes([5]) and reply  # 0.2 s: frames 1..4 were due earlier and are skipped
    assert m.frames_dropped.labels("webrtc")._value.get() == 4
    played = []
    play.on_played = played.append
    play.end_turn(1)  # the summary: the page hears "played" once the audio has run out
    while play.next_audio().any():
        pass
    assert played == [1]
    play.add_idle(common_pb2.Frame(pts=3.0, data=b"idle"))
    play.flush()  # barge-in: the rest of the reply never plays, nor what the gateway still sends of it
    play.add_audio(1, chunk)
    assert not play.next_audio().any()
    assert play.next_frame() == (b"idle", False)


async def _client(config: WebConfig) -> TestClient:
    client = TestClient(TestServer(make_app(config, metrics())))
    await client.start_server()
    return client


def test_page_security_headers_and_same_origin():
    async def main():
        client = await _client(WebConfig(gateway_target="127.0.0.1:1"))
        try:
            page = await client.get("/")
            assert page.status == 200
            csp = page.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "cdn" not in (await page.text()).lower() and "https://" not in await page.text()
            evil = await client.post("/offer", json={"sdp": "x", "type": "offer"},
                                     headers={"Origin": "http://evil.example"})
            assert evil.status == 403
            bad = await client.post("/offer", json={"sdp": 1, "type": "offer"})
            assert bad.status == 400 and "sdp" in (await bad.json())["message"]
        finally:
            await client.close()
    asyncio.run(main())


def test_one_session_too_many_is_busy():
    # A "gateway" that accepts connections and never answers: the first session stays open.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()

    async def main():
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        client = await _client(WebConfig(gateway_target=target, max_sessions=1))
        try:
            first = await client.ws_connect("/ws")
            await first.send_json({"type": "start"})
            assert (await first.receive_json(timeout=5))["type"] == "started"
            second = await client.ws_connect("/ws")
            msg = await second.receive_json(timeout=5)
            assert (msg["type"], msg["state"]) == ("closed", "busy")
            offer = await client.post("/offer", json={"sdp": "x", "type": "offer"})
            assert offer.status == 503 and (await offer.json())["state"] == "busy"
            await first.close()
            for _ in range(50):  # the slot is free again once the first socket has gone
                third = await client.ws_connect("/ws")
                await third.send_json({"type": "start"})
                msg = await third.receive_json(timeout=5)
                await third.close()
                if msg["type"] == "started":
                    break
                await asyncio.sleep(0.1)
            assert msg["type"] == "started"
        finally:
            await client.close()
    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_websocket_start_must_be_valid():
    async def main():
        client = await _client(WebConfig(gateway_target="127.0.0.1:1", require_api_key=True))
        try:
            ws = await client.ws_connect("/ws")
            await ws.send_json({"type": "start"})
            msg = await ws.receive_json(timeout=5)
            assert msg["state"] == "error" and "key" in msg["message"]
            assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        finally:
            await client.close()
    asyncio.run(main())
