"""Gateway settings (``TALKER_GATEWAY_*``)."""

from __future__ import annotations

import dataclasses

from services.common.config import require
from services.common.registry import STAGES, local_target


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    # Stage addresses: host:port, or dns:///name:port for round-robin over all replicas.
    asr_target: str = local_target("asr")
    llm_target: str = local_target("llm")
    tts_target: str = local_target("tts")
    animator_target: str = local_target("animator")
    max_sessions: int = 8
    # A turn that runs longer than this fails with DEADLINE_EXCEEDED (unless the client set a shorter deadline).
    turn_timeout_seconds: float = 120.0
    # History kept per session (user + assistant messages); the LLM trims further to its context window.
    history_messages: int = 40
    max_audio_seconds: float = 60.0
    max_text_chars: int = 4000
    max_avatar_bytes: int = 10 * 1024 * 1024
    # TLS to the stages: the CA that signed their certificates; with a client certificate
    # and key as well, the gateway presents them (mutual TLS). Empty = plaintext.
    tls_ca_file: str = ""
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    # Name to verify in the stages' certificates instead of the target's host name.
    tls_server_name: str = ""
    # Client authentication: a file of `name:key` or `name:key:scope[,scope]` lines
    # (mounted from a Secret). Empty = no authentication (local use only).
    api_keys_file: str = ""

    def __post_init__(self) -> None:
        require(1 <= self.max_sessions <= 100000, f"TALKER_GATEWAY_MAX_SESSIONS={self.max_sessions}: must be >= 1")
        require(0 < self.turn_timeout_seconds <= 3600,
                f"TALKER_GATEWAY_TURN_TIMEOUT_SECONDS={self.turn_timeout_seconds}: must be in (0, 3600]")
        require(0 <= self.history_messages <= 1000,
                f"TALKER_GATEWAY_HISTORY_MESSAGES={self.history_messages}: must be 0..1000")
        require(bool(self.tls_client_cert_file) == bool(self.tls_client_key_file),
                "TALKER_GATEWAY_TLS_CLIENT_CERT_FILE and TALKER_GATEWAY_TLS_CLIENT_KEY_FILE must be set together")
        require(not self.tls_client_cert_file or bool(self.tls_ca_file),
                "TALKER_GATEWAY_TLS_CLIENT_CERT_FILE needs TALKER_GATEWAY_TLS_CA_FILE (mTLS is TLS first)")
        for stage in STAGES:
            require(bool(self.target(stage)), f"TALKER_GATEWAY_{stage.upper()}_TARGET: must not be empty")

    def target(self, stage: str) -> str:
        return getattr(self, f"{stage}_target")
