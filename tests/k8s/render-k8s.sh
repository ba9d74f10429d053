#!/usr/bin/env bash
# Renders the chart with default values into a k8s/ directory: render-k8s.sh HELM CHART OUTDIR RELEASE NAMESPACE
#   OUTDIR/talker.yaml                what any cluster takes: kubectl apply -k OUTDIR
#   OUTDIR/monitoring/monitoring.yaml the ServiceMonitors and PrometheusRule, for clusters with the
#                                     Prometheus Operator's CRDs: kubectl apply -k OUTDIR/monitoring
set -euo pipefail
helm=$1 chart=$2 out=$3 release=$4 namespace=$5
header="# Rendered from $chart with default values by 'make k8s'; do not edit (make k8s-check fails on drift)."
mkdir -p "$out/monitoring"
{ echo "$header"; "$helm" template "$release" "$chart" --namespace "$namespace" --skip-tests; } > "$out/talker.yaml"
{ echo "$header"
  "$helm" template "$release" "$chart" --namespace "$namespace" \
    --api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule \
    --show-only templates/servicemonitor.yaml --show-only templates/prometheusrule.yaml; } > "$out/monitoring/monitoring.yaml"
cat > "$out/kustomization.yaml" <<YAML
# kubectl create namespace $namespace && kubectl apply -k k8s
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $namespace
resources:
  - talker.yaml
YAML
cat > "$out/monitoring/kustomization.yaml" <<YAML
# With the Prometheus Operator installed, after k8s/: kubectl apply -k k8s/monitoring
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $namespace
resources:
  - monitoring.yaml
YAML
