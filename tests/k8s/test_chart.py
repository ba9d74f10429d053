"""The Helm chart, rendered offline for each value scenario: lint, Kubernetes schemas (kubernetes-validate),
the CRD objects against their schemas, and assertions on how the objects fit together."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.common import registry
from tests.k8s.conftest import (
    CHART,
    NAMESPACE,
    SCENARIOS,
    SERVICES,
    STAGES,
    by_kind,
    component,
    container,
    env_of,
    helm,
    notes,
    render,
    render_error,
    scenario_path,
)
from tests.k8s.netpol import Pod, connects, egress_allowed, ingress_allowed

SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json",
}
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
# The registry is the source of truth; the chart's values must agree with it.
# (the gRPC port, or for the web page its HTTP port; the metrics port)
PORTS = {name: (s.grpc_port or s.http_port, s.metrics_port) for name, s in registry.SERVICES.items()}
GPU_SCENARIOS = ("gpu-llm-values.yaml", "values-gpu-llm.yaml")
MODULES = {name: s.module for name, s in registry.SERVICES.items()}


def test_the_chart_values_agree_with_the_registry():
    services = yaml.safe_load((CHART / "values.yaml").read_text())["services"]
    assert set(services) == set(registry.SERVICES)
    for name, svc in registry.SERVICES.items():
        values = services[name]
        assert (values["module"], values.get("grpcPort"), values.get("httpPort"), values["metricsPort"]) == \
            (svc.module, svc.grpc_port, svc.http_port, svc.metrics_port), name
        assert bool(values.get("stage")) == svc.stage, name


def custom_schema(api_version: str, kind: str) -> dict:
    return json.loads((SCHEMAS / CUSTOM[(api_version, kind)]).read_text())


# --- lint and schemas ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCENARIOS)
def test_helm_lint(name):
    proc = helm("lint", "--strict", str(CHART), "-f", str(scenario_path(name)), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_scenario_renders_every_kind_it_should(scenario):
    name, objects = scenario
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service"} <= kinds
    assert len(by_kind(objects, "Deployment")) == len(SERVICES)  # the web page is one of them
    if name != "minimal-values.yaml":
        assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget",
                "ServiceAccount"} <= kinds


def test_objects_are_valid_kubernetes(scenario):
    name, objects = scenario
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM:
            jsonschema.validate(obj, custom_schema(*key))
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} (k8s {version}): {exc.message} "
                            f"at {'.'.join(map(str, exc.path))}")


def test_crd_schemas_reject_what_the_operator_would():
    sm = by_kind(render(), "ServiceMonitor")["talker-asr"]
    schema = custom_schema("monitoring.coreos.com/v1", "ServiceMonitor")
    jsonschema.validate(sm, schema)
    for breaks in (lambda o: o["spec"]["endpoints"][0].update(interval="5 seconds"),
                   lambda o: o["spec"]["endpoints"][0].update(prot="metrics"),
                   lambda o: o["spec"].pop("selector")):
        bad = json.loads(json.dumps(sm))
        breaks(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    rule = next(o for o in render() if o["kind"] == "PrometheusRule")
    bad = json.loads(json.dumps(rule))
    bad["spec"]["groups"][0]["rules"][0].pop("expr")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, custom_schema("monitoring.coreos.com/v1", "PrometheusRule"))


def test_values_schema_rejects_bad_values():
    assert "grpcPort" in render_error("services.asr.grpcPort=fifty")
    assert "additional" in render_error("servicez.asr.replicas=2").lower()
    assert "interval" in render_error("metrics.serviceMonitor.interval=5 seconds")


# --- how the objects fit together --------------------------------------------------------------------------

def test_each_service_selects_exactly_its_deployments_pods(scenario):
    _, objects = scenario
    deployments = by_kind(objects, "Deployment")
    for svc in by_kind(objects, "Service").values():
        selector = svc["spec"]["selector"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance",
                                 "app.kubernetes.io/component"}
        matched = [d for d in deployments.values()
                   if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        assert [d["metadata"]["name"] for d in matched] == [svc["metadata"]["name"]]
        dep = matched[0]
        assert dep["spec"]["selector"]["matchLabels"] == selector
        names = {p["name"]: p["containerPort"] for p in container(dep)["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"{svc['metadata']['name']}: no container port {port['targetPort']}"
            assert names[port["targetPort"]] == port["port"]


def test_ports_modules_and_environment_follow_the_design(scenario):
    _, objects = scenario
    for name, dep in by_kind(objects, "Deployment").items():
        comp = component(dep)
        c = container(dep)
        grpc_port, metrics_port = PORTS[comp]
        env = env_of(dep)
        if comp == "web":  # HTTP: the page, /offer, /ws; a gRPC client of the gateway only
            assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": grpc_port, "metrics": metrics_port}
            assert c["command"] == ["python", "-m", "web"]
            assert env["TALKER_WEB_PORT"] == str(grpc_port) and env["TALKER_WEB_METRICS_PORT"] == str(metrics_port)
            assert env["TALKER_WEB_GATEWAY_TARGET"].endswith("talker-gateway:50051")
            assert "TALKER_GRPC_PORT" not in env and "TALKER_TLS_CERT_FILE" not in env
            continue
        expected = {"grpc": grpc_port, "metrics": metrics_port}
        if "TALKER_HEALTH_PORT" in env:  # the plaintext health-only port the probes use (on by default)
            expected["health"] = int(env["TALKER_HEALTH_PORT"])
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == expected
        assert c["command"] == ["python", "-m", MODULES[comp]]
        env = env_of(dep)
        assert env["TALKER_GRPC_PORT"] == str(grpc_port) and env["TALKER_METRICS_PORT"] == str(metrics_port)
        assert env["TALKER_HOST"] == "0.0.0.0" and env["TALKER_METRICS_HOST"] == "0.0.0.0"
        assert len(c["env"]) == len({e["name"] for e in c["env"]}), f"{name}: duplicate env entries"


def test_stage_services_are_headless_and_the_gateway_balances_over_dns(scenario):
    _, objects = scenario
    services = by_kind(objects, "Service")
    for stage in STAGES:
        svc = services[f"talker-{stage}"]
        assert svc["spec"]["clusterIP"] == "None", f"{stage}: gRPC needs a headless Service to see every pod"
    assert services["talker-gateway"]["spec"].get("clusterIP") != "None"
    env = env_of(by_kind(objects, "Deployment")["talker-gateway"])
    for stage in STAGES:
        target = env[f"TALKER_GATEWAY_{stage.upper()}_TARGET"]
        host, port = re.fullmatch(r"dns:///([^:]+):(\d+)", target).groups()
        name = host.split(".")[0]
        assert name == f"talker-{stage}" and int(port) == PORTS[stage][0]
        assert any(p["name"] == "grpc" and p["port"] == int(port) for p in services[name]["spec"]["ports"])


def test_cluster_domain_makes_the_targets_fully_qualified():
    env = env_of(by_kind(render(sets=("clusterDomain=cluster.local",)), "Deployment")["talker-gateway"])
    assert env["TALKER_GATEWAY_ASR_TARGET"] == f"dns:///talker-asr.{NAMESPACE}.svc.cluster.local:50052"


def test_service_monitors_select_exactly_their_service_and_name_its_metrics_port(scenario):
    name, objects = scenario
    services = by_kind(objects, "Service")
    monitors = by_kind(objects, "ServiceMonitor")
    if name == "minimal-values.yaml":
        assert not monitors
        return
    assert set(monitors) == set(services)
    values = yaml.safe_load(scenario_path(name).read_text()) or {}
    sm_values = values.get("metrics", {}).get("serviceMonitor", {})
    for sm_name, sm in monitors.items():
        spec = sm["spec"]
        matched = [s for s in services.values()
                   if all(s["metadata"]["labels"].get(k) == v for k, v in spec["selector"]["matchLabels"].items())]
        assert [s["metadata"]["name"] for s in matched] == [sm_name]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert spec["jobLabel"] in matched[0]["metadata"]["labels"]
        assert matched[0]["metadata"]["labels"][spec["jobLabel"]] == "talker"
        (ep,) = spec["endpoints"]
        assert ep["port"] == "metrics" and ep["path"] == "/metrics"
        assert any(p["name"] == "metrics" for p in matched[0]["spec"]["ports"])
        assert ep["interval"] == sm_values.get("interval", "30s")  # production default; 5 s locally
        for k, v in sm_values.get("additionalLabels", {}).items():
            assert sm["metadata"]["labels"][k] == v
        assert {"sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
                "targetLabel": "component", "action": "replace"} in ep["relabelings"]


def test_probes_are_native_grpc_on_the_health_port_with_room_for_model_load(scenario):
    name, objects = scenario
    for dep in by_kind(objects, "Deployment").values():
        c = container(dep)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if component(dep) == "web":  # HTTP probes: alive, and ready while the gateway is SERVING
            assert [c[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")] == [
                {"path": "/healthz", "port": "http"}, {"path": "/readyz", "port": "http"},
                {"path": "/healthz", "port": "http"}]
            continue
        # the kubelet probes the plaintext health-only port (outside the concurrency limit; no TLS)
        assert "health" in ports or name == "no-health-port-values.yaml", "probes on the main port"
        port = ports.get("health", ports["grpc"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert set(c[probe]) & {"grpc", "httpGet", "exec", "tcpSocket"} == {"grpc"}, probe
            want = {"port": port}  # service "" = the whole server
            if probe == "readinessProbe" and "health" in ports:
                # the stage's own service: NOT_SERVING while saturated
                want["service"] = registry.SERVICES[component(dep)].grpc_service
            assert c[probe]["grpc"] == want, probe
        start = c["startupProbe"]
        budget = start["periodSeconds"] * start["failureThreshold"]
        if component(dep) == "gateway":
            assert budget >= 30
        else:
            assert budget >= 300, f"{component(dep)}: {budget} s is short for a model load"
        if name in GPU_SCENARIOS and component(dep) == "llm":
            assert budget >= 600, "vLLM needs longer"


def test_security_context_is_restricted(scenario):
    _, objects = scenario
    for dep in by_kind(objects, "Deployment").values():
        pod = dep["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        c = container(dep)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc.get("privileged") is False
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        # read-only root: /tmp (HOME in the images) is an emptyDir
        tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        for vol in pod["volumes"]:
            assert "hostPath" not in vol


def test_resources_gpu_and_scheduling(scenario):
    name, objects = scenario
    for dep in by_kind(objects, "Deployment").values():
        c = container(dep)
        pod = dep["spec"]["template"]["spec"]
        gpu = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if name in GPU_SCENARIOS and component(dep) == "llm":
            assert gpu == 1 and c["resources"]["requests"]["nvidia.com/gpu"] == 1
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert c["image"].endswith("-vllm-cuda")  # the CUDA vLLM image (make images-heavy)
            assert env_of(dep)["TALKER_LLM_BACKEND"] == "vllm"
            assert any(m["mountPath"] == "/dev/shm" for m in c["volumeMounts"])
            assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
        else:
            assert gpu is None
            assert "-vllm" not in c["image"]
            assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        if name != "minimal-values.yaml":
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]


def test_gpu_ci_scenario_is_the_shipped_gpu_values():
    ci = yaml.safe_load((CHART / "ci" / "gpu-llm-values.yaml").read_text())
    shipped = yaml.safe_load((CHART / "values-gpu-llm.yaml").read_text())
    assert ci == shipped


def test_pod_disruption_budgets(scenario):
    name, objects = scenario
    pdbs = by_kind(objects, "PodDisruptionBudget")
    deployments = by_kind(objects, "Deployment")
    if name == "minimal-values.yaml":
        assert not pdbs
        return
    assert set(pdbs) == set(deployments)
    for pdb_name, pdb in pdbs.items():
        assert pdb["spec"]["selector"]["matchLabels"] == deployments[pdb_name]["spec"]["selector"]["matchLabels"]
        assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])


# --- network policies --------------------------------------------------------------------------------------

def pod_of(dep: dict) -> Pod:
    return Pod(NAMESPACE, dep["spec"]["template"]["metadata"]["labels"],
               {p["name"]: p["containerPort"] for p in container(dep)["ports"]})


def test_network_policies_admit_exactly_what_they_should(scenario):
    name, objects = scenario
    policies = list(by_kind(objects, "NetworkPolicy").values())
    if name == "minimal-values.yaml":
        assert not policies
        return
    values = yaml.safe_load(scenario_path(name).read_text()) or {}
    np_values = values.get("networkPolicy", {})
    mon_ns_labels = np_values.get("monitoringNamespaceSelector", {"kubernetes.io/metadata.name": "monitoring"})
    mon_pod_labels = np_values.get("monitoringPodSelector", {})
    pods = {component(d): pod_of(d) for d in by_kind(objects, "Deployment").values()}
    prometheus = Pod(mon_ns_labels.get("kubernetes.io/metadata.name", "monitoring"),
                     {"app.kubernetes.io/name": "prometheus", **mon_pod_labels}, namespace_labels=mon_ns_labels)
    stranger_same_ns = Pod(NAMESPACE, {"app": "debug"})
    stranger_other_ns = Pod("default", {"app": "client"})
    prometheus_elsewhere = Pod("default", dict(prometheus.labels))
    for comp, pod in pods.items():
        assert sum(1 for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= pod.labels.items()) == 1
        if comp == "web":
            # the page: anyone (a browser, an ingress) on its HTTP port; metrics like every service
            assert ingress_allowed(policies, stranger_other_ns, pod, pod.ports["http"])
            assert ingress_allowed(policies, prometheus, pod, pod.ports["metrics"])
            assert not ingress_allowed(policies, stranger_other_ns, pod, pod.ports["metrics"])
            continue
        grpc_port, metrics_port = pod.ports["grpc"], pod.ports["metrics"]
        # metrics: only from the monitoring namespace(s)
        assert ingress_allowed(policies, prometheus, pod, metrics_port), comp
        for other in (stranger_same_ns, stranger_other_ns, prometheus_elsewhere,
                      *(p for c, p in pods.items() if c != comp)):
            assert not ingress_allowed(policies, other, pod, metrics_port), (comp, other)
        # nothing else is open: not even the monitoring namespace reaches the gRPC port of a stage
        assert not ingress_allowed(policies, stranger_same_ns, pod, 8080)
        if comp == "gateway":
            if np_values.get("gatewayFrom"):
                ingress_ns = Pod("ingress-nginx", {"app": "ingress"})
                assert ingress_allowed(policies, ingress_ns, pod, grpc_port)
                assert not ingress_allowed(policies, stranger_other_ns, pod, grpc_port)
                assert ingress_allowed(policies, pods["web"], pod, grpc_port), "the web page reaches the gateway"
            else:
                assert ingress_allowed(policies, stranger_other_ns, pod, grpc_port)
            continue
        # a stage's gRPC port: the gateway only, and the gateway may send there
        assert connects(policies, pods["gateway"], pod, grpc_port), comp
        for other in (stranger_same_ns, stranger_other_ns, prometheus,
                      *(p for c, p in pods.items() if c not in (comp, "gateway", "web"))):
            assert not ingress_allowed(policies, other, pod, grpc_port), (comp, other)
    # egress: DNS for everyone; stages call nobody; the gateway reaches only the stages' gRPC ports, the
    # web page only the gateway's
    dns = Pod("kube-system", {"k8s-app": "kube-dns"})
    internet = Pod("elsewhere", {})
    for comp, pod in pods.items():
        assert egress_allowed(policies, pod, dns, 53, "UDP") and egress_allowed(policies, pod, dns, 53, "TCP")
        assert not egress_allowed(policies, pod, internet, 443)
        for target_comp, target in pods.items():
            port = target.ports.get("grpc", target.ports.get("http"))
            allowed = egress_allowed(policies, pod, target, port)
            expected = (comp == "gateway" and target_comp not in ("gateway", "web")) or \
                (comp == "web" and target_comp == "gateway")
            assert allowed == expected, (comp, target_comp)


# --- capabilities, autoscaling, monitoring content ---------------------------------------------------------

def test_crd_objects_only_when_the_cluster_has_the_crds():
    keda = ("services.llm.autoscaling.keda.enabled=true",)
    bare = {o["kind"] for o in render(sets=keda, apis=())}
    assert not bare & {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
    assert {"Deployment", "Service", "ConfigMap"} <= bare
    full = {o["kind"] for o in render(sets=keda)}
    assert {"ServiceMonitor", "PrometheusRule", "ScaledObject"} <= full
    forced = {o["kind"] for o in render(sets=(*keda, "metrics.serviceMonitor.force=true",
                                              "metrics.prometheusRule.force=true",
                                              "services.llm.autoscaling.keda.force=true"), apis=())}
    assert {"ServiceMonitor", "PrometheusRule", "ScaledObject"} <= forced
    # without KEDA the LLM keeps a fixed replica count
    llm = by_kind(render(sets=keda, apis=()), "Deployment")["talker-llm"]
    assert llm["spec"]["replicas"] == 1
    text = notes(*keda)
    assert "no monitoring.coreos.com/v1 ServiceMonitor API" in text and "keda.sh/v1alpha1" in text


def test_autoscaling_scenario():
    objects = render(scenario_path("autoscaling-keda-values.yaml"))
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    deployments = by_kind(objects, "Deployment")
    assert set(hpas) == {"talker-gateway", "talker-asr", "talker-tts", "talker-animator"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns the replica count"
        cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    sessions = [m for m in hpas["talker-gateway"]["spec"]["metrics"] if m["type"] == "Pods"]
    assert sessions == [{"type": "Pods", "pods": {"metric": {"name": "talker_gateway_active_sessions"},
                                                  "target": {"type": "AverageValue", "averageValue": "4"}}}]
    (so,) = by_kind(objects, "ScaledObject").values()
    assert so["spec"]["scaleTargetRef"]["name"] == "talker-llm"
    assert "replicas" not in deployments["talker-llm"]["spec"]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    q = trigger["metadata"]["query"]
    assert "talker_llm_num_requests_waiting" in q and f'namespace="{NAMESPACE}"' in q and 'service="talker-llm"' in q
    assert all(isinstance(v, str) for v in trigger["metadata"].values())


def test_hpa_and_keda_on_one_service_is_refused():
    err = render_error("services.llm.autoscaling.enabled=true", "services.llm.autoscaling.keda.enabled=true")
    assert "not both" in err


def test_prometheus_rule_and_dashboard_come_from_the_observability_files():
    objects = render()
    (rule,) = by_kind(objects, "PrometheusRule").values()
    groups = rule["spec"]["groups"]
    base = yaml.safe_load((CHART / "files" / "talker-rules.yml").read_text())["groups"]
    assert groups[:len(base)] == base
    # then one group per enabled SLO (their content is checked against the builder in tests/observability)
    objectives = yaml.safe_load((CHART / "values.yaml").read_text())["slo"]["objectives"]
    assert [g["name"] for g in groups[len(base):]] == [f"talker.slo.{name}" for name, o in objectives.items()
                                                        if o.get("enabled", True)]
    cm = by_kind(objects, "ConfigMap")["talker-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = (CHART / "files" / "talker-dashboard.json").read_text()
    assert json.loads(cm["data"]["talker-dashboard.json"]) == json.loads(dashboard)


def test_metrics_protection_reaches_pods_and_monitors():
    objects = render(scenario_path("metrics-protection-values.yaml"))
    for sm in by_kind(objects, "ServiceMonitor").values():
        (ep,) = sm["spec"]["endpoints"]
        assert ep["scheme"] == "https"
        assert ep["basicAuth"] == {"username": {"name": "talker-metrics-auth", "key": "username"},
                                   "password": {"name": "talker-metrics-auth", "key": "password"}}
        assert ep["tlsConfig"]["ca"] == {"secret": {"name": "talker-metrics-tls", "key": "ca.crt"}}
        assert ep["tlsConfig"]["serverName"] == f"{sm['metadata']['name']}.{NAMESPACE}.svc"
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for dep in by_kind(objects, "Deployment").values():
        env = env_of(dep)
        c = container(dep)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert env["TALKER_METRICS_BASIC_AUTH_FILE"] == "/etc/talker/metrics-auth/auth"
        assert env["TALKER_METRICS_TLS_CERT_FILE"] == "/etc/talker/metrics-tls/tls.crt"
        assert env["TALKER_METRICS_TLS_KEY_FILE"] == "/etc/talker/metrics-tls/tls.key"
        for path, secret in (("/etc/talker/metrics-auth", "talker-metrics-auth"),
                             ("/etc/talker/metrics-tls", "talker-metrics-tls")):
            assert mounts[path]["readOnly"] is True
            assert volumes[mounts[path]["name"]]["secret"]["secretName"] == secret
    assert "needs metrics.auth.basic.secretName" in render_error("metrics.auth.basic.enabled=true")


def test_a_service_can_switch_off_what_the_defaults_switch_on():
    objects = render(sets=("services.tts.pdb.enabled=false", "services.animator.enabled=false"))
    assert "talker-tts" not in by_kind(objects, "PodDisruptionBudget")
    assert "talker-animator" not in by_kind(objects, "Deployment")
    assert "talker-animator" not in by_kind(objects, "ServiceMonitor")


def test_notes_list_the_port_forward_commands():
    text = notes()
    assert f"kubectl -n {NAMESPACE} port-forward svc/talker-gateway 50051:50051" in text
    assert f"kubectl -n {NAMESPACE} port-forward svc/talker-web 8080:8080" in text
    for comp, (_, metrics_port) in PORTS.items():
        assert f"kubectl -n {NAMESPACE} port-forward svc/talker-{comp} {metrics_port}:{metrics_port}" in text


# --- k8s/: the plain manifests ----------------------------------------------------------------------------

def test_k8s_dir_builds_with_kustomize_and_equals_the_chart():
    """k8s/ (kubectl apply -k k8s, then -k k8s/monitoring) holds exactly the chart's default objects
    (without the `helm test` pod); `make k8s-check` compares the files byte for byte."""
    import subprocess

    from tests.k8s.conftest import KUBECTL, ROOT
    built = []
    for d in ("k8s", "k8s/monitoring"):
        out = subprocess.run([str(KUBECTL), "kustomize", str(ROOT / d)], capture_output=True, text=True, check=True)
        built += [o for o in yaml.safe_load_all(out.stdout) if o]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in built if o["kind"] != "Namespace")
    chart = [o for o in render() if "helm.sh/hook" not in o["metadata"].get("annotations", {})]
    assert sorted(built, key=key) == sorted(chart, key=key)


def test_image_registry_tag_and_digest():
    objects = render(sets=("image.registry=ghcr.io/acme/", "image.tag=1.2.3",
                           "services.asr.image.digest=sha256:" + "a" * 64))
    images = {component(d): container(d)["image"] for d in by_kind(objects, "Deployment").values()}
    assert images["gateway"] == "ghcr.io/acme/talker-gateway:1.2.3"
    assert images["asr"] == "ghcr.io/acme/talker-asr@sha256:" + "a" * 64  # a digest pins the exact image


def test_helm_test_reaches_the_page_when_its_openers_are_restricted():
    objects = render(sets=("services.web.web.from[0].ipBlock.cidr=10.0.0.0/8",))
    (rule,) = [r for r in by_kind(objects, "NetworkPolicy")["talker-web"]["spec"]["ingress"]
               if r["ports"][0]["port"] == 8080]
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in rule["from"]
    assert any(f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "health-test"
               for f in rule["from"]), rule


def test_helm_test_asks_every_service_through_its_service(scenario):
    name, objects = scenario
    (pod,) = [o for o in objects if o["kind"] == "Pod"
              and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    c = pod["spec"]["containers"][0]
    assert c["command"][:2] == ["python", "/usr/local/lib/talker/healthcheck.py"]
    assert c["image"] == container(by_kind(objects, "Deployment")["talker-gateway"])["image"]
    assert pod["spec"]["restartPolicy"] == "Never" and c["securityContext"]["runAsNonRoot"] is True
    # every gRPC Service's health; the web page's readiness (HTTP: ready while its gateway serves)
    services = {n: s for n, s in by_kind(objects, "Service").items() if n != "talker-web"}
    web_targets = [t for t in c["command"][2:] if t.startswith("http://")]
    targets = dict(t.rsplit(":", 1) for t in c["command"][2:] if not t.startswith("http://"))
    assert set(targets) == set(services), "every Service is checked"
    labels = pod["metadata"]["labels"]
    policies = by_kind(objects, "NetworkPolicy")
    if "talker-web" in by_kind(objects, "Service"):
        assert web_targets == ["http://talker-web:8080/readyz"]
        if policies:
            (rule,) = [r for r in policies["talker-web"]["spec"]["ingress"] if r["ports"][0]["port"] == 8080]
            assert "from" not in rule or any(set(f.get("podSelector", {}).get("matchLabels", {}).items())
                                             <= set(labels.items()) for f in rule["from"]), "test pod admitted"
    else:
        assert not web_targets
    for svc_name, port in targets.items():
        svc = services[svc_name]
        (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
        # the port the Service names is the pod's health port (or gRPC port without one)
        assert svc_port["name"] == ("grpc" if name == "no-health-port-values.yaml" else "health")
        if policies:  # the service's NetworkPolicy admits the test pod on that port
            rules = policies[svc_name]["spec"]["ingress"]
            assert any(any(p["port"] == int(port) for p in r["ports"]) and any(
                set(f.get("podSelector", {}).get("matchLabels", {}).items()) <= set(labels.items())
                and "namespaceSelector" not in f for f in r.get("from", [])) for r in rules), svc_name
