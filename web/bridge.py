"""The gateway's events to a browser: text as JSON, media to the transport, failures as page errors."""

from __future__ import annotations

import logging

import grpc

from web.session import GatewaySession, event_json

log = logging.getLogger("talker.web")


async def pump(session: GatewaySession, media, send_json, metrics) -> None:
    """Until the gateway session ends. ``media`` takes add_audio/add_frame/add_idle/flush/end_turn(turn)."""
    try:
        async for resp in session.events():
            kind = resp.WhichOneof("event")
            if kind == "audio":
                media.add_audio(resp.turn, resp.audio)
            elif kind == "frame":
                media.add_frame(resp.turn, resp.frame)
            elif kind == "idle_frame":
                media.add_idle(resp.idle_frame)
            else:
                if kind == "speech_started":
                    # The user speaks: the avatar stops now, even if the gateway has finished the reply
                    # and only the browser's buffer still plays it.
                    media.flush()
                elif kind == "summary":
                    if resp.summary.cancelled:
                        media.flush()
                    media.end_turn(resp.turn)
                msg = event_json(resp)
                if msg is not None:
                    send_json(msg)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:
            return  # we closed it
        metrics.gateway_errors.labels(exc.code().name).inc()
        state = "busy" if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "error"
        log.warning("gateway session ended: %s: %s", exc.code().name, exc.details())
        send_json({"type": "closed", "state": state, "code": exc.code().name, "message": exc.details() or ""})
        return
    send_json({"type": "closed", "state": "ended", "code": "OK", "message": ""})
