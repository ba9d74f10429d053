"""The alerting and recording rules, unit-tested with promtool, and the dashboard kept in sync."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from observability.build_dashboard import OUT, render

HERE = Path(__file__).parent
RULES = HERE.parent.parent / "helm" / "talker" / "files" / "talker-rules.yml"
promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by make test")


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
