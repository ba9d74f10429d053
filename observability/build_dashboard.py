"""Builds the Grafana dashboard JSON (helm/talker/files/talker-dashboard.json).

Kept as code so that every panel's query is reviewed in one place; the
observability system test evaluates each query against a real Prometheus.
Run `make dashboard` after editing; `make dashboard-check` fails on drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "helm" / "talker" / "files" / "talker-dashboard.json"
NS = 'namespace=~"$namespace"'
SEL = f'job="talker", {NS}, component=~"$component"'
RI = "$__rate_interval"


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend, "refId": "", "datasource": {"type": "prometheus",
                                                                              "uid": "${datasource}"}}


def quantiles(metric: str, by: str = "", qs=(0.5, 0.95, 0.99)) -> list[dict]:
    """Quantile targets of a histogram, with exemplars on: a dot in a slow bucket opens its trace
    (the Prometheus data source's exemplar link to the tracing data source, on trace_id)."""
    group = f"le{', ' + by if by else ''}"
    prefix = "{{" + by + "}} " if by else ""
    return [{**q(f"histogram_quantile({x}, sum by ({group}) (rate({metric}_bucket{{{NS}}}[{RI}])))",
                 f"{prefix}p{round(x * 100)}"), "exemplar": True} for x in qs]


SERVER = 'code=~"UNAVAILABLE|INTERNAL|UNKNOWN|DEADLINE_EXCEEDED"'
CLIENT = 'code!~"UNAVAILABLE|INTERNAL|UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED"'

ROWS = [
    ("Service level objectives", [
        ("Error budget remaining (SLO period)", "percentunit", [q(
            f"talker:slo_error_budget_remaining:ratio{{{NS}}}", "{{slo}}")]),
        ("Burn rate (1h; 14.4 pages)", "short", [q(
            f"sum by (namespace, slo) (talker:slo_error_ratio:page1_long{{{NS}}}) "
            f"/ on (slo) group_left () (1 - max by (slo) (talker:slo_objective:ratio))", "{{slo}}")]),
        ("Availability errors by stage (1h)", "percentunit", [q(
            f'talker:slo_error_ratio:page1_long{{{NS}, slo="availability"}}', "{{stage}}")]),
        ("Client errors (not outages)", "ops", [q(
            f"sum by (stage, code) (rate(talker_gateway_turn_errors_total{{{NS}, {CLIENT}}}[{RI}]))",
            "{{stage}} {{code}}")]),
    ]),
    ("Overview", [
        ("Turns per second", "ops", [q(f'sum by (status) (rate(talker_gateway_turns_total{{{NS}}}[{RI}]))',
                                       "{{status}}")]),
        ("Turn error ratio (server-side)", "percentunit", [q(
            f'sum(rate(talker_gateway_turn_errors_total{{{NS}, {SERVER}}}[{RI}])) '
            f'/ sum(rate(talker_gateway_turns_total{{{NS}}}[{RI}]))', "errors")]),
        ("Turn duration", "s", quantiles("talker_gateway_turn_duration_seconds")),
        ("Time to first frame", "s", quantiles("talker_gateway_time_to_first_frame_seconds")),
        ("Time to first audio", "s", quantiles("talker_gateway_time_to_first_audio_seconds", qs=(0.5, 0.95))),
        ("Sessions", "short", [q(f"sum(talker_gateway_active_sessions{{{NS}}})", "active"),
                               q(f"sum(talker_gateway_max_sessions{{{NS}}})", "limit"),
                               q(f"sum(rate(talker_gateway_rejected_sessions_total{{{NS}}}[{RI}]))", "rejected/s")]),
    ]),
    ("Which stage is slow", [
        # Ranked: the top bar is the stage to look at; the next panel's exemplars open its slow calls.
        ("Share of the critical path to the first frame", "percentunit", [{**q(
            f"sort_desc(talker:critical_path_share:ratio5m{{{NS}}})", "{{stage}}"), "instant": True}],
         "bargauge"),
        ("Stage call p95 (as the gateway sees it)", "s",
         quantiles("talker_gateway_stage_duration_seconds", by="stage", qs=(0.95,))),
        ("Stage errors by code", "ops", [q(
            f"sum by (stage, code) (rate(talker_gateway_stage_errors_total{{{NS}}}[{RI}]))",
            "{{stage}} {{code}}")]),
        ("gRPC calls handled", "ops", [q(
            f"sum by (component, grpc_method, grpc_code) (rate(grpc_server_handled_total{{{SEL}}}[{RI}]))",
            "{{component}} {{grpc_method}} {{grpc_code}}")]),
        ("gRPC handling p95", "s", [q(
            "histogram_quantile(0.95, sum by (le, component) "
            f"(rate(grpc_server_handling_seconds_bucket{{{SEL}}}[{RI}])))", "{{component}}")]),
    ]),
    ("LLM", [
        ("Generated tokens per second", "short", [q(
            f"sum by (model) (rate(talker_llm_generation_tokens_total{{{NS}}}[{RI}]))", "{{model}}")]),
        ("Time to first token", "s", quantiles("talker_llm_time_to_first_token_seconds", qs=(0.5, 0.95))),
        ("Inter-token latency", "s", quantiles("talker_llm_inter_token_latency_seconds", qs=(0.5, 0.95))),
        ("Requests running and waiting", "short", [
            q(f"sum(talker_llm_num_requests_running{{{NS}}})", "running"),
            q(f"sum(talker_llm_num_requests_waiting{{{NS}}})", "waiting")]),
    ]),
    ("Speech", [
        ("TTS real-time factor (p50)", "short", [q(
            f"histogram_quantile(0.5, sum by (le, backend) (rate(talker_tts_real_time_factor_bucket{{{NS}}}[{RI}])))",
            "{{backend}}")]),
        ("TTS time to first audio", "s", quantiles("talker_tts_time_to_first_audio_seconds", qs=(0.5, 0.95))),
        ("ASR real-time factor (p50)", "short", [q(
            f"histogram_quantile(0.5, sum by (le, model) (rate(talker_asr_real_time_factor_bucket{{{NS}}}[{RI}])))",
            "{{model}}")]),
        ("ASR audio per second", "short", [q(
            f"sum(rate(talker_asr_audio_seconds_total{{{NS}}}[{RI}]))", "audio s/s")]),
    ]),
    ("Animator", [
        ("Frames per second", "short", [q(f"sum(rate(talker_animator_frames_total{{{NS}}}[{RI}]))", "frames/s")]),
        ("Frame render time", "s", quantiles("talker_animator_frame_render_seconds", qs=(0.5, 0.95))),
        ("Animator time to first frame", "s",
         quantiles("talker_animator_time_to_first_frame_seconds", qs=(0.5, 0.95))),
        ("Avatar cache", "ops", [
            q(f"sum(rate(talker_animator_avatar_cache_hits_total{{{NS}}}[{RI}]))", "hits"),
            q(f"sum(rate(talker_animator_avatar_cache_misses_total{{{NS}}}[{RI}]))", "misses")]),
    ]),
    ("Resources", [
        ("Resident memory", "bytes", [q(
            f"sum by (component, instance) (process_resident_memory_bytes{{{SEL}}})", "{{component}} {{instance}}")]),
        ("CPU", "percentunit", [q(
            f"sum by (component, instance) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))",
            "{{component}} {{instance}}")]),
        ("Device memory (GPU)", "bytes", [q(
            f"sum by (stage, device, instance) (talker_device_memory_bytes{{{NS}}})", "{{stage}} {{device}}")]),
        ("Model load time", "s", [q(f"max by (stage) (talker_model_load_seconds{{{NS}}})", "{{stage}}")]),
        ("Hours until the memory limit (at the last hour's trend)", "h", [q(
            f"(talker:memory_limit_bytes{{{SEL}}} - on (namespace, instance) group_left "
            f"process_resident_memory_bytes{{{SEL}}}) / on (namespace, instance) group_left "
            f"deriv(process_resident_memory_bytes{{{SEL}}}[1h]) / 3600 > 0", "{{component}} {{instance}}")]),
    ]),
    ("Capacity", [
        ("Replicas needed vs running", "short", [
            q(f'talker:replicas_needed{{{NS}, component=~"$component"}}', "{{component}} needed"),
            q(f'talker:replicas_running{{{NS}, component=~"$component"}}', "{{component}} running")]),
        ("CPU-seconds per turn", "s", [q(
            f'talker:cpu_seconds_per_turn:rate5m{{{NS}, component=~"$component"}}', "{{component}}")]),
    ]),
]


def dashboard() -> dict:
    panels, pid, y = [], 1, 0
    for title, row in ROWS:
        panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (ptitle, unit, targets, *kind) in enumerate(row):
            for j, t in enumerate(targets):
                t["refId"] = chr(ord("A") + j)
            panels.append({
                "type": kind[0] if kind else "timeseries", "title": ptitle, "id": pid,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 6, "x": (i % 4) * 6, "y": y + (i // 4) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if not kind else
                {"orientation": "horizontal", "displayMode": "basic", "reduceOptions": {"calcs": ["lastNotNull"]}},
                "targets": targets,
            })
            pid += 1
        y += ((len(row) + 3) // 4) * 8
    return {
        "title": "Talker", "uid": "talker-overview", "tags": ["talker"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "description": "Talker: SLOs and error budgets, turns, which stage is slow, LLM, speech, animator, "
                       "resources and capacity.",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "namespace", "type": "query", "label": "Namespace", "includeAll": True, "multi": True,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}, "refresh": 2,
             "query": {"query": "label_values(talker_build_info, namespace)", "refId": "namespace"},
             "definition": "label_values(talker_build_info, namespace)", "current": {}},
            {"name": "component", "type": "query", "label": "Service", "includeAll": True, "multi": True,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}, "refresh": 2,
             "query": {"query": 'label_values(talker_build_info{namespace=~"$namespace"}, component)',
                       "refId": "component"},
             "definition": 'label_values(talker_build_info{namespace=~"$namespace"}, component)', "current": {}},
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text() != render():
            print(f"{OUT} is stale; run make dashboard", file=sys.stderr)
            return 1
        print("dashboard JSON matches observability/build_dashboard.py")
        return 0
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
