"""The gateway: the public API, sessions, and the turn pipeline over the stages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from gateway.auth import Authenticator, AuthInterceptor, load_keys
from gateway.config import GatewayConfig
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Session, StageFailure, Turn, TurnInput
from gateway.stages import StageClients
from services.common.audio import float_to_pcm16, read_wav
from services.common.config import ServerConfig, from_env
from services.common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, StageError, status_for
from services.common.server import LoadedModel, Stage, run
from talker.v1 import animator_pb2, common_pb2, gateway_pb2, gateway_pb2_grpc

log = logging.getLogger("talker.gateway")

CONVERSE_RATE = 16000
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
        if cfg.fps and not 1 <= cfg.fps <= 60:
            raise InvalidArgument(f"config.fps: {cfg.fps} is outside 1..60")
        if cfg.max_reply_tokens < 0 or cfg.max_reply_tokens > 1024:
            raise InvalidArgument(f"config.max_reply_tokens: {cfg.max_reply_tokens} is outside 0..1024")
        if cfg.frame_format not in common_pb2.FrameFormat.values():
            raise InvalidArgument(f"config.frame_format: {cfg.frame_format} is not a FrameFormat")
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

    @staticmethod
    def _client_deadline(context) -> float | None:
        """The client's deadline, a little early: our error, naming the slow stage, must
        reach the client before its own deadline fires with no details."""
        remaining = context.time_remaining()
        if remaining is None:
            return None
        return time.monotonic() + remaining - min(0.25, 0.1 * remaining)

    def _remember(self, session: Session, turn: Turn) -> None:
        from talker.v1 import llm_pb2

        if not turn.transcript or not turn.reply.strip():
            return
        session.history += [llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=turn.transcript),
                            llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=turn.reply.strip())]
        if self.config.history_messages:
            session.history = session.history[-self.config.history_messages:]
        else:
            session.history = []

    async def _run_turn(self, session: Session, turn_input: TurnInput, context, own_trace: bool = False):
        """Yields the turn's events; failures propagate as StageError."""
        session.turns += 1
        turn = Turn(self.clients, self.metrics, session, session.turns, turn_input,
                    self.config.turn_timeout_seconds, self._client_deadline(context), own_trace)
        session.current = turn
        try:
            async for event in turn.events():
                yield event
        except asyncio.CancelledError:
            turn.record("cancelled")
            self._remember(session, turn)
            raise
        except BaseException:
            turn.record("error")
            raise
        turn.record("ok")
        self._remember(session, turn)

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
            async for event in self._run_turn(Session(config=request.config), turn_input, context):
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
            async for event in self._converse(Session(config=first.config), requests, context):
                yield event

    async def _converse(self, session: Session, requests, context):
        out: asyncio.Queue = asyncio.Queue(maxsize=64)
        current: asyncio.Task | None = None
        max_bytes = int(self.config.max_audio_seconds * CONVERSE_RATE * 2)
        end = object()

        async def play(turn_input: TurnInput) -> None:
            try:
                async for event in self._run_turn(session, turn_input, context, own_trace=True):
                    await out.put(event)
            except StageError as exc:
                code, message = status_for(exc)
                stage = exc.stage if isinstance(exc, StageFailure) else "gateway"
                await out.put(gateway_pb2.ConverseResponse(turn=session.turns, error=gateway_pb2.TurnError(
                    stage=stage, code=code.value[0], message=message)))

        async def stop_current() -> None:
            nonlocal current
            if current and not current.done():
                current.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await current
                # Tell the client where the stopped turn ended.
                turn = session.current
                await out.put(gateway_pb2.ConverseResponse(turn=turn.number, summary=turn.summary(cancelled=True)))
            current = None

        async def start(turn_input: TurnInput) -> None:
            nonlocal current
            await stop_current()  # barge-in: a new turn stops the one playing
            current = asyncio.create_task(play(turn_input))

        async def read() -> None:
            speech: asyncio.Queue | None = None  # the open spoken turn's audio, if any
            received = 0
            try:
                async for req in requests:
                    kind = req.WhichOneof("msg")
                    if kind == "audio":
                        if len(req.audio) % 2:
                            raise InvalidArgument("audio: PCM16 chunks need an even number of bytes")
                        if speech is None:
                            # The user starts speaking: that is a new turn (barge-in).
                            speech, received = asyncio.Queue(), 0
                            await start(TurnInput(sample_rate=CONVERSE_RATE, audio=speech))
                        received += len(req.audio)
                        if received > max_bytes:
                            raise InvalidArgument(f"audio: the turn is longer than {self.config.max_audio_seconds:g} s")
                        speech.put_nowait(req.audio)
                    elif kind == "end_of_turn":
                        if speech is None:
                            raise InvalidArgument("end_of_turn: no audio was sent in this turn")
                        speech.put_nowait(None)
                        speech = None
                    elif kind == "text":
                        speech = None
                        await start(TurnInput(text=self._check_text(req.text, "text")))
                    elif kind == "cancel":
                        speech = None
                        await stop_current()
                    elif kind == "config":
                        raise FailedPrecondition("config: sent twice; it must be the first message only")
                    else:
                        raise InvalidArgument("request: no field of the msg oneof is set")
                if speech is not None:
                    speech.put_nowait(None)  # the stream closed mid-utterance: that ends the turn
                if current:
                    await asyncio.shield(current)
                await out.put(end)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the response side
                await stop_current()
                await out.put(exc)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await out.get()
                if item is end:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reader.cancel()
            await stop_current()


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
    run(GatewayStage, "gateway", grpc_port=50051, metrics_port=9101)
