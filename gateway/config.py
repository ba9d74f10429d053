"""Gateway settings (``TALKER_GATEWAY_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from services.common.config import Settings
from services.common.limits import Range
from services.common.registry import STAGES, local_target


@dataclasses.dataclass(frozen=True)
class GatewayConfig(Settings):
    PREFIX = "TALKER_GATEWAY_"
    LIMITS: ClassVar[Mapping[str, Range]] = {
        "max_sessions": Range(1, 100_000),
        "turn_timeout_seconds": Range(0, 3600, open_lo=True),
        "history_messages": Range(0, 1000),
        "max_audio_seconds": Range(0, 3600, open_lo=True),
        "max_text_chars": Range(1, 1_000_000),
        "max_avatar_bytes": Range(1, 1 << 30),
    }

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

    def validate(self) -> None:
        self.check("tls_client_key_file", bool(self.tls_client_cert_file) == bool(self.tls_client_key_file),
                   f"set it together with {self.variable('tls_client_cert_file')}")
        self.check("tls_client_cert_file", not self.tls_client_cert_file or bool(self.tls_ca_file),
                   f"needs {self.variable('tls_ca_file')} (mTLS is TLS first)")
        for stage in STAGES:
            self.check(f"{stage}_target", bool(self.target(stage)), "must not be empty")

    def target(self, stage: str) -> str:
        return getattr(self, f"{stage}_target")
