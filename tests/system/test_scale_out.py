"""Scale-out: a replica added while a client is connected gets calls within the servers' maximum
connection age. The client resolves a DNS name (dns:///asr.scale.test:PORT, round_robin, the gateway's
channel options) through a hosts file that the test rewrites, as a headless Service's DNS answer changes
when the HPA adds a pod: first one loopback address, then two. With TALKER_MAX_CONNECTION_AGE_SECONDS the
first replica's GOAWAY makes the client reconnect and re-resolve, and the new replica gets calls; the
control without it shows the client pinned to the first replica for the whole window."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from stack.process import ROOT, ServiceProcess, free_port, venv_dir

pytestmark = pytest.mark.system

NAME = "asr.scale.test"
HOSTS = ("127.0.0.2", "127.0.0.3")
AGE = 4.0
# The new replica must get calls within the age (+10% jitter) plus the client's minimum time between
# DNS resolutions (5 s, gateway/stages.py) and a margin for a loaded machine.
WINDOW = AGE * 1.1 + 5 + 6

if shutil.which("unshare") is None or os.geteuid() != 0:
    pytest.skip("needs root and unshare(1) for a private /etc/hosts", allow_module_level=True)


def transcribes(asr: ServiceProcess) -> float:
    return asr.value("grpc_server_handled_total", grpc_method="Transcribe", grpc_code="OK")


def write_hosts(path, addresses) -> None:
    # In place (same inode): the client's /etc/hosts is a bind mount of this file.
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n" + "".join(f"{a} {NAME}\n" for a in addresses))


@pytest.mark.parametrize("age", [AGE, 0.0], ids=["max-connection-age", "control-no-age"])
def test_a_replica_added_mid_run_gets_calls_within_the_connection_age(tmp_path, age):
    port = free_port()
    env = {"TALKER_MAX_CONNECTION_AGE_SECONDS": str(age), "TALKER_MAX_CONNECTION_AGE_GRACE_SECONDS": "2",
           "TALKER_THREADS": "1"}
    hosts = tmp_path / "hosts"
    write_hosts(hosts, HOSTS[:1])
    replicas = [ServiceProcess("asr", "services.asr", tmp_path / "a.log", env=env, host=HOSTS[0],
                               grpc_port=port).start()]
    client = None
    try:
        replicas[0].wait_serving(180)
        client_log = open(tmp_path / "client.log", "wb")
        client = subprocess.Popen(
            ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts),
             str(venv_dir() / "dev" / "bin" / "python"), "-m", "tests.system.scale_client", f"dns:///{NAME}:{port}"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=client_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while transcribes(replicas[0]) < 3:
            assert time.monotonic() < deadline, f"the client never reached the first replica:\n" \
                                                f"{(tmp_path / 'client.log').read_text()[-2000:]}"
            assert client.poll() is None, (tmp_path / "client.log").read_text()
            time.sleep(0.2)
        # The HPA adds a pod: DNS answers with both addresses once it is ready.
        replicas.append(ServiceProcess("asr", "services.asr", tmp_path / "b.log", env=env, host=HOSTS[1],
                                       grpc_port=port).start())
        replicas[1].wait_serving(180)
        write_hosts(hosts, HOSTS)
        added = time.monotonic()
        while time.monotonic() - added < WINDOW and transcribes(replicas[1]) == 0:
            time.sleep(0.2)
        got = transcribes(replicas[1])
        waited = time.monotonic() - added
        if age:
            assert got > 0, f"the new replica got no calls within {WINDOW:.1f} s with a {age} s connection age"
            assert transcribes(replicas[0]) > 0
        else:
            assert got == 0, "without a connection age the client was expected to stay on the first replica"
        print(f"age={age}: the new replica's first call after {waited:.1f} s ({got:.0f} calls)", file=sys.stderr)
    finally:
        if client is not None:
            os.killpg(client.pid, 15)
            client.wait(10)
        for r in replicas:
            r.stop()
