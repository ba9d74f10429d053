"""One browser session's gateway side: a ``Converse`` stream, its inputs, and its events as JSON.

Both transports use it the same way: ``push_audio`` with the microphone (mono PCM16 at the
configured rate), ``talk``/``end_turn``/``cancel`` from the page's buttons, ``events()`` for what
the gateway says. It knows nothing of WebRTC or WebSockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging

import grpc
from opentelemetry import trace

from services.common import tracing
from services.common.config import read_setting_file
from talker.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from web.config import WebConfig

log = logging.getLogger("talker.web")

# Microphone audio queued for the gateway beyond this is dropped: a stalled gateway must not
# grow the web service's memory without bound (30 s of 16 kHz PCM16).
_MAX_QUEUED_AUDIO_BYTES = 30 * 16000 * 2


class BadStart(ValueError):
    """The page's start request is malformed (HTTP 400 / a WebSocket error message)."""


@dataclasses.dataclass(frozen=True)
class StartOptions:
    voice: str = ""
    avatar_image: bytes = b""
    api_key: str = dataclasses.field(default="", repr=False)


def parse_start(body: dict, config: WebConfig) -> StartOptions:
    """The session options a page sends with its offer (WebRTC) or first message (WebSocket)."""
    if not isinstance(body, dict):
        raise BadStart("expected a JSON object")
    voice = body.get("voice") or ""
    if not isinstance(voice, str) or (voice and config.voices and voice not in config.voices):
        raise BadStart(f"voice: {voice!r} is not one of {', '.join(config.voices) or 'the default'}")
    avatar = body.get("avatar") or ""
    if not isinstance(avatar, str):
        raise BadStart("avatar: expected a base64 string")
    try:
        image = base64.b64decode(avatar, validate=True) if avatar else b""
    except binascii.Error:
        raise BadStart("avatar: not valid base64") from None
    if len(image) > config.max_avatar_bytes:
        raise BadStart(f"avatar: {len(image)} bytes, more than {config.max_avatar_bytes}")
    key = body.get("key") or ""
    if not isinstance(key, str):
        raise BadStart("key: expected a string")
    if config.require_api_key and not key:
        raise BadStart("key: this service needs an API key")
    return StartOptions(voice=voice, avatar_image=image, api_key=key)


def open_channel(config: WebConfig) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", 64 << 20)]
    if config.gateway_tls_server_name:
        options.append(("grpc.ssl_target_name_override", config.gateway_tls_server_name))
    interceptors = tracing.client_interceptors()
    if config.gateway_tls_ca_file:
        def read(setting: str, path: str) -> bytes | None:
            return read_setting_file(setting, path) if path else None
        creds = grpc.ssl_channel_credentials(
            root_certificates=read("TALKER_WEB_GATEWAY_TLS_CA_FILE", config.gateway_tls_ca_file),
            private_key=read("TALKER_WEB_GATEWAY_TLS_CLIENT_KEY_FILE", config.gateway_tls_client_key_file),
            certificate_chain=read("TALKER_WEB_GATEWAY_TLS_CLIENT_CERT_FILE", config.gateway_tls_client_cert_file))
        return grpc.aio.secure_channel(config.gateway_target, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(config.gateway_target, options=options, interceptors=interceptors)


def event_json(resp: gateway_pb2.ConverseResponse) -> dict | None:
    """The page's view of a gateway event; None for media (the transports carry those)."""
    kind = resp.WhichOneof("event")
    turn = resp.turn
    if kind == "transcript":
        return {"type": "transcript", "turn": turn, "text": resp.transcript.text}
    if kind == "partial_transcript":
        return {"type": "partial", "turn": turn, "text": resp.partial_transcript.text}
    if kind == "reply_text":
        return {"type": "reply", "turn": turn, "delta": resp.reply_text.delta}
    if kind == "speech_started":
        return {"type": "speech_started", "turn": turn, "barge_in": resp.speech_started.barge_in}
    if kind == "end_of_turn":
        return {"type": "end_of_turn", "turn": turn, "delay": resp.end_of_turn.delay_seconds}
    if kind == "summary":
        s = resp.summary
        return {"type": "summary", "turn": turn, "cancelled": s.cancelled, "transcript": s.transcript,
                "reply": s.reply, "gateway_first_frame": s.time_to_first_frame_seconds,
                "gateway_first_audio": s.time_to_first_audio_seconds, "turn_seconds": s.turn_seconds}
    if kind == "error":
        return {"type": "error", "turn": turn, "stage": resp.error.stage,
                "code": common_pb2.ErrorCode.Name(resp.error.code), "message": resp.error.message}
    return None


class GatewaySession:
    """The gateway's ``Converse`` stream for one browser session."""

    def __init__(self, channel: grpc.aio.Channel, config: WebConfig, options: StartOptions, transport: str):
        self.config = config
        self.options = options
        self.transport = transport
        self.hands_free = config.turn_detection == "server"
        self.talking = False   # push-to-talk: between the page's Talk and Send
        self._spoke = False    # push-to-talk: audio was sent in this turn
        self._requests: asyncio.Queue = asyncio.Queue()
        self._queued_audio = 0
        self._stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        self._call = None
        self._span = None

    def session_config(self) -> gateway_pb2.SessionConfig:
        return gateway_pb2.SessionConfig(
            voice=self.options.voice, avatar_image=self.options.avatar_image, fps=self.config.fps,
            frame_format=common_pb2.FRAME_FORMAT_JPEG, idle_video=True,
            input_sample_rate=self.config.input_sample_rate,
            turn_detection=gateway_pb2.TURN_DETECTION_SERVER if self.hands_free else gateway_pb2.TURN_DETECTION_CLIENT)

    async def _request_stream(self):
        yield gateway_pb2.ConverseRequest(config=self.session_config())
        while True:
            req = await self._requests.get()
            if req is None:
                return
            if req.WhichOneof("msg") == "audio":
                self._queued_audio -= len(req.audio)
            yield req

    def open(self) -> None:
        metadata = (("authorization", f"Bearer {self.options.api_key}"),) if self.options.api_key else ()
        # The session's span: the gateway call (and through it every turn) continues this trace.
        self._span = tracing.tracer("talker.web").start_span("web session", attributes={"transport": self.transport})
        with trace.use_span(self._span, end_on_exit=False):
            self._call = self._stub.Converse(self._request_stream(), metadata=metadata)

    async def events(self):
        """The gateway's events until the session ends; a gateway failure raises grpc.aio.AioRpcError."""
        async for resp in self._call:
            yield resp

    def push_audio(self, pcm: bytes) -> None:
        if not pcm or not (self.hands_free or self.talking):
            return
        if self._queued_audio + len(pcm) > _MAX_QUEUED_AUDIO_BYTES:
            return
        self._spoke = True
        self._queued_audio += len(pcm)
        self._requests.put_nowait(gateway_pb2.ConverseRequest(audio=pcm))

    def talk(self) -> None:
        """Push-to-talk: the microphone counts from now (a new turn, which stops a reply in flight)."""
        self.talking = True

    def end_turn(self) -> None:
        if self.talking and self._spoke:
            self._requests.put_nowait(gateway_pb2.ConverseRequest(end_of_turn=gateway_pb2.EndOfTurn()))
        self.talking = self._spoke = False

    def cancel(self) -> None:
        self.talking = self._spoke = False
        self._requests.put_nowait(gateway_pb2.ConverseRequest(cancel=gateway_pb2.Cancel()))

    def control(self, msg: dict) -> None:
        """A control message from the page: talk, end_of_turn, cancel."""
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "talk":
            self.talk()
        elif kind == "end_of_turn":
            self.end_turn()
        elif kind == "cancel":
            self.cancel()

    async def close(self) -> None:
        self._requests.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._span is not None:
            self._span.end()
            self._span = None
