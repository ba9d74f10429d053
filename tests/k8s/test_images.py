"""The container images, checked by reading docker/Dockerfile and the image table (docker/image.sh):
multi-stage, the image's hashed locks from its wheelhouse as the only package source, non-root, the ports
the chart expects; and docker-compose.yml against the same facts. tests/images builds and runs them."""

from __future__ import annotations

import fnmatch
import glob
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.conftest import CHART, ROOT, SERVICES

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
UID = VALUES["podSecurityContext"]["runAsUser"]


DOCKERFILE = ROOT / "docker" / "Dockerfile"


def image_sh(*args: str) -> list[str]:
    return subprocess.run(["bash", "docker/image.sh", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.split("\n")[:-1]


IMAGES = image_sh("list")
HEAVY_IMAGES = image_sh("list-heavy")


def build_args(image: str) -> dict[str, str]:
    """The build arguments docker/image.sh passes for one image."""
    return dict(line.split("=", 1) for line in image_sh("args", image))


def code_dir(name: str) -> str:
    return f"services/{name}" if (ROOT / "services" / name).is_dir() else name


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


def test_one_dockerfile_multi_stage_from_the_local_python_base():
    ins = instructions(DOCKERFILE)
    assert ("ARG", "PYTHON_IMAGE=localhost/talker-python:3.11") in ins
    froms = [args for word, args in ins if word == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    tracked = subprocess.run(["git", "ls-files", "*Dockerfile*"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.split() == ["docker/Dockerfile"]


def test_packages_come_only_from_the_wheelhouse_with_hashes():
    build, final = stages(DOCKERFILE)
    copies = [args for word, args in build if word == "COPY"]
    assert "out/wheelhouse/${IMAGE}/ /wheels/" in copies
    runs = ";".join(args for word, args in build if word == "RUN")
    installs = re.findall(r"pip install ([^;&|]*)", runs)
    assert installs
    for args in installs:
        tokens = shlex.split(args)
        for flag in ("--no-index", "--require-hashes", "--no-deps"):
            assert flag in tokens, args
        rest = [t for t in tokens if not t.startswith("--")]
        assert rest == ["/wheels", "-r", "$lock"], args  # --find-links /wheels -r <each lock>
    # nothing is installed with pip in the runtime stage (which has no pip); the venv is copied
    assert not any("pip install" in args for word, args in final if word == "RUN")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    assert "pip uninstall -y -q pip" in runs


def main_port(name: str, cfg: dict) -> tuple[int, str, str]:
    """(the service's own port, the variables naming it and its metrics port): gRPC, or the web page's HTTP."""
    if "httpPort" in cfg:
        return cfg["httpPort"], f"TALKER_{name.upper()}_PORT", f"TALKER_{name.upper()}_METRICS_PORT"
    return cfg["grpcPort"], "TALKER_GRPC_PORT", "TALKER_METRICS_PORT"


def test_web_image_serves_http_with_no_grpc_health_port():
    """The web page's image: its HTTP and metrics ports, no gRPC port, and no health port (its health is
    HTTP /healthz, which healthcheck.py asks when the image's module has an HTTP port)."""
    cfg = VALUES["services"]["web"]
    args = build_args("web")
    assert args["MODULE"] == cfg["module"] and args["CODE"] == "web"
    assert args["GRPC_PORT"] == "" and args["HEALTH_PORT"] == ""
    assert int(args["HTTP_PORT"]) == cfg["httpPort"] and int(args["METRICS_PORT"]) == cfg["metricsPort"]
    assert "HEALTH_PORT" not in build_args("gateway")  # the Dockerfile's default: the chart's probes.healthPort


def test_runtime_stage_is_non_root_with_an_entrypoint_and_health_check():
    final = stages(DOCKERFILE)[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] == f"{UID}:{UID}", "numeric non-root user (runAsNonRoot can verify it)"
    assert any(w == "RUN" and f"--uid {UID}" in a for w, a in final)
    env = " ".join(a for w, a in final if w == "ENV")
    for setting in ("TALKER_MODULE=${MODULE}", "PYTHONPATH=/app", "HOME=/tmp", "TALKER_HEALTH_PORT=${HEALTH_PORT:-0}"):
        assert setting in env
    assert ("ARG", f"HEALTH_PORT={VALUES['probes']['healthPort']}") in final
    assert ("EXPOSE", "${GRPC_PORT} ${HTTP_PORT} ${METRICS_PORT} ${HEALTH_PORT}") in final
    assert ("ENTRYPOINT", '["/usr/local/lib/talker/entrypoint.sh"]') in final
    assert any(w == "HEALTHCHECK" for w, _ in final)


@pytest.mark.parametrize("image", IMAGES + HEAVY_IMAGES)
def test_each_image_has_its_lock_and_the_charts_ports(image):
    service, _, variant = image.partition("-")
    args = build_args(image)
    cfg = VALUES["services"][service]
    port = args["GRPC_PORT"] or args["HTTP_PORT"]
    assert int(port) == cfg.get("grpcPort", cfg.get("httpPort")) and int(args["METRICS_PORT"]) == cfg["metricsPort"]
    assert args["MODULE"] == cfg["module"] and args["IMAGE"] == image
    lock = ROOT / code_dir(service) / f"requirements{'-' + variant if variant else ''}.txt"
    assert lock.exists(), f"{image}: no {lock.relative_to(ROOT)}"
    assert lock.with_suffix(".in").exists()


def test_default_images_cover_every_service():
    assert sorted(IMAGES) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_copied_paths_exist_and_are_not_ignored(name):
    ignored = dockerignore()
    code = code_dir(name)
    for word, args in instructions(DOCKERFILE):
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for src in sources:
            src = src.replace("${CODE}", code)
            if src.startswith("out/wheelhouse/"):
                assert "!out/wheelhouse" in ignored  # made by docker/image.sh before the build
                continue
            matches = glob.glob(str(ROOT / src))
            assert matches, f"COPY {src} matches nothing"
            top = src.rstrip("/")
            assert not any(fnmatch.fnmatch(top, pat) or top.startswith(pat.rstrip("/") + "/") for pat in ignored), src
    for needed in (".venv", ".git", "out", "tests", "**/__pycache__"):
        assert needed in ignored


def test_gpu_values_choose_the_cuda_images():
    gpu = yaml.safe_load((CHART / "values-gpu-llm.yaml").read_text())
    variant = gpu["services"]["llm"]["image"]["variant"]
    assert f"llm-{variant}" in HEAVY_IMAGES and "cuda" in variant
    assert "vllm==" in (ROOT / f"services/llm/requirements-{variant}.txt").read_text()


def test_healthcheck_script_compiles():
    compile((ROOT / "docker" / "healthcheck.py").read_text(), "healthcheck.py", "exec")


def test_compose_matches_the_images_and_the_chart():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == set(SERVICES)
    for name, svc in services.items():
        cfg = VALUES["services"][name]
        assert svc["image"] == f"${{TALKER_REGISTRY:-localhost}}/talker-{name}:${{TALKER_TAG:-0.1.0}}"
        assert "build" not in svc, f"{name}: images come from `make images`"
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
