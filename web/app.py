"""The web service: the page, and one gateway session per browser over WebRTC or WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import metrics_server, tracing
from services.common.config import ConfigError, ServerConfig, from_env
from web.bridge import pump
from web.config import WebConfig
from web.metrics import WebMetrics
from web.rtc import RtcPeer
from web.session import BadStart, GatewaySession, open_channel, parse_start
from web.ws import WsMedia, read_microphone

log = logging.getLogger("talker.web")
STATIC = Path(__file__).parent / "static"
VERSION = "0.1.0"

# Everything the page loads comes from this origin; media from the peer connection and blobs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

CONFIG = web.AppKey("config", WebConfig)
METRICS = web.AppKey("metrics", WebMetrics)
SESSIONS = web.AppKey("sessions", dict)
CHANNEL = web.AppKey("channel", object)


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "microphone=(self), camera=()"
    return response


def same_origin(request: web.Request) -> bool:
    """Browsers send Origin on POST and WebSocket requests; it must name this host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (curl, the tests' own clients): CORS does not apply
    return urlsplit(origin).netloc == request.host


def _refuse(request: web.Request, reason: str, status: int, message: str) -> web.Response:
    request.app[METRICS].rejected.labels(reason).inc()
    return web.json_response({"state": "busy" if status == 503 else "error", "message": message}, status=status)


def _admit(request: web.Request) -> web.Response | None:
    if not same_origin(request):
        return _refuse(request, "origin", 403, "cross-origin requests are not allowed")
    if len(request.app[SESSIONS]) >= request.app[CONFIG].max_sessions:
        return _refuse(request, "limit", 503, f"all {request.app[CONFIG].max_sessions} sessions are in use; "
                                              "try again later")
    return None


def _register(app: web.Application, transport: str, close) -> tuple[str, callable]:
    sid = secrets.token_urlsafe(16)
    app[SESSIONS][sid] = close
    app[METRICS].sessions.labels(transport).inc()
    app[METRICS].sessions_total.labels(transport).inc()

    def done() -> None:
        if app[SESSIONS].pop(sid, None) is not None:
            app[METRICS].sessions.labels(transport).dec()
    return sid, done


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def page_config(request: web.Request) -> web.Response:
    c = request.app[CONFIG]
    return web.json_response({"turn_detection": c.turn_detection, "require_api_key": c.require_api_key,
                              "ice_timeout_seconds": c.ice_timeout_seconds, "voices": list(c.voices),
                              "fps": c.fps, "input_sample_rate": c.input_sample_rate})


async def offer(request: web.Request) -> web.Response:
    refusal = _admit(request)
    if refusal:
        return refusal
    try:
        body = await request.json()
        options = parse_start(body, request.app[CONFIG])
        sdp, kind = body.get("sdp"), body.get("type")
        if not isinstance(sdp, str) or kind != "offer":
            raise BadStart("sdp/type: expected an SDP offer")
    except (ValueError, BadStart) as exc:
        return _refuse(request, "bad_request", 400, str(exc))
    app = request.app
    session = GatewaySession(app[CHANNEL], app[CONFIG], options, "webrtc")
    peer: RtcPeer | None = None
    sid, done = _register(app, "webrtc", lambda: peer.close())
    peer = RtcPeer(app[CONFIG], app[METRICS], session, done)
    try:
        session.open()
        answer = await peer.answer(sdp, kind)
    except Exception as exc:  # noqa: BLE001 - a bad SDP is the page's error, reported as such
        await peer.close()
        return _refuse(request, "bad_request", 400, f"sdp: {exc}")
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session": sid})


async def leave(request: web.Request) -> web.Response:
    """The page is going away (navigator.sendBeacon on pagehide): end its session now."""
    sid = (await request.text()).strip()
    close = request.app[SESSIONS].get(sid)
    if close is not None:
        await close()
    return web.Response(status=204)


async def websocket(request: web.Request) -> web.StreamResponse:
    refusal = _admit(request)
    app = request.app
    if refusal is not None and refusal.status != 503:
        return refusal
    ws = web.WebSocketResponse(heartbeat=15, max_msg_size=app[CONFIG].max_avatar_bytes * 2)
    await ws.prepare(request)
    if refusal is not None:
        # A browser cannot read the status of a refused upgrade: say "busy" on the socket instead.
        await ws.send_json({"type": "closed", "state": "busy", "code": "RESOURCE_EXHAUSTED",
                            "message": json.loads(refusal.body)["message"]})
        await ws.close()
        return ws
    media = WsMedia(ws, app[METRICS])
    sid, done = _register(app, "ws", ws.close)
    tasks: list[asyncio.Task] = []
    session = None
    try:
        first = await ws.receive(timeout=30)
        try:
            options = parse_start(json.loads(first.data), app[CONFIG])
        except (TypeError, ValueError, BadStart) as exc:
            app[METRICS].rejected.labels("bad_request").inc()
            await ws.send_json({"type": "closed", "state": "error", "code": "INVALID_ARGUMENT", "message": str(exc)})
            return ws
        session = GatewaySession(app[CHANNEL], app[CONFIG], options, "ws")
        session.open()
        await ws.send_json({"type": "started", "session": sid})
        tasks = [asyncio.create_task(media.writer()),
                 asyncio.create_task(pump(session, media, media.send_json, app[METRICS]))]
        reader = asyncio.create_task(read_microphone(ws, session))
        await asyncio.wait([reader, tasks[1]], return_when=asyncio.FIRST_COMPLETED)
        reader.cancel()
        if tasks[1].done():
            await asyncio.sleep(0.2)  # let the writer deliver the closing event
    except TimeoutError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        if session is not None:
            await session.close()
        done()
        await ws.close()
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Ready when the gateway is: a page served without it could only show an error."""
    try:
        resp = await health_pb2_grpc.HealthStub(request.app[CHANNEL]).Check(health_pb2.HealthCheckRequest(),
                                                                            timeout=1.0)
        serving = resp.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        serving = False
    return web.Response(text="ready\n" if serving else "gateway not serving\n", status=200 if serving else 503)


def make_app(config: WebConfig, metrics: WebMetrics) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=config.max_avatar_bytes * 2)
    app[CONFIG] = config
    app[METRICS] = metrics
    app[SESSIONS] = {}
    metrics.max_sessions.set(config.max_sessions)

    async def channel_ctx(app: web.Application):
        app[CHANNEL] = open_channel(config)
        yield
        for close in list(app[SESSIONS].values()):
            with contextlib.suppress(Exception):
                await close()
        await app[CHANNEL].close()

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_get("/", index)
    app.router.add_get("/config.json", page_config)
    app.router.add_post("/offer", offer)
    app.router.add_post("/leave", leave)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


def main() -> None:
    try:
        config = from_env(WebConfig, "TALKER_WEB_")
    except ConfigError as exc:
        print(f"web: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s web %(levelname)s %(name)s: %(message)s")
    tracing.setup("web", VERSION)
    metrics = WebMetrics()
    # /metrics as every service serves it (TALKER_METRICS_BASIC_AUTH_FILE, TALKER_METRICS_TLS_*), on the web ports.
    try:
        server = dataclasses.replace(from_env(ServerConfig, "TALKER_"), metrics_port=config.metrics_port,
                                     metrics_host=config.metrics_host)
        metrics_server.start(server)
    except ConfigError as exc:
        print(f"web: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    context = None
    if config.tls_cert_file:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    log.info("web: serving on %s://%s:%d (gateway %s, %s turn detection, ICE servers: %s)",
             "https" if context else "http", config.host, config.port, config.gateway_target,
             config.turn_detection, ", ".join(config.ice_servers) or "none")
    web.run_app(make_app(config, metrics), host=config.host, port=config.port, ssl_context=context,
                print=None, shutdown_timeout=5)
