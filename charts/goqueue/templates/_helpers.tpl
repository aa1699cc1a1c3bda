{{/*
Names and labels of every object, from one place (STYLE §9). The label keys are the operator's
(operator/goqueue_operator/resources/labels.py), so `kubectl get pods -l app.kubernetes.io/name=goqueue` finds
brokers whichever way they were installed. For a release named `goqueue` every name is the runbook's:
StatefulSet `goqueue`, pods `goqueue-N`, ConfigMap `goqueue-config`, Services `goqueue`, `goqueue-headless`,
`goqueue-metrics`, claims `goqueue-data-goqueue-N`.
*/}}

{{- define "goqueue.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The StatefulSet name: the release name when it already contains the chart name (`goqueue`), else
<release>-<chart>. Pod names add "-N" and the claim template "goqueue-data-" in front, so keep it short. */}}
{{- define "goqueue.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "goqueue.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "goqueue.headlessName" -}}{{ include "goqueue.fullname" . }}-headless{{- end -}}
{{- define "goqueue.metricsName" -}}{{ include "goqueue.fullname" . }}-metrics{{- end -}}
{{- define "goqueue.configName" -}}{{ include "goqueue.fullname" . }}-config{{- end -}}
{{- define "goqueue.dashboardName" -}}{{ include "goqueue.fullname" . }}-dashboard{{- end -}}

{{/* The claim template's name is fixed, as the operator's: claims are goqueue-data-<statefulset>-<ordinal>. */}}
{{- define "goqueue.dataClaimName" -}}goqueue-data{{- end -}}

{{/* The Secret holding the Raft password: the chart's own, or the one named by cluster.existingSecret. */}}
{{- define "goqueue.raftSecretName" -}}
{{- if .Values.cluster.existingSecret -}}
{{- .Values.cluster.existingSecret -}}
{{- else -}}
{{- include "goqueue.fullname" . }}-raft
{{- end -}}
{{- end -}}

{{/* Selector labels: a fixed subset of the common labels; a StatefulSet's selector can never change. */}}
{{- define "goqueue.selectorLabels" -}}
app.kubernetes.io/name: {{ include "goqueue.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: broker
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "goqueue.labels" -}}
{{ include "goqueue.selectorLabels" . }}
app.kubernetes.io/part-of: goqueue
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ include "goqueue.imageTag" . | quote }}
helm.sh/chart: {{ include "goqueue.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the broker pods: no chart version, so upgrading the chart alone does not restart every broker
(the image tag in app.kubernetes.io/version changes only with the image, which restarts them anyway). */}}
{{- define "goqueue.podLabels" -}}
{{ include "goqueue.selectorLabels" . }}
app.kubernetes.io/part-of: goqueue
app.kubernetes.io/version: {{ include "goqueue.imageTag" . | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "goqueue.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "goqueue.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "goqueue.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* host:raftPort of every broker by its stable DNS name; entry N is broker N (the pod ordinal). */}}
{{- define "goqueue.peers" -}}
{{- $peers := list -}}
{{- $sts := include "goqueue.fullname" . -}}
{{- $headless := include "goqueue.headlessName" . -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $peers = append $peers (printf "%s-%d.%s.%s.svc.%s:%d" $sts $i $headless $.Release.Namespace $.Values.clusterDomain (int $.Values.config.broker.raftPort)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* Brokers that may be down while a majority of replicaCount stays up (the Raft quorum). */}}
{{- define "goqueue.quorumTolerance" -}}
{{- div (sub (int .Values.replicaCount) 1) 2 -}}
{{- end -}}

{{/* The broker settings file: values.config without empty keys, plus the drain time derived from the pod's
grace period when not set (the broker must finish draining before the kubelet's SIGKILL). */}}
{{- define "goqueue.configFile" -}}
{{- $config := deepCopy .Values.config -}}
{{- range $section, $keys := $config -}}
{{- range $key, $value := $keys -}}
{{- if kindIs "invalid" $value -}}{{- $_ := unset $keys $key -}}{{- end -}}
{{- end -}}
{{- if not $keys -}}{{- $_ := unset $config $section -}}{{- end -}}{{- /* a section of nulls only: all defaults */ -}}
{{- end -}}
{{- /* Secrets reach the broker as files (secretsDir), never as settings values or environment variables. */ -}}
{{- $secrets := include "goqueue.secretsDir" . -}}
{{- $_ := set $config "cluster" (merge (dict "passwordFile" (printf "%s/cluster/password" $secrets)) (get $config "cluster" | default dict)) -}}
{{- if .Values.tls.enabled -}}
{{- $tls := get $config "tls" | default dict -}}
{{- $_ := set $tls "certFile" (printf "%s/tls/tls.crt" $secrets) -}}
{{- $_ := set $tls "keyFile" (printf "%s/tls/tls.key" $secrets) -}}
{{- $_ := set $tls "caFile" (printf "%s/tls/ca.crt" $secrets) -}}
{{- $_ := set $config "tls" $tls -}}
{{- end -}}
{{- if .Values.auth.adminUser -}}
{{- $security := get $config "security" | default dict -}}
{{- $_ := set $security "adminUser" .Values.auth.adminUser -}}
{{- $_ := set $security "adminPasswordFile" (printf "%s/admin/password" $secrets) -}}
{{- $_ := set $config "security" $security -}}
{{- end -}}
{{- if not (hasKey $config.broker "shutdownGrace") -}}
{{- $_ := set $config.broker "shutdownGrace" (printf "%ds" (max 5 (sub (int .Values.terminationGracePeriodSeconds) 10))) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- /* Where the brokers find the Secrets they need, mounted read-only: cluster/password, tls/{tls.crt,tls.key,ca.crt},
admin/password. Not under /etc/goqueue (the settings file's read-only mount). */ -}}
{{- define "goqueue.secretsDir" -}}/var/run/goqueue{{- end -}}

{{- define "goqueue.tlsSecretName" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- include "goqueue.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{- define "goqueue.adminSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- include "goqueue.fullname" . }}-admin
{{- end -}}
{{- end -}}

{{- /* https when the HTTP listener speaks TLS (tls.enabled, and "http" in config.tls.listeners or its default). */ -}}
{{- define "goqueue.httpScheme" -}}
{{- $listeners := (dig "tls" "listeners" nil .Values.config) | default "http,grpc,internal" -}}
{{- if and .Values.tls.enabled (has "http" (splitList "," (toString $listeners))) -}}https{{- else -}}http{{- end -}}
{{- end -}}
