"""Rendering the chart for the chart tests (helm from .venv/tools, run by `make test-k8s`)."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from services.common import registry

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "talker"
HELM = Path(os.environ.get("HELM", ROOT / ".venv" / "tools" / "bin" / "helm"))
KUBECTL = Path(os.environ.get("KUBECTL", ROOT / ".venv" / "tools" / "bin" / "kubectl"))
RELEASE = "talker"
NAMESPACE = "talker"
SERVICES = tuple(sorted(registry.SERVICES))
STAGES = registry.STAGES
# The APIs of the Prometheus Operator and KEDA, announced as a cluster that has them would.
CRD_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule",
            "keda.sh/v1alpha1/ScaledObject")
# The value scenarios: every ci/*.yaml plus the GPU values file users pass.
SCENARIOS = [*sorted(p.name for p in (CHART / "ci").glob("*.yaml")), "values-gpu-llm.yaml"]

# These tests run in .venv/k8s with helm installed (`make test-k8s`); anywhere else they are not collected.
try:
    import kubernetes_validate  # noqa: F401
    _ready = HELM.exists()
except ImportError:
    _ready = False
if not _ready:
    collect_ignore_glob = ["test_*.py"]


def scenario_path(name: str) -> Path:
    return CHART / name if name == "values-gpu-llm.yaml" else CHART / "ci" / name


def helm(*args: str, chart: Path = CHART, check: bool = True) -> subprocess.CompletedProcess:
    """Runs helm; `template` gets the release name and the chart."""
    cmd = [str(HELM), *args]
    if args[0] == "template":
        cmd[2:2] = [RELEASE, str(chart)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc


@functools.cache
def _render(values: tuple[str, ...], sets: tuple[str, ...], apis: tuple[str, ...],
            show: tuple[str, ...]) -> tuple[dict, ...]:
    args = ["template", "--namespace", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    for a in apis:
        args += ["--api-versions", a]
    for s in show:
        args += ["--show-only", s]
    out = helm(*args).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(*values: str | Path, sets: tuple[str, ...] = (), apis: tuple[str, ...] = CRD_APIS,
           show: tuple[str, ...] = ()) -> list[dict]:
    """The chart's objects for these values files and --set values (deep copies, safe to modify)."""
    return copy.deepcopy(list(_render(tuple(str(v) for v in values), tuple(sets), tuple(apis), tuple(show))))


def render_error(*sets: str, values: tuple[str | Path, ...] = ()) -> str:
    args = ["template", "--namespace", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, check=False)
    assert proc.returncode != 0, "helm template was expected to fail"
    return proc.stderr


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(deployment).get("env", [])}


def notes(*sets: str) -> str:
    """NOTES.txt as helm install would print it (helm template does not render it)."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "talker"
        shutil.copytree(CHART, chart)
        shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-src.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
            '{{ tpl (.Files.Get "notes-src.txt") . | indent 4 }}\n')
        args = ["template", "--namespace", NAMESPACE, "--show-only", "templates/zz-notes.yaml"]
        for s in sets:
            args += ["--set", s]
        out = helm(*args, chart=chart).stdout
    return yaml.safe_load(out)["data"]["notes"]


@pytest.fixture(params=SCENARIOS)
def scenario(request) -> tuple[str, list[dict]]:
    return request.param, render(scenario_path(request.param))
