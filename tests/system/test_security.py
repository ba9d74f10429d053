"""TLS and mutual TLS on every gRPC hop, API keys at the gateway; certificates made here with openssl."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.client import ClientSecurity
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc, tts_pb2, tts_pb2_grpc
from tests.system.conftest import PORT_OFFSET

OFFSET = PORT_OFFSET + 100  # beside the plaintext session stack
SHORT = gateway_pb2.SessionConfig(max_reply_tokens=16)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d: Path, name: str, ca: str, san: str) -> None:
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", ext.name, "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")
    make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "gateway-client", "ca", "DNS:gateway")
    make_cert(d, "client", "ca", "DNS:client")
    make_cert(d, "rogue-client", "rogue-ca", "DNS:client")
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


@pytest.fixture(scope="module")
def keys(pki):
    talk, read = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    path = pki / "api-keys"
    path.write_text(f"# test keys\ntester:{talk}:talk\nviewer:{read}:read\n")
    path.chmod(0o600)
    return {"talk": talk, "read": read, "file": path}


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, pki, keys):
    env = {"TALKER_TLS_CERT_FILE": str(pki / "server.crt"), "TALKER_TLS_KEY_FILE": str(pki / "server.key"),
           "TALKER_TLS_CLIENT_CA_FILE": str(pki / "ca.crt")}
    gateway_env = {"TALKER_GATEWAY_TLS_CA_FILE": str(pki / "ca.crt"),
                   "TALKER_GATEWAY_TLS_CLIENT_CERT_FILE": str(pki / "gateway-client.crt"),
                   "TALKER_GATEWAY_TLS_CLIENT_KEY_FILE": str(pki / "gateway-client.key"),
                   "TALKER_GATEWAY_API_KEYS_FILE": str(keys["file"])}
    client = ClientSecurity(ca_file=str(pki / "ca.crt"), cert_file=str(pki / "client.crt"),
                            key_file=str(pki / "client.key"))
    s = Stack(run_dir=tmp_path_factory.mktemp("tls-stack"), port_offset=OFFSET, env=env,
              service_env={"gateway": gateway_env}, client=client)
    s.stop()
    s.start()
    try:
        s.wait_serving(timeout=300)
        yield s
    finally:
        s.stop()


def ask(stub, metadata=(), text="Say hello.", timeout=120):
    return list(stub.Ask(gateway_pb2.AskRequest(text=text, config=SHORT), timeout=timeout, metadata=metadata))


def gateway_stub(stack: Stack, security: ClientSecurity):
    ch = security.channel(stack.services["gateway"].target, options=[("grpc.max_receive_message_length", 64 << 20)])
    return ch, gateway_pb2_grpc.GatewayServiceStub(ch)


def test_a_turn_works_end_to_end_over_mutual_tls(tls_stack, keys):
    ch, stub = gateway_stub(tls_stack, tls_stack.client)
    with ch:
        events = ask(stub, metadata=(("authorization", f"Bearer {keys['talk']}"),))
    kinds = {e.WhichOneof("event") for e in events}
    assert {"reply_text", "audio", "frame", "summary"} <= kinds, kinds
    assert events[-1].summary.frames > 0
    # every service said it serves mutual TLS
    for name in tls_stack.services:
        assert "gRPC (mutual TLS)" in tls_stack.services[name].log_file.read_text()


@pytest.mark.parametrize("who", ["plaintext", "no client certificate", "certificate from another CA"])
def test_a_client_without_a_valid_certificate_is_refused(tls_stack, pki, keys, who):
    security = {
        "plaintext": ClientSecurity(),
        "no client certificate": ClientSecurity(ca_file=str(pki / "ca.crt")),
        "certificate from another CA": ClientSecurity(ca_file=str(pki / "ca.crt"),
                                                      cert_file=str(pki / "rogue-client.crt"),
                                                      key_file=str(pki / "rogue-client.key")),
    }[who]
    for name in ("gateway", "tts"):
        with security.channel(tls_stack.services[name].target) as ch:
            with pytest.raises(grpc.RpcError) as err:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (name, err.value)


def test_a_stage_answers_a_client_with_a_valid_certificate(tls_stack):
    with tls_stack.channel("tts") as ch:
        voices = tts_pb2_grpc.TtsServiceStub(ch).ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    assert voices.voices


@pytest.mark.parametrize(("token", "code", "words"), [
    (None, grpc.StatusCode.UNAUTHENTICATED, "authorization: missing"),
    ("not-a-key-at-all-000000", grpc.StatusCode.UNAUTHENTICATED, "not valid"),
    ("read", grpc.StatusCode.PERMISSION_DENIED, "lacks the 'talk' scope"),
])
def test_the_gateway_refuses_calls_without_a_good_token(tls_stack, keys, token, code, words):
    ch, stub = gateway_stub(tls_stack, tls_stack.client)
    metadata = () if token is None else (("authorization", f"Bearer {keys.get(token, token)}"),)
    with ch:
        with pytest.raises(grpc.RpcError) as err:
            ask(stub, metadata=metadata, timeout=10)
        assert err.value.code() == code
        assert words in err.value.details()
        # health stays open to the kubelet's probes: no token needed
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_no_key_reaches_the_logs(tls_stack, keys):
    logs = "".join(svc.log_file.read_text() for svc in tls_stack.services.values())
    assert "tester" in logs and "viewer" in logs  # names are logged ...
    assert keys["talk"] not in logs and keys["read"] not in logs  # ... keys never


def test_a_missing_certificate_file_is_a_clear_configuration_error(tmp_path, pki):
    s = Stack(run_dir=tmp_path, port_offset=OFFSET + 50,
              env={"TALKER_TLS_CERT_FILE": str(tmp_path / "nope.crt"), "TALKER_TLS_KEY_FILE": str(pki / "server.key")})
    s.start(("gateway",))
    proc = s.services["gateway"].proc
    assert proc.wait(timeout=60) == 2
    assert "TALKER_TLS_CERT_FILE" in s.services["gateway"].log_file.read_text()
