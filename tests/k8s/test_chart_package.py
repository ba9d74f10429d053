"""`make chart-package`: the chart packaged for publishing with its public addresses set (Chart.yaml in
the repository names none), linted; a bad address is refused before anything is packaged."""

from __future__ import annotations

import subprocess
import tarfile

import yaml

from tests.k8s.conftest import CRD_APIS, HELM, ROOT

HOME = "https://example.org/talker"


def package(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in {"CHART_OUT": str(tmp_path / "out"), **variables}.items()]
    return subprocess.run(["make", "--no-print-directory", "-s", "chart-package", f"HELM={HELM}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_package_carries_the_addresses(tmp_path):
    done = package(tmp_path, CHART_HOME=HOME, CHART_SOURCES=f"{HOME}/src {HOME}/mirror",
                   CHART_ICON=f"{HOME}/icon.svg", CHART_MAINTAINER_EMAIL="dev@example.org")
    assert done.returncode == 0, done.stdout + done.stderr
    [tgz] = (tmp_path / "out").glob("talker-*.tgz")
    with tarfile.open(tgz) as tar:
        chart = yaml.safe_load(tar.extractfile("talker/Chart.yaml"))
        assert "talker/values.yaml" in tar.getnames() and "talker/README.md" in tar.getnames()
    assert chart["home"] == HOME
    assert chart["sources"] == [f"{HOME}/src", f"{HOME}/mirror"]
    assert chart["icon"] == f"{HOME}/icon.svg"
    assert chart["maintainers"][0]["email"] == "dev@example.org"
    assert chart["name"] == "talker" and chart["version"] and chart["appVersion"]
    # The chart's home makes the alerts' runbook links absolute.
    rendered = subprocess.run([str(HELM), "template", "talker", str(tgz), *(f"--api-versions={a}" for a in CRD_APIS)],
                              capture_output=True, text=True, check=True).stdout
    assert f"runbook_url: {HOME}/blob/main/docs/runbooks.md#" in rendered


def test_the_repository_chart_is_left_as_it_is(tmp_path):
    before = (ROOT / "helm/talker/Chart.yaml").read_text()
    assert package(tmp_path, CHART_HOME=HOME).returncode == 0
    assert (ROOT / "helm/talker/Chart.yaml").read_text() == before
    assert "home:" not in before, "Chart.yaml names a home: the project has no public address yet"


def test_bad_addresses_are_refused(tmp_path):
    for variables, says in (({}, "set CHART_HOME"),
                            ({"CHART_HOME": "http://example.org/talker"}, "is not an https:// URL"),
                            ({"CHART_HOME": HOME, "CHART_ICON": "icon.svg"}, "'icon.svg' is not an https:// URL"),
                            ({"CHART_HOME": HOME, "CHART_MAINTAINER_EMAIL": "nobody"}, "is not an email address")):
        done = package(tmp_path, **variables)
        assert done.returncode != 0 and says in done.stdout + done.stderr, (variables, done.stdout + done.stderr)
        assert not list(tmp_path.glob("out/*.tgz")), variables
