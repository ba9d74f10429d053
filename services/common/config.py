"""Typed configuration read from ``TALKER_*`` environment variables.

Each service declares frozen dataclasses; :func:`from_env` fills them from the
environment, converts each value to the field's type and reports every bad or
unknown-looking value in one clear :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


def _parse(name: str, raw: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw.strip() == "":
            return None
        return _parse(name, raw, args[0])
    if kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r}: expected a boolean (true/false, 1/0, yes/no, on/off)")
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if kind is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return tuple(_parse(name, part.strip(), item) for part in raw.split(",") if part.strip())
    return raw


def from_env(cls: type[T], prefix: str, env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build ``cls`` from ``prefix + FIELD_NAME`` variables.

    ``overrides`` replace a field's declared default (used for per-service port
    defaults); an environment variable still wins over them.
    """
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict(overrides)
    errors: list[str] = []
    for field in dataclasses.fields(cls):
        name = prefix + field.name.upper()
        if name in env:
            try:
                values[field.name] = _parse(name, env[name], hints[field.name])
            except ConfigError as exc:
                errors.append(str(exc))
    if errors:
        raise ConfigError("; ".join(errors))
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}*: {exc}") from None


def read_setting_file(setting: str, path: str) -> bytes:
    """The file a setting names (certificates, key lists), or a ConfigError naming the setting."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot read it ({exc.strerror})") from None


def require(condition: bool, message: str) -> None:
    """Validation helper for ``__post_init__``."""
    if not condition:
        raise ConfigError(message)


def check_port(name: str, value: int) -> None:
    require(0 <= value <= 65535, f"{name}={value}: a port is 0..65535")


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Settings every service process shares (``TALKER_*``)."""

    grpc_port: int = 0
    metrics_port: int = 0
    host: str = "127.0.0.1"
    metrics_host: str = "127.0.0.1"
    # Seconds in-flight calls get to finish after SIGTERM.
    grace_seconds: float = 10.0
    # Calls beyond this are refused with RESOURCE_EXHAUSTED instead of queued.
    max_concurrent_rpcs: int = 16
    # Threads for model inference; the default keeps five services within 2 cores.
    threads: int = 1
    max_message_bytes: int = 8 * 1024 * 1024
    log_level: str = "INFO"
    # gRPC server metrics (the grpc_server_* interceptor); off only to measure its cost.
    metrics_enabled: bool = True
    # Optional /metrics protection where no mesh provides mTLS (see services/common/metrics_server.py).
    metrics_basic_auth_file: str = ""
    metrics_tls_cert_file: str = ""
    metrics_tls_key_file: str = ""
    # gRPC TLS: the server's certificate chain and key (PEM). With a client CA as well,
    # clients must present a certificate it signed (mutual TLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # A second, plaintext port serving only grpc.health.v1 (0 = none): kubelet gRPC probes
    # cannot speak TLS, so with TLS on the main port the probes point here.
    health_port: int = 0
    # Fault injection for tests and drills: every call to the stage's own RPCs
    # waits this long before it is handled. Never set in production.
    fault_delay_seconds: float = 0.0
    # The container's memory limit and CPU request as the chart passes them (downward API; 0 = not
    # known): exported so that OOM forecasts and capacity rules work without kube-state-metrics.
    memory_limit_bytes: int = 0
    cpu_request_millicores: int = 0

    def __post_init__(self) -> None:
        check_port("TALKER_GRPC_PORT", self.grpc_port)
        check_port("TALKER_METRICS_PORT", self.metrics_port)
        check_port("TALKER_HEALTH_PORT", self.health_port)
        require(self.grace_seconds >= 0, f"TALKER_GRACE_SECONDS={self.grace_seconds}: must be >= 0")
        require(self.max_concurrent_rpcs >= 1, f"TALKER_MAX_CONCURRENT_RPCS={self.max_concurrent_rpcs}: must be >= 1")
        require(1 <= self.threads <= 256, f"TALKER_THREADS={self.threads}: must be 1..256")
        require(self.max_message_bytes >= 64 * 1024,
                f"TALKER_MAX_MESSAGE_BYTES={self.max_message_bytes}: must be >= 65536")
        require(0 <= self.fault_delay_seconds <= 600,
                f"TALKER_FAULT_DELAY_SECONDS={self.fault_delay_seconds}: must be 0..600")
        require(self.memory_limit_bytes >= 0, f"TALKER_MEMORY_LIMIT_BYTES={self.memory_limit_bytes}: must be >= 0")
        require(self.cpu_request_millicores >= 0,
                f"TALKER_CPU_REQUEST_MILLICORES={self.cpu_request_millicores}: must be >= 0")
        require(bool(self.metrics_tls_cert_file) == bool(self.metrics_tls_key_file),
                "TALKER_METRICS_TLS_CERT_FILE and TALKER_METRICS_TLS_KEY_FILE must be set together")
        require(bool(self.tls_cert_file) == bool(self.tls_key_file),
                "TALKER_TLS_CERT_FILE and TALKER_TLS_KEY_FILE must be set together")
        require(not self.tls_client_ca_file or bool(self.tls_cert_file),
                "TALKER_TLS_CLIENT_CA_FILE needs TALKER_TLS_CERT_FILE and TALKER_TLS_KEY_FILE (mTLS is TLS first)")
        require(self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
                f"TALKER_LOG_LEVEL={self.log_level!r}: one of DEBUG, INFO, WARNING, ERROR")
