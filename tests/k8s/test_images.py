"""The container images, checked by reading their Dockerfiles (no Docker engine here): multi-stage, the
service's own lock as the only dependency source, non-root, the ports and module the chart expects;
and docker-compose.yml against the same facts."""

from __future__ import annotations

import fnmatch
import glob
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.k8s.conftest import CHART, ROOT, SERVICES

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
UID = VALUES["podSecurityContext"]["runAsUser"]


def dockerfile(name: str) -> Path:
    return ROOT / (name if name in ("gateway", "web") else f"services/{name}") / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def dockerignore() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_is_multi_stage_from_python_slim(name):
    ins = instructions(dockerfile(name))
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in ins
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    assert froms[0] == "${PYTHON_IMAGE} AS build" and froms[-1] == "${PYTHON_IMAGE}"


@pytest.mark.parametrize("name", SERVICES)
def test_dependencies_come_only_from_the_services_lock(name):
    build, *_, final = stages(dockerfile(name))
    lock_dir = name if name in ("gateway", "web") else f"services/{name}"
    copies = [args for word, args in build if word == "COPY"]
    assert any(a.split()[0] in (f"{lock_dir}/requirements.txt", f"{lock_dir}/requirements*.txt") for a in copies)
    runs = ";".join(args for word, args in build if word == "RUN")
    installs = re.findall(r"pip install ([^;&|]*)", runs)
    assert installs
    for args in installs:
        # Shell expansions aside (${...} adds only flags), every argument is a flag or `-r <lock file>`:
        # no package is named outside the lock.
        # ($nodeps holds --no-deps when the lock's header asks for it.)
        args = re.sub(r"\$nodeps\b", "--no-deps", re.sub(r"\$\{[^}]*\}", "", args))
        tokens = shlex.split(re.sub(r"\$\w+", "VAR", args))
        rest = [t for t in tokens if not t.startswith("--")]
        assert rest and len(rest) % 2 == 0, args
        for flag, value in zip(rest[::2], rest[1::2], strict=True):
            assert flag == "-r" and (value.endswith(".txt") or value == "VAR"), args
    # nothing is installed with pip in the runtime stage; the venv is copied from the build stage
    assert not any("pip install" in args for word, args in final if word == "RUN")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final


def main_port(name: str, cfg: dict) -> tuple[int, str, str]:
    """(the service's own port, the variables naming it and its metrics port): gRPC, or the web page's HTTP."""
    if "httpPort" in cfg:
        return cfg["httpPort"], f"TALKER_{name.upper()}_PORT", f"TALKER_{name.upper()}_METRICS_PORT"
    return cfg["grpcPort"], "TALKER_GRPC_PORT", "TALKER_METRICS_PORT"


@pytest.mark.parametrize("name", SERVICES)
def test_runtime_stage_runs_the_module_as_non_root_on_the_charts_ports(name):
    final = stages(dockerfile(name))[-1]
    cfg = VALUES["services"][name]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] == f"{UID}:{UID}", "numeric non-root user (runAsNonRoot can verify it)"
    assert any(w == "RUN" and f"--uid {UID}" in a for w, a in final)
    exposed = {int(p) for w, a in final if w == "EXPOSE" for p in a.split()}
    port, port_var, metrics_var = main_port(name, cfg)
    assert exposed == {port, cfg["metricsPort"]}
    (cmd,) = [a for w, a in final if w == "CMD"]
    assert yaml.safe_load(cmd) == ["python", "-m", cfg["module"]]
    env = " ".join(a for w, a in final if w == "ENV")
    assert f"{port_var}={port}" in env and f"{metrics_var}={cfg['metricsPort']}" in env
    assert "PYTHONPATH=/app" in env and "HOME=/tmp" in env  # /tmp is the writable emptyDir/tmpfs
    assert any(w == "HEALTHCHECK" for w, _ in final)


@pytest.mark.parametrize("name", SERVICES)
def test_copied_paths_exist_and_are_not_ignored(name):
    ignored = dockerignore()
    for word, args in instructions(dockerfile(name)):
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for src in sources:
            matches = glob.glob(str(ROOT / src))
            assert matches, f"{dockerfile(name)}: COPY {src} matches nothing"
            top = src.rstrip("/")
            assert not any(fnmatch.fnmatch(top, pat) or top.startswith(pat.rstrip("/") + "/") for pat in ignored), src
    for needed in (".venv", ".git", "out", "tests", "**/__pycache__"):
        assert needed in ignored


def test_variants_select_their_own_lock():
    for name in ("llm", "tts"):
        runs = " ".join(a for w, a in instructions(dockerfile(name)) if w == "RUN")
        assert "requirements${VARIANT:+-$VARIANT}.txt" in runs
        assert "ARG VARIANT" in (ROOT / f"services/{name}/Dockerfile").read_text()
    llm = (ROOT / "services/llm/Dockerfile").read_text()
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in llm and "build-essential cmake" in llm
    assert "--no-deps -r /src/requirements-nodeps.txt" in llm
    # the chart's GPU values name the image variant the Dockerfile builds
    gpu = yaml.safe_load((CHART / "values-gpu-llm.yaml").read_text())
    variant = gpu["services"]["llm"]["image"]["variant"]
    assert (ROOT / f"services/llm/requirements-{variant}.txt").exists()


def test_healthcheck_script_compiles():
    compile((ROOT / "docker" / "healthcheck.py").read_text(), "healthcheck.py", "exec")


def test_compose_matches_the_images_and_the_chart():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == set(SERVICES)
    for name, svc in services.items():
        cfg = VALUES["services"][name]
        assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]) == dockerfile(name)
        assert svc["read_only"] is True and svc["user"] == f"{UID}:{UID}" and svc["cap_drop"] == ["ALL"]
        env = svc["environment"]
        port, port_var, metrics_var = main_port(name, cfg)
        assert env[port_var] == str(port) and env[metrics_var] == str(cfg["metricsPort"])
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} would be public"
    gw = services["gateway"]["environment"]
    for stage in ("asr", "llm", "tts", "animator"):
        assert gw[f"TALKER_GATEWAY_{stage.upper()}_TARGET"] == f"dns:///{stage}:{VALUES['services'][stage]['grpcPort']}"
        assert services["gateway"]["depends_on"][stage] == {"condition": "service_healthy"}
