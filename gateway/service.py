"""The gateway: the public API, sessions, and the turn pipeline over the stages."""

from __future__ import annotations

import contextlib
import logging

import grpc

from gateway.auth import Authenticator, AuthInterceptor, load_keys
from gateway.config import GatewayConfig
from gateway.hands_free import HandsFree
from gateway.metrics import GatewayMetrics
from gateway.pipeline import TurnInput
from gateway.push_to_talk import PushToTalk
from gateway.session import ConverseSession, Session
from gateway.stages import StageClients
from services.common.audio import float_to_pcm16, read_wav
from services.common.config import ServerConfig, from_env
from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from services.common.limits import FPS
from services.common.server import LoadedModel, Stage, run
from talker.v1 import animator_pb2, common_pb2, gateway_pb2, gateway_pb2_grpc

log = logging.getLogger("talker.gateway")

# C0 controls (but tab, newline, carriage return), DEL and C1 controls: never part of a question.
_CONTROL = frozenset(chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), *range(127, 160)])


class GatewayServiceServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics):
        self.config = config
        self.metrics = metrics
        self.clients: StageClients | None = None
        self.sessions = 0
        metrics.max_sessions.set(config.max_sessions)

    # -- sessions ---------------------------------------------------------------

    @contextlib.contextmanager
    def _session_slot(self):
        if self.sessions >= self.config.max_sessions:
            self.metrics.rejected_sessions.labels("limit").inc()
            raise ResourceExhausted(f"gateway: all {self.config.max_sessions} session slots are in use; retry later")
        self.sessions += 1
        self.metrics.active_sessions.inc()
        try:
            yield
        finally:
            self.sessions -= 1
            self.metrics.active_sessions.dec()

    def _check_config(self, cfg: gateway_pb2.SessionConfig) -> None:
        if len(cfg.avatar_image) > self.config.max_avatar_bytes:
            raise InvalidArgument(f"config.avatar_image: {len(cfg.avatar_image)} bytes, more than "
                                  f"{self.config.max_avatar_bytes}")
        if cfg.fps:
            FPS.check("config.fps", cfg.fps)
        if cfg.max_reply_tokens < 0 or cfg.max_reply_tokens > 1024:
            raise InvalidArgument(f"config.max_reply_tokens: {cfg.max_reply_tokens} is outside 0..1024")
        if cfg.frame_format not in common_pb2.FrameFormat.values():
            raise InvalidArgument(f"config.frame_format: {cfg.frame_format} is not a FrameFormat")
        if cfg.input_sample_rate and not 8000 <= cfg.input_sample_rate <= 48000:
            raise InvalidArgument(f"config.input_sample_rate: {cfg.input_sample_rate} Hz is outside 8000..48000")
        if cfg.turn_detection not in gateway_pb2.TurnDetection.values():
            raise InvalidArgument(f"config.turn_detection: {cfg.turn_detection} is not a TurnDetection")
        if len(cfg.system_prompt) > self.config.max_text_chars:
            raise InvalidArgument(f"config.system_prompt: more than {self.config.max_text_chars} characters")

    async def _check_avatar(self, cfg: gateway_pb2.SessionConfig) -> None:
        """A portrait is checked (registered with the animator) when the session or request is
        accepted, so a picture without a face is refused before the LLM spends a reply on it."""
        if not cfg.avatar_image or self.clients is None:
            return
        try:
            await self.clients.animator.RegisterAvatar(animator_pb2.RegisterAvatarRequest(image=cfg.avatar_image),
                                                       timeout=self.config.turn_timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                reason = (exc.details() or "not a usable portrait").removeprefix("image: ")
                raise InvalidArgument(f"config.avatar_image: {reason}") from None
            # The animator down or busy: the turn reports that, naming the stage.
            log.warning("avatar check skipped: animator %s: %s", exc.code().name, exc.details())

    def _check_text(self, text: str, field: str) -> str:
        if not text.strip():
            raise InvalidArgument(f"{field}: empty")
        if len(text) > self.config.max_text_chars:
            raise InvalidArgument(f"{field}: {len(text)} characters, more than {self.config.max_text_chars}")
        bad = next((c for c in text if c in _CONTROL), None)
        if bad is not None:
            raise InvalidArgument(f"{field}: contains the control character U+{ord(bad):04X}")
        return text

    # -- RPCs -------------------------------------------------------------------

    async def Ask(self, request, context):
        self._check_config(request.config)
        which = request.WhichOneof("input")
        if which == "text":
            turn_input = TurnInput(text=self._check_text(request.text, "text"))
        elif which == "wav":
            samples, rate = read_wav(request.wav)
            if samples.size == 0:
                raise InvalidArgument("wav: contains no samples")
            if samples.size / rate > self.config.max_audio_seconds:
                raise InvalidArgument(f"wav: {samples.size / rate:.1f} s of audio, more than "
                                      f"{self.config.max_audio_seconds:g} s")
            turn_input = TurnInput.from_pcm(float_to_pcm16(samples), rate)
        else:
            raise InvalidArgument("input: set either text or wav")
        await self._check_avatar(request.config)
        with self._session_slot():
            session = Session(self.config, self.clients, self.metrics, request.config, context)
            async for event in session.run_turn(turn_input):
                # AskResponse has ConverseResponse's field numbers: the bytes carry over as they are.
                yield gateway_pb2.AskResponse.FromString(event.SerializeToString())

    async def Converse(self, request_iterator, context):
        requests = aiter(request_iterator)
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            raise InvalidArgument("config: the stream ended before its SessionConfig") from None
        if first.WhichOneof("msg") != "config":
            raise FailedPrecondition(f"{first.WhichOneof('msg') or 'message'}: sent before config; "
                                     "the first message must be a SessionConfig")
        self._check_config(first.config)
        await self._check_avatar(first.config)
        with self._session_slot():
            session = ConverseSession(self.config, self.clients, self.metrics, first.config, context)
            # The input mode reads the client's messages and drives the session (SessionConfig.turn_detection).
            rate = first.config.input_sample_rate or 16000
            if first.config.turn_detection == gateway_pb2.TURN_DETECTION_SERVER:
                mode = HandsFree(session, requests, self._check_text, rate)
            else:
                mode = PushToTalk(session, requests, self._check_text, self.config.max_audio_seconds, rate)
            async for event in session.events(mode.read):
                yield event


class GatewayStage(Stage):
    name = "gateway"
    service_names = (gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name,)

    def __init__(self, server_config: ServerConfig, config: GatewayConfig | None = None):
        self.server_config = server_config
        self.config = config or from_env(GatewayConfig, "TALKER_GATEWAY_")
        self.servicer = GatewayServiceServicer(self.config, GatewayMetrics())
        # Read the keys now: a missing or malformed file is a configuration error at start.
        self.authenticator = Authenticator(load_keys(self.config.api_keys_file)) if self.config.api_keys_file \
            else None
        if self.authenticator:
            log.info("gateway: client authentication on, %d API keys (%s)", len(self.authenticator.keys),
                     ", ".join(k.name for k in self.authenticator.keys))
        else:
            log.warning("gateway: client authentication is OFF (TALKER_GATEWAY_API_KEYS_FILE is not set)")

    def saturation_limit(self, server_config: ServerConfig) -> int:
        # Each session is one Converse/Ask call: not ready once every session slot is taken.
        return min(self.config.max_sessions, server_config.max_concurrent_rpcs)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [AuthInterceptor(self.authenticator)] if self.authenticator else []

    def add_to_server(self, server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        self.servicer.clients = StageClients(self.config, self.server_config.max_message_bytes)

    def load(self) -> LoadedModel:
        return LoadedModel(backend="grpc", model="pipeline", device="cpu")

    async def close(self) -> None:
        if self.servicer.clients:
            await self.servicer.clients.close()


def main() -> None:
    run(GatewayStage, "gateway")
