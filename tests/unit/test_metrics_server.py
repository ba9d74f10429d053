"""The protected /metrics endpoint: basic auth and TLS, with a certificate made by the test."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from services.common.config import ConfigError, ServerConfig
from services.common.metrics_server import read_users, start
from stack.process import free_port


@pytest.fixture
def registry():
    reg = CollectorRegistry()
    Counter("talker_test_things_total", "Things.", registry=reg).inc(3)
    return reg


def get(url: str, auth: tuple[str, str] | None = None, context=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    return urllib.request.urlopen(req, timeout=5, context=context)


def test_basic_auth_refuses_missing_and_wrong_credentials(tmp_path, registry):
    users = tmp_path / "users"
    users.write_text("# scrapers\nprometheus:s3cret\n")
    port = free_port()
    httpd = start(ServerConfig(metrics_port=port, metrics_basic_auth_file=str(users)), registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for auth in (None, ("prometheus", "wrong"), ("nobody", "s3cret")):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(url, auth)
            assert err.value.code == 401
        body = get(url, ("prometheus", "s3cret")).read().decode()
        assert "talker_test_things_total 3.0" in body
    finally:
        httpd.shutdown()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_serves_metrics_only_over_tls(tmp_path, registry):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    httpd = start(ServerConfig(metrics_port=port, metrics_tls_cert_file=str(cert), metrics_tls_key_file=str(key)),
                  registry)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        assert "talker_test_things_total" in get(f"https://127.0.0.1:{port}/metrics", context=context).read().decode()
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(f"http://127.0.0.1:{port}/metrics")
    finally:
        httpd.shutdown()


def test_bad_settings_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        read_users(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("justauser\n")
    with pytest.raises(ConfigError, match="line 1: expected user:password"):
        read_users(str(bad))
    with pytest.raises(ConfigError, match="set it together with TALKER_METRICS_TLS_CERT_FILE"):
        ServerConfig(metrics_tls_cert_file="/x.crt")
