"""Web service settings (``TALKER_WEB_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common import limits
from services.common.config import Settings
from services.common.limits import Range


@dataclasses.dataclass(frozen=True)
class WebConfig(Settings):
    PREFIX = "TALKER_WEB_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "port": Range(0, 65535),
        "metrics_port": Range(0, 65535),
        "max_sessions": Range(1, 10000),
        "fps": limits.FPS,
        "video_size": Range(64, 2048),
        "ice_timeout_seconds": Range(0.5, 60),
        "input_sample_rate": limits.SAMPLE_RATE,
    }

    host: str = "0.0.0.0"
    port: int = 8080
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9106
    # The gateway: host:port, or dns:///name:port for round-robin over its replicas.
    gateway_target: str = "127.0.0.1:50051"
    # TLS to the gateway: the CA that signed its certificate (empty = plaintext), and a name to
    # verify instead of the target's host.
    gateway_tls_ca_file: str = ""
    gateway_tls_server_name: str = ""
    # A client certificate and key for the gateway's mutual TLS.
    gateway_tls_client_cert_file: str = ""
    gateway_tls_client_key_file: str = ""
    # Browser sessions at once; one more gets HTTP 503 ("busy").
    max_sessions: int = 4
    # The page asks its user for an API key and the service forwards it to the gateway as
    # `authorization: Bearer <key>`. The service holds no key of its own (see docs/web.md).
    require_api_key: bool = False
    # ICE servers for WebRTC, e.g. "stun:stun.example.org:3478,turn:turn.example.org:3478".
    # Empty = host candidates only: no traffic to any address not on the path to the browser.
    ice_servers: tuple[str, ...] = ()
    ice_username: str = ""
    ice_credential: str = dataclasses.field(default="", repr=False)
    # The page falls back to WebSocket when ICE has not connected after this long.
    ice_timeout_seconds: float = 4.0
    # Serve HTTPS directly (browsers allow the microphone only on https or localhost).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Hands-free (server finds the end of each turn) or push-to-talk (the page's Send button).
    turn_detection: str = "server"
    fps: int = 25
    # The WebRTC video's width and height, px (the animator's frames are square; others are scaled).
    video_size: int = 512
    # Voices the page offers (empty = the TTS default only).
    voices: tuple[str, ...] = ()
    max_avatar_bytes: int = 4 * 1024 * 1024
    # The gateway's hands-free mode takes any input rate; push-to-talk takes 16 kHz.
    input_sample_rate: int = 16000
    log_level: str = "INFO"

    def validate(self) -> None:
        self.check("turn_detection", self.turn_detection in ("server", "client"), "one of server, client")
        self.check("video_size", self.video_size % 2 == 0, "must be even")
        self.check("tls_key_file", bool(self.tls_cert_file) == bool(self.tls_key_file),
                   "TALKER_WEB_TLS_CERT_FILE and TALKER_WEB_TLS_KEY_FILE go together")
        self.check("gateway_tls_client_key_file",
                   bool(self.gateway_tls_client_cert_file) == bool(self.gateway_tls_client_key_file),
                   "TALKER_WEB_GATEWAY_TLS_CLIENT_CERT_FILE and ..._KEY_FILE go together")
        self.check("gateway_tls_client_cert_file",
                   not self.gateway_tls_client_cert_file or bool(self.gateway_tls_ca_file),
                   "needs TALKER_WEB_GATEWAY_TLS_CA_FILE (mTLS is TLS first)")
        bad = [url for url in self.ice_servers if url.split(":", 1)[0] not in ("stun", "stuns", "turn", "turns")]
        self.check("ice_servers", not bad, f"{bad[0] if bad else ''!r} is not a stun:, stuns:, turn: or turns: URL")
        self.check("log_level", self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
                   "one of DEBUG, INFO, WARNING, ERROR")
