"""A real Prometheus and Alertmanager for the system tests, scraping the local services the way
the chart's ServiceMonitors tell the Prometheus Operator to scrape the pods."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import yaml

from stack.process import free_port

ROOT = Path(__file__).resolve().parent.parent
HELM = ROOT / ".venv" / "tools" / "bin" / "helm"
RULES = ROOT / "helm" / "talker" / "files" / "talker-rules.yml"
NAMESPACE = "talker"



def render_chart(*sets: str) -> list[dict]:
    args = [str(HELM), "template", "talker", str(ROOT / "helm" / "talker"), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _meta(label: str) -> str:
    """The service-discovery meta label the Operator's Kubernetes SD gives a Service label."""
    return "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def scrape_configs(objects: list[dict], local_ports: dict[str, list[int]]) -> list[dict]:
    """Prometheus scrape configs equivalent to the rendered ServiceMonitors.

    Each ServiceMonitor's selector picks its Service; the endpoint's named port must exist on it; the
    targets are the local processes of that Service's component (``local_ports``) standing in for its
    pods. Path, interval, scheme, jobLabel and relabelings are taken from the ServiceMonitor.
    """
    services = [o for o in objects if o["kind"] == "Service"]
    configs = []
    for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
        spec = sm["spec"]
        matched = [s for s in services if _selects(spec["selector"], s["metadata"]["labels"])]
        assert len(matched) == 1, f"ServiceMonitor {sm['metadata']['name']} selects {len(matched)} Services"
        svc = matched[0]
        labels = svc["metadata"]["labels"]
        component = labels["app.kubernetes.io/component"]
        for i, ep in enumerate(spec["endpoints"]):
            port_names = {p["name"] for p in svc["spec"]["ports"]}
            assert ep["port"] in port_names, f"{sm['metadata']['name']}: no port named {ep['port']}"
            meta = {_meta(k): v for k, v in labels.items()}
            meta["__meta_kubernetes_service_name"] = svc["metadata"]["name"]
            relabel = [{"source_labels": [r["sourceLabels"][0]], "target_label": r["targetLabel"],
                        "action": r.get("action", "replace")} for r in ep.get("relabelings", [])]
            job_label = spec.get("jobLabel")
            if job_label:  # the Operator names the job after this Service label
                relabel.append({"source_labels": [_meta(job_label)], "target_label": "job"})
            configs.append({
                "job_name": f"serviceMonitor/{NAMESPACE}/{sm['metadata']['name']}/{i}",
                "scrape_interval": ep.get("interval", "30s"),
                "metrics_path": ep.get("path", "/metrics"),
                "scheme": ep.get("scheme", "http"),
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in local_ports[component]],
                                    "labels": {**meta, "namespace": NAMESPACE,
                                               "service": svc["metadata"]["name"], "endpoint": ep["port"]}}],
                "relabel_configs": relabel,
            })
    return configs


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Webhook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class PrometheusStack:
    def __init__(self, workdir: Path, scrape: list[dict], rules_file: Path = RULES):
        self.workdir = workdir
        self.prom_port, self.am_port = free_port(), free_port()
        self.hook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
        Webhook.received = []
        am_config = {
            "route": {"receiver": "test", "group_by": ["alertname", "instance"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "test", "webhook_configs": [
                {"url": f"http://127.0.0.1:{self.hook.server_address[1]}/hook", "send_resolved": True}]}],
        }
        prom_config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_file)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": scrape,
        }
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        self.procs: list[subprocess.Popen] = []

    def start(self) -> PrometheusStack:
        threading.Thread(target=self.hook.serve_forever, daemon=True).start()
        log = open(self.workdir / "alertmanager.log", "wb")
        self.procs.append(subprocess.Popen([
            "prometheus-alertmanager", f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
            "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT))
        log = open(self.workdir / "prometheus.log", "wb")
        self.procs.append(subprocess.Popen([
            "prometheus", f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prom-data'}", f"--web.listen-address=127.0.0.1:{self.prom_port}",
            "--enable-feature=exemplar-storage"], stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.api("/api/v1/status/buildinfo")
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError((self.workdir / "prometheus.log").read_text()[-2000:])

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.hook.shutdown()

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.prom_port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("/api/v1/query", query=expr)["result"]


def wait(predicate, timeout: float, step: float = 1.0):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
