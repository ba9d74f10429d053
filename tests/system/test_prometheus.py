"""Observability proven on a real Prometheus: the chart's ServiceMonitors find every service, every
dashboard and rule query returns data, exemplars carry trace ids, the service-down alert and an SLO
burn reach a real Alertmanager (and the burn resolves), and series do not grow with sessions."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request

import grpc
import pytest
import yaml

from services.common.registry import SERVICES
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.prometheus_stack import HELM, PrometheusStack, Webhook, render_chart, scrape_configs, wait
from tests.system.conftest import PORT_OFFSET

DASHBOARD = HELM.parent.parent.parent.parent / "helm" / "talker" / "files" / "talker-dashboard.json"
_missing = [t for t in ("prometheus", "prometheus-alertmanager") if shutil.which(t) is None]
if not HELM.exists():
    _missing.append(str(HELM))
if _missing and os.environ.get("CI"):
    raise RuntimeError(f"CI must install {_missing} (make test does)")
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"needs {_missing}; make test installs them")

# Panels that only show data when something goes wrong or a GPU is present: still evaluated (no
# error allowed, every metric must exist), just not required to return samples.
ONLY_ON_EVENTS = ("talker_gateway_stage_errors_total", "talker_gateway_rejected_sessions_total",
                  "talker_device_memory_bytes", "talker_device_memory_total_bytes", "talker:memory_limit_bytes",
                  "kube_pod_container_resource_limits")
RECORDING_ON_EVENTS = ("talker:stage_error_ratio:rate5m", "talker:stage_server_error_ratio:rate5m",
                       "talker:stage_client_error_ratio:rate5m", "talker:memory_limit_bytes")
# Series from elsewhere: kube-state-metrics, the pod's resources (the chart passes them in; a local
# process has none), and the voice loop's end-of-turn histogram.
EXTERNAL = {"kube_pod_container_resource_limits", "talker_memory_limit_bytes", "talker_cpu_request_cores",
            "talker_gateway_end_of_turn_delay_seconds_count", "talker_gateway_end_of_turn_delay_seconds_bucket"}
# The SLO windows shortened, so that a burn pages within seconds (the chart's values, as a user sets them).
FAST_SLO = ["slo.period=1h", "slo.windows.page1.long=1m", "slo.windows.page1.short=20s",
            "slo.windows.page2.long=2m", "slo.windows.page2.short=30s", "slo.windows.ticket1.long=10m",
            "slo.windows.ticket1.short=1m", "slo.windows.ticket2.long=30m", "slo.windows.ticket2.short=2m"]


def ask(gateway, **kw):
    return list(gateway.Ask(gateway_pb2.AskRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=12), **kw),
                            timeout=120))


def second_replica(tmp_path_factory, name: str, offset: int, timeout: float):
    """One more replica of ``name`` on its own ports (stage targets, for a gateway, on those ports too)."""
    s = Stack(run_dir=tmp_path_factory.mktemp(f"{name}2"), port_offset=PORT_OFFSET + offset)
    s.start((name,))
    s.wait_serving(timeout, names=(name,))
    yield s
    s.stop((name,))


@pytest.fixture(scope="module")
def extra_asr(tmp_path_factory):
    """A second ASR replica: the ServiceMonitor's Service has two pods, and one can be killed."""
    yield from second_replica(tmp_path_factory, "asr", 180, 120)


@pytest.fixture(scope="module")
def broken_gateway(tmp_path_factory):
    """A second gateway replica whose stages are unreachable: every turn it takes fails with
    UNAVAILABLE at its first stage (a stage outage as that replica sees it)."""
    yield from second_replica(tmp_path_factory, "gateway", 190, 60)


@pytest.fixture(scope="module")
def prom(stack, extra_asr, broken_gateway, tmp_path_factory):
    # The web page is not part of this stack (its metrics are checked by tests/web and the chart tests).
    objects = render_chart("metrics.serviceMonitor.force=true", "metrics.prometheusRule.force=true",
                           "metrics.serviceMonitor.interval=5s", *FAST_SLO,
                           "services.web.enabled=false")
    ports = {name: [svc.metrics_port] for name, svc in stack.services.items()}
    ports["asr"].append(extra_asr.services["asr"].metrics_port)
    ports["gateway"].append(broken_gateway.services["gateway"].metrics_port)
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = next(o for o in objects if o["kind"] == "PrometheusRule")
    (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}))
    ps = PrometheusStack(workdir, scrape_configs(objects, ports), rules_file=workdir / "rules.yml").start()
    yield ps
    ps.stop()


@pytest.fixture(scope="module")
def spoken(stack):
    return stack.speak("What is your favourite colour?")


def test_every_service_is_discovered_through_its_servicemonitor_and_up(prom):
    def targets():
        active = prom.api("/api/v1/targets")["activeTargets"]
        return active if len(active) == 7 and all(t["health"] == "up" for t in active) else None

    active = wait(targets, 60)
    assert active, prom.api("/api/v1/targets")["activeTargets"]
    components = sorted(t["labels"]["component"] for t in active)
    assert components == sorted([*(n for n, svc in SERVICES.items() if svc.grpc_port), "asr", "gateway"])
    assert {t["labels"]["job"] for t in active} == {"talker"}
    assert {t["labels"]["namespace"] for t in active} == {"talker"}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr)) - {"by", "without"}


def known_metrics(prom) -> set[str]:
    names = set(prom.api("/api/v1/label/__name__/values"))
    for family in prom.api("/api/v1/metadata"):
        names |= {family, family + "_total", family + "_bucket", family + "_count", family + "_sum"}
    return names


def test_every_dashboard_and_rule_query_returns_data(prom, gateway, spoken):
    ask(gateway, wav=spoken)
    for text in ("Hello there!", "How are you?"):
        ask(gateway, text=text)
    time.sleep(6)  # a scrape between the turns: rate() needs two samples
    ask(gateway, wav=spoken)
    for text in ("Tell me a joke.", "Good night!"):
        ask(gateway, text=text)

    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queries = [q.replace("$namespace", ".*").replace("$component", ".*").replace("$__rate_interval", "1m")
               for q in queries]
    rules = yaml.safe_load((prom.workdir / "rules.yml").read_text())["groups"]
    # The end-of-turn SLO needs hands-free turns, which these are not.
    rules = [{**g, "rules": [r for r in g["rules"] if r.get("labels", {}).get("slo") != "end-of-turn-delay"]}
             for g in rules]
    recorded = sorted({r["record"] for g in rules for r in g["rules"] if "record" in r})
    alerts = [r["expr"] for g in rules for r in g["rules"] if "alert" in r]

    # Recording rules are evaluated every 15 s; wait until they all have samples.
    assert wait(lambda: all(prom.query(r) for r in recorded if r not in RECORDING_ON_EVENTS), 60, 2), \
        {r: prom.query(r) for r in recorded}

    known = known_metrics(prom) | set(recorded) | EXTERNAL
    empty = []
    for q in queries + [r["expr"] for g in rules for r in g["rules"] if "record" in r] + alerts:
        missing = {m for m in metric_names(q) if m not in known}
        assert not missing, f"unknown metric(s) {missing} in {q}"
        result = prom.query(q)  # raises on a PromQL error
        if not result and q not in alerts and not any(m in q for m in ONLY_ON_EVENTS):
            empty.append(q)
    assert not empty, f"queries without data after turns: {empty}"


def test_turn_latency_carries_trace_exemplars(prom, stack, gateway):
    ask(gateway, text="One more, please.")
    req = urllib.request.Request(stack.services["gateway"].metrics_url,
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    assert re.search(r'^talker_gateway_turn_duration_seconds_bucket\{.*\} \d+(\.\d+)? # \{trace_id="[0-9a-f]{32}"\}',
                     text, re.M), "no exemplar on the turn histogram"

    def exemplars():
        now = time.time()
        return prom.api("/api/v1/query_exemplars", query="talker_gateway_turn_duration_seconds_bucket",
                        start=now - 600, end=now)

    data = wait(exemplars, 30, 2)
    assert data and all(len(e["labels"]["trace_id"]) == 32 for s in data for e in s["exemplars"])


def count_series(url: str) -> int:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_series_do_not_grow_with_sessions(stack, gateway):
    urls = {name: svc.metrics_url for name, svc in stack.services.items()}
    for i in range(5):
        ask(gateway, text=f"Session {i}: say a word.")
    after_5 = {name: count_series(url) for name, url in urls.items()}
    for i in range(5, 50):
        ask(gateway, text=f"Session {i}: say a word.")
    after_50 = {name: count_series(url) for name, url in urls.items()}
    assert after_50 == after_5


def test_a_killed_stage_fires_service_down_in_alertmanager(prom, extra_asr):
    killed = f"127.0.0.1:{extra_asr.services['asr'].metrics_port}"
    extra_asr.stop(("asr",))

    def fired():
        for payload in Webhook.received:
            for alert in payload.get("alerts", []):
                labels = alert["labels"]
                if labels.get("alertname") == "TalkerServiceDown" and labels.get("instance") == killed:
                    return alert
        return None

    alert = wait(fired, 150, 2)  # `for: 1m` plus scrape and evaluation intervals
    assert alert, f"no TalkerServiceDown for {killed}; received {Webhook.received}"
    assert alert["labels"]["component"] == "asr" and alert["labels"]["severity"] == "critical"
    assert "asr" in alert["annotations"]["summary"]


def test_a_stage_outage_pages_its_slo_burn_in_alertmanager_and_resolves(prom, gateway, broken_gateway):
    broken = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(broken_gateway.services["gateway"].target))

    def burn_alerts(status: str):
        return [a for payload in Webhook.received for a in payload.get("alerts", [])
                if a["labels"].get("alertname") == "TalkerErrorBudgetBurnFast"
                and a["labels"].get("slo") == "availability" and a["status"] == status]

    def fail_turns():
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as err:
                ask(broken, text="Are you there?")
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        return burn_alerts("firing")

    ask(gateway, text="Hello!")  # a good turn too: the ratio is over all the replicas' turns
    fired = wait(fail_turns, 120, 0.5)
    assert fired, f"no TalkerErrorBudgetBurnFast; received {Webhook.received}"
    alert = fired[0]
    assert alert["labels"]["stage"] == "llm" and alert["labels"]["severity"] == "critical"
    assert "availability" in alert["annotations"]["summary"] and "llm" in alert["annotations"]["summary"]

    # The fault removed (no more failing turns): the short windows empty and the page resolves.
    resolved = wait(lambda: burn_alerts("resolved"), 150, 2)
    assert resolved and resolved[0]["labels"]["stage"] == "llm", Webhook.received
