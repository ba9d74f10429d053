"""Web service settings (``TALKER_WEB_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import check_port, require


@dataclasses.dataclass(frozen=True)
class WebConfig:
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

    def __post_init__(self) -> None:
        check_port("TALKER_WEB_PORT", self.port)
        check_port("TALKER_WEB_METRICS_PORT", self.metrics_port)
        require(1 <= self.max_sessions <= 10000, f"TALKER_WEB_MAX_SESSIONS={self.max_sessions}: must be 1..10000")
        require(self.turn_detection in ("server", "client"),
                f"TALKER_WEB_TURN_DETECTION={self.turn_detection!r}: one of server, client")
        require(64 <= self.video_size <= 2048 and self.video_size % 2 == 0,
                f"TALKER_WEB_VIDEO_SIZE={self.video_size}: must be an even number of px in 64..2048")
        require(1 <= self.fps <= 60, f"TALKER_WEB_FPS={self.fps}: must be 1..60")
        require(0.5 <= self.ice_timeout_seconds <= 60,
                f"TALKER_WEB_ICE_TIMEOUT_SECONDS={self.ice_timeout_seconds}: must be 0.5..60")
        require(bool(self.gateway_tls_client_cert_file) == bool(self.gateway_tls_client_key_file),
                "TALKER_WEB_GATEWAY_TLS_CLIENT_CERT_FILE and TALKER_WEB_GATEWAY_TLS_CLIENT_KEY_FILE go together")
        require(not self.gateway_tls_client_cert_file or bool(self.gateway_tls_ca_file),
                "TALKER_WEB_GATEWAY_TLS_CLIENT_CERT_FILE needs TALKER_WEB_GATEWAY_TLS_CA_FILE (mTLS is TLS first)")
        require(bool(self.tls_cert_file) == bool(self.tls_key_file),
                "TALKER_WEB_TLS_CERT_FILE and TALKER_WEB_TLS_KEY_FILE must be set together")
        for url in self.ice_servers:
            require(url.split(":", 1)[0] in ("stun", "stuns", "turn", "turns"),
                    f"TALKER_WEB_ICE_SERVERS: {url!r} is not a stun:, stuns:, turn: or turns: URL")
        require(8000 <= self.input_sample_rate <= 48000,
                f"TALKER_WEB_INPUT_SAMPLE_RATE={self.input_sample_rate}: must be 8000..48000")
        require(self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
                f"TALKER_WEB_LOG_LEVEL={self.log_level!r}: one of DEBUG, INFO, WARNING, ERROR")
