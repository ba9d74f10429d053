{{/* Names, labels, the per-service configuration and the capability checks. */}}

{{- define "talker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "talker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The object name of one service: <fullname>-<service>. Call with (dict "root" $ "name" "asr"). */}}
{{- define "talker.serviceName" -}}
{{- printf "%s-%s" (include "talker.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "talker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: only name + instance + component (they never change across upgrades). */}}
{{- define "talker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "talker.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* All labels of one service's objects. Call with (dict "root" $ "name" "asr"). */}}
{{- define "talker.labels" -}}
helm.sh/chart: {{ include "talker.chart" .root }}
{{ include "talker.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: talker
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of release-wide objects (no component). */}}
{{- define "talker.commonLabels" -}}
helm.sh/chart: {{ include "talker.chart" . }}
app.kubernetes.io/name: {{ include "talker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: talker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Recursive merge: maps merge key by key, everything else (lists, scalars, false, 0) in `over` replaces
`base`. (Sprig's merge/mergeOverwrite treat false and 0 as unset, so a service could not switch off
what the defaults switch on.) Call with (dict "base" map "over" map); returns JSON.
*/}}
{{- define "talker.deepMerge" -}}
{{- $out := deepCopy (.base | default dict) -}}
{{- range $k, $v := (.over | default dict) -}}
{{- $cur := index $out $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- $_ := set $out $k (include "talker.deepMerge" (dict "base" $cur "over" $v) | fromJson) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* One service's effective configuration: defaults merged with services.<name>. Returns JSON. */}}
{{- define "talker.serviceConfig" -}}
{{- $cfg := include "talker.deepMerge" (dict "base" .root.Values.defaults "over" (index .root.Values.services .name)) | fromJson -}}
{{- $_ := set $cfg "name" .name -}}
{{- $_ := set $cfg "fullname" (include "talker.serviceName" .) -}}
{{- toJson $cfg -}}
{{- end -}}

{{/* The enabled services, sorted by name, as a JSON list of names. */}}
{{- define "talker.enabledServices" -}}
{{- $names := list -}}
{{- range $name := keys .Values.services | sortAlpha -}}
{{- $cfg := include "talker.serviceConfig" (dict "root" $ "name" $name) | fromJson -}}
{{- if $cfg.enabled -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The image reference of one service (cfg = its effective configuration). */}}
{{- define "talker.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := .cfg.image.repository | default (printf "%s-%s" $img.repository .cfg.name) -}}
{{- if $img.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $repo -}}
{{- end -}}
{{- $tag := .cfg.image.tag | default $img.tag | default .root.Chart.AppVersion -}}
{{- if .cfg.image.variant -}}
{{- $tag = printf "%s-%s" $tag .cfg.image.variant -}}
{{- end -}}
{{- if .cfg.image.digest -}}
{{- printf "%s@%s" $repo .cfg.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The gRPC target of a stage for the gateway: dns:///<service>[.<ns>.svc.<domain>]:<port>. */}}
{{- define "talker.stageTarget" -}}
{{- $host := include "talker.serviceName" . -}}
{{- if .root.Values.clusterDomain -}}
{{- $host = printf "%s.%s.svc.%s" $host .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}
{{- printf "dns:///%s:%d" $host (int .port) -}}
{{- end -}}

{{- define "talker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "talker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Capability checks: a CRD-based object renders only when the cluster serves its API (helm install/upgrade
ask the cluster; helm template needs --api-versions) or when the value forces it.
*/}}
{{- define "talker.hasServiceMonitor" -}}
{{- $m := .Values.metrics.serviceMonitor -}}
{{- if and $m.enabled (or $m.force (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}true{{- end -}}
{{- end -}}

{{- define "talker.hasPrometheusRule" -}}
{{- $m := .Values.metrics.prometheusRule -}}
{{- if and $m.enabled (or $m.force (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule")) -}}true{{- end -}}
{{- end -}}

{{/* KEDA for one service: (dict "root" $ "cfg" cfg). */}}
{{- define "talker.hasKeda" -}}
{{- $k := .cfg.autoscaling.keda -}}
{{- if and $k.enabled (or $k.force (.root.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject")) -}}true{{- end -}}
{{- end -}}

{{/* The Prometheus query KEDA scales a service on. */}}
{{- define "talker.kedaQuery" -}}
{{- $k := .cfg.autoscaling.keda -}}
{{- if $k.query -}}
{{- tpl $k.query .root -}}
{{- else if eq .cfg.name "llm" -}}
sum(talker_llm_num_requests_waiting{namespace="{{ .root.Release.Namespace }}",service="{{ .cfg.fullname }}"})
{{- else if eq .cfg.name "gateway" -}}
sum(talker_gateway_active_sessions{namespace="{{ .root.Release.Namespace }}",service="{{ .cfg.fullname }}"})
{{- else -}}
sum(rate(grpc_server_started_total{namespace="{{ .root.Release.Namespace }}",service="{{ .cfg.fullname }}"}[1m]))
{{- end -}}
{{- end -}}
