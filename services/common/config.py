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
from typing import Any, ClassVar, TypeVar

from services.common.limits import Range

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


class Settings:
    """Base of the config dataclasses: the variable of a field is ``PREFIX + FIELD_NAME``.

    ``LIMITS`` maps fields to their allowed :class:`Range`; :meth:`check` reports any other
    rule. Either way the error names the variable and its value, spelled in one place.
    """

    PREFIX: ClassVar[str] = "TALKER_"
    LIMITS: ClassVar[Mapping[str, Range]] = {}

    def __post_init__(self) -> None:
        for field, allowed in self.LIMITS.items():
            self.check(field, getattr(self, field) in allowed, f"must be {allowed}")
        self.validate()

    def validate(self) -> None:
        """Rules beyond ranges (subclasses)."""

    @classmethod
    def variable(cls, field: str) -> str:
        return cls.PREFIX + field.upper()

    def check(self, field: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ConfigError(f"{self.variable(field)}={getattr(self, field)!r}: {rule}")


def from_env(cls: type[T], prefix: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build ``cls`` from ``prefix + FIELD_NAME`` variables (``prefix`` defaults to ``cls.PREFIX``).

    ``overrides`` replace a field's declared default (used for per-service port
    defaults); an environment variable still wins over them.
    """
    env = os.environ if env is None else env
    prefix = cls.PREFIX if prefix is None else prefix
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
    return cls(**values)


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


PORT = Range(0, 65535)


@dataclasses.dataclass(frozen=True)
class ServerConfig(Settings):
    """Settings every service process shares (``TALKER_*``)."""

    LIMITS: ClassVar[Mapping[str, Range]] = {
        "grpc_port": PORT,
        "metrics_port": PORT,
        "health_port": PORT,
        "grace_seconds": Range(0, 3600),
        "max_concurrent_rpcs": Range(1, 100_000),
        "threads": Range(1, 256),
        "max_message_bytes": Range(64 * 1024, 2**31 - 1),
        "fault_delay_seconds": Range(0, 600),
        "max_connection_age_seconds": Range(0, 30 * 86400),
        "max_connection_age_grace_seconds": Range(0, 30 * 86400),
        "memory_limit_bytes": Range(0, 2**63 - 1),
        "cpu_request_millicores": Range(0, 10**7),
    }

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
    # Connections older than this get a GOAWAY (0 = never): clients then reconnect and re-resolve DNS,
    # so replicas added since they connected (HPA, KEDA) receive their share of new calls. Calls in
    # flight get the grace period to finish before the connection closes.
    max_connection_age_seconds: float = 0.0
    max_connection_age_grace_seconds: float = 30.0
    # Fault injection for tests and drills: every call to the stage's own RPCs
    # waits this long before it is handled. Never set in production.
    fault_delay_seconds: float = 0.0
    # The container's memory limit and CPU request as the chart passes them (downward API; 0 = not
    # known): exported so that OOM forecasts and capacity rules work without kube-state-metrics.
    memory_limit_bytes: int = 0
    cpu_request_millicores: int = 0

    def validate(self) -> None:
        self.check("metrics_tls_key_file", bool(self.metrics_tls_cert_file) == bool(self.metrics_tls_key_file),
                   "set it together with TALKER_METRICS_TLS_CERT_FILE")
        self.check("tls_key_file", bool(self.tls_cert_file) == bool(self.tls_key_file),
                   "set it together with TALKER_TLS_CERT_FILE")
        self.check("tls_client_ca_file", not self.tls_client_ca_file or bool(self.tls_cert_file),
                   "needs TALKER_TLS_CERT_FILE and TALKER_TLS_KEY_FILE (mTLS is TLS first)")
        self.check("log_level", self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
                   "one of DEBUG, INFO, WARNING, ERROR")
