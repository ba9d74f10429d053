"""The alerting and recording rules, unit-tested with promtool, and the dashboard kept in sync."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from observability import build_slo_rules as slo
from observability.build_dashboard import OUT, render

HERE = Path(__file__).parent
RULES = HERE.parent.parent / "helm" / "talker" / "files" / "talker-rules.yml"
promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by make test")
HELM = HERE.parent.parent / ".venv" / "tools" / "bin" / "helm"


@promtool
def test_rules_are_valid():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@promtool
def test_every_alert_fires_when_it_should_and_only_then():
    run = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=HERE, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_is_unit_tested_and_documented():
    import yaml

    rules = yaml.safe_load(RULES.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    tested = (HERE / "rules_test.yml").read_text()
    runbooks = (HERE.parent.parent / "docs" / "runbooks.md").read_text().lower()
    for alert in alerts:
        assert f"alertname: {alert['alert']}" in tested, alert["alert"]
        ann = alert["annotations"]
        assert ann["summary"] and ann["description"] and ann["runbook_url"]
        assert f"## {alert['alert'].lower()}" in runbooks, f"docs/runbooks.md lacks {alert['alert']}"


def test_dashboard_json_is_generated_from_the_builder():
    assert OUT.read_text() == render(), "run make dashboard"
    board = json.loads(OUT.read_text())
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "namespace", "component"}
    assert all(t["expr"] for p in board["panels"] for t in p.get("targets", []))


def test_slo_rules_are_generated_from_the_builder():
    assert slo.OUT.read_text() == slo.render(slo.helm_params()), "run make slo-rules"


@promtool
@pytest.mark.parametrize("tests", ["slo_rules_test.yml", "slo_rules_slow_test.yml"])
def test_slo_burn_alerts_fire_when_they_should_and_only_then(tmp_path, tests):
    # The plain rules for the chart's default values, next to the recording rules they use.
    (tmp_path / "talker-slo-rules.yml").write_text(slo.render(slo.plain_params(slo.merged_values([]))))
    shutil.copy(RULES, tmp_path / "talker-rules.yml")
    shutil.copy(HERE / tests, tmp_path / tests)
    check = subprocess.run(["promtool", "check", "rules", "talker-slo-rules.yml"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(["promtool", "test", "rules", tests], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _chart_slo_groups(*sets: str) -> list[dict]:
    import yaml

    args = [str(HELM), "template", "t", str(RULES.parent.parent), "-s", "templates/prometheusrule.yaml",
            "--set", "metrics.prometheusRule.force=true"]
    for s in sets:
        args += ["--set", s]
    rendered = yaml.safe_load(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    return [g for g in rendered["spec"]["groups"] if g["name"].startswith("talker.slo.")]


@pytest.mark.skipif(not HELM.exists(), reason="helm is installed by make k8s-tools")
def test_chart_renders_the_same_slo_rules_as_the_plain_builder_for_any_values(tmp_path):
    import yaml

    assert _chart_slo_groups() == slo.groups(slo.plain_params(slo.merged_values([])))
    over = {"slo": {"period": "1h", "objectives": {"availability": {"target": 90},
                                                   "timeToFirstFrame": {"threshold": "1.0"}},
                    "windows": {"page1": {"long": "1m", "short": "15s", "burnRate": 2}}}}
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(over))
    sets = ["slo.period=1h", "slo.objectives.availability.target=90",
            "slo.objectives.timeToFirstFrame.threshold=1.0", "slo.windows.page1.long=1m",
            "slo.windows.page1.short=15s", "slo.windows.page1.burnRate=2"]
    plain = slo.groups(slo.plain_params(slo.merged_values([tmp_path / "v.yaml"])))
    assert _chart_slo_groups(*sets) == plain
    exprs = " ".join(r["expr"] for g in plain for r in g["rules"])
    assert "[1m]" in exprs and 'le="1.0"' in exprs and "(1 - 90 / 100)" in exprs
    # An objective switched off leaves its group out.
    names = [g["name"] for g in _chart_slo_groups("slo.objectives.endOfTurnDelay.enabled=false")]
    assert names == ["talker.slo.availability", "talker.slo.timeToFirstFrame"]


def test_every_slo_alert_is_documented():
    runbooks = (HERE.parent.parent / "docs" / "runbooks.md").read_text().lower()
    alerts = {r["alert"] for g in slo.groups(slo.helm_params()) for r in g["rules"] if "alert" in r}
    assert alerts == {"TalkerErrorBudgetBurnFast", "TalkerErrorBudgetBurnSlow"}
    assert "## talkererrorbudgetburn" in runbooks


@pytest.mark.skipif(not HELM.exists(), reason="helm is installed by make k8s-tools")
def test_runbook_links_are_absolute_with_the_base_url_and_point_at_a_section():
    import yaml

    base = "https://docs.example.org/talker/runbooks.md"
    args = [str(HELM), "template", "t", str(RULES.parent.parent), "-s", "templates/prometheusrule.yaml",
            "--set", "metrics.prometheusRule.force=true", "--set", f"metrics.prometheusRule.runbookBaseUrl={base}"]
    rule = yaml.safe_load(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    links = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    runbooks = (HERE.parent.parent / "docs" / "runbooks.md").read_text().lower()
    assert links and all(link.startswith(base + "#") for link in links), links
    assert all(f"## {link.split('#')[1]}" in runbooks for link in links)


def test_slo_thresholds_are_the_histograms_own_bucket_boundaries():
    """A latency SLO counts `le` buckets, so the values schema allows exactly the boundaries of the
    histogram's bucket family (formatted as prometheus_client writes them into `le`)."""
    from services.common import buckets

    schema = json.loads((RULES.parent.parent / "values.schema.json").read_text())
    objectives = schema["properties"]["slo"]["properties"]["objectives"]["properties"]
    for name, family in (("timeToFirstFrame", buckets.FIRST_OUTPUT), ("endOfTurnDelay", buckets.ENDPOINTING)):
        assert objectives[name]["properties"]["threshold"]["enum"] == [repr(float(b)) for b in family], name
