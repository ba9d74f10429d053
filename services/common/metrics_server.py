"""The /metrics HTTP endpoint, optionally behind basic auth and TLS.

/metrics is never public: in a mesh, mTLS and network policy guard it; without
one, ``TALKER_METRICS_BASIC_AUTH_FILE`` (lines of ``user:password``) and
``TALKER_METRICS_TLS_CERT_FILE`` / ``TALKER_METRICS_TLS_KEY_FILE`` protect it,
matching the ServiceMonitor's basicAuth and tlsConfig.
"""

from __future__ import annotations

import base64
import hmac
import ssl
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app, start_http_server
from prometheus_client.exposition import ThreadingWSGIServer

from services.common.config import ConfigError, ServerConfig, read_setting_file


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Scrapes every few seconds would flood the log."""


def read_users(path: str) -> dict[str, str]:
    users = {}
    lines = read_setting_file("TALKER_METRICS_BASIC_AUTH_FILE", path).decode("utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"TALKER_METRICS_BASIC_AUTH_FILE line {number}: expected user:password")
        users[user.strip()] = password.strip()
    if not users:
        raise ConfigError(f"TALKER_METRICS_BASIC_AUTH_FILE={path!r}: no user:password line")
    return users


def basic_auth(app, users: dict[str, str]):
    """WSGI middleware: 401 unless the request carries one of ``users``' credentials."""
    def check(header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = users.get(user)
        # compare_digest on both branches keeps the timing independent of which part was wrong
        return hmac.compare_digest(password.encode(), (expected or "\0").encode()) and expected is not None

    def guarded(environ, start_response):
        if check(environ.get("HTTP_AUTHORIZATION", "")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="talker metrics"'),
                                            ("Content-Type", "text/plain")])
        return [b"unauthorized\n"]

    return guarded


def start(config: ServerConfig, registry=REGISTRY):
    """Serve /metrics in a background thread; returns the server (None for the plain default)."""
    tls = bool(config.metrics_tls_cert_file or config.metrics_tls_key_file)
    if not config.metrics_basic_auth_file and not tls:
        start_http_server(config.metrics_port, addr=config.metrics_host, registry=registry)
        return None
    app = make_wsgi_app(registry)
    if config.metrics_basic_auth_file:
        app = basic_auth(app, read_users(config.metrics_basic_auth_file))
    httpd = make_server(config.metrics_host, config.metrics_port, app, ThreadingWSGIServer,
                        handler_class=_QuietHandler)
    if tls:
        if not (config.metrics_tls_cert_file and config.metrics_tls_key_file):
            raise ConfigError("TALKER_METRICS_TLS_CERT_FILE and TALKER_METRICS_TLS_KEY_FILE go together")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(config.metrics_tls_cert_file, config.metrics_tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"metrics TLS: cannot load the certificate or key ({exc})") from None
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="metrics-http").start()
    return httpd
