"""Client authentication at the gateway: API keys sent as bearer tokens.

The keys file (mounted from a Secret) has one key a line::

    # name:key[:scope[,scope...]]
    web-frontend:3f9c...:talk
    dashboard:8a1e...:read
    operator:77b0...            (no scope: every scope)

A client sends ``authorization: Bearer <key>`` metadata. No or an unknown key ->
UNAUTHENTICATED; a key without the scope the method needs -> PERMISSION_DENIED.
Health checks stay open (kubelet probes carry no token). Only a key's *name*
is ever logged or put in an error message, never the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging

import grpc

from services.common.config import ConfigError, read_setting_file
from services.common.handlers import around, refusing

log = logging.getLogger("talker.gateway.auth")

ALL = "*"
# The scope each method of the Gateway service needs; methods not listed need ALL.
METHOD_SCOPES = {
    "/talker.v1.GatewayService/Converse": "talk",
    "/talker.v1.GatewayService/Ask": "talk",
}
OPEN = ("/grpc.health.v1.Health/",)
MIN_KEY_CHARS = 16


@dataclasses.dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ALL in self.scopes or scope in self.scopes


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(text: str, source: str = "keys file") -> list[ApiKey]:
    keys: list[ApiKey] = []
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            # Never echo the line: it holds a key.
            raise ConfigError(f"{source} line {number}: expected name:key or name:key:scope")
        name, key = parts[0].strip(), parts[1].strip()
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError(f"{source} line {number} ({name}): the key is shorter than {MIN_KEY_CHARS} characters")
        if name in names:
            raise ConfigError(f"{source} line {number}: the name {name!r} appears twice")
        names.add(name)
        scopes = frozenset(s.strip() for s in parts[2].split(",") if s.strip()) if len(parts) == 3 else {ALL}
        if not scopes:
            raise ConfigError(f"{source} line {number} ({name}): empty scope")
        keys.append(ApiKey(name, _digest(key), frozenset(scopes)))
    if not keys:
        raise ConfigError(f"{source}: no keys")
    return keys


def load_keys(path: str) -> list[ApiKey]:
    text = read_setting_file("TALKER_GATEWAY_API_KEYS_FILE", path).decode("utf-8")
    return parse_keys(text, f"TALKER_GATEWAY_API_KEYS_FILE={path}")


def bearer_token(metadata) -> str | None:
    for item in metadata or ():
        key, value = item[0], item[1]
        if key.lower() == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class Authenticator:
    def __init__(self, keys: list[ApiKey]):
        self.keys = keys

    def check(self, method: str, metadata) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may proceed, else the status and message to refuse it with."""
        if method.startswith(OPEN):
            return None
        token = bearer_token(metadata)
        if token is None:
            return grpc.StatusCode.UNAUTHENTICATED, "authorization: missing; send 'authorization: Bearer <api key>'"
        digest = _digest(token)
        match = None
        for key in self.keys:  # compare against every key: no timing hint of which one matched
            if hmac.compare_digest(key.digest, digest):
                match = key
        if match is None:
            return grpc.StatusCode.UNAUTHENTICATED, "authorization: the API key is not valid"
        scope = METHOD_SCOPES.get(method, ALL)
        if not match.allows(scope):
            log.warning("key %r refused on %s: it lacks the %r scope", match.name, method, scope)
            return grpc.StatusCode.PERMISSION_DENIED, f"key {match.name!r} lacks the {scope!r} scope for {method}"
        return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator

    async def intercept_service(self, continuation, handler_call_details):
        refusal = self.authenticator.check(handler_call_details.method, handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler
        return around(handler, refusing(*refusal))
