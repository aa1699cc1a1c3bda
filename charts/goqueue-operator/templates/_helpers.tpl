{{/*
Names and labels of every object, from one place. For a release named `goqueue-operator` every name is
`goqueue-operator` (Deployment, ServiceAccount, ClusterRole, ClusterRoleBinding, peering), as in operator/deploy;
the metrics Service adds "-metrics", the aggregated roles "-view" and "-edit".
*/}}

{{- define "goqueue-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "goqueue-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "goqueue-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "goqueue-operator.metricsName" -}}{{ include "goqueue-operator.fullname" . }}-metrics{{- end -}}

{{/* Selector labels: a fixed subset; a Deployment's selector can never change. */}}
{{- define "goqueue-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "goqueue-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "goqueue-operator.labels" -}}
{{ include "goqueue-operator.selectorLabels" . }}
app.kubernetes.io/part-of: goqueue
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ include "goqueue-operator.imageTag" . | quote }}
helm.sh/chart: {{ include "goqueue-operator.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "goqueue-operator.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "goqueue-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "goqueue-operator.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* More than one replica: kopf peering (one active, the others stand by); one: standalone. */}}
{{- define "goqueue-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{/* The ServiceMonitor: "true" when forced, or on auto when the API server serves monitoring.coreos.com/v1 (the
Prometheus Operator's CRDs; `helm template` without --api-versions never sees them). Needs the metrics Service. */}}
{{- define "goqueue-operator.serviceMonitor" -}}
{{- $mode := toString .Values.metrics.serviceMonitor.enabled -}}
{{- $served := .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" -}}
{{- if and .Values.metrics.service.enabled (or (eq $mode "true") (and (eq $mode "auto") $served)) -}}true{{- end -}}
{{- end -}}
