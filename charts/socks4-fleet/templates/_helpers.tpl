{{/* Names, labels and images. Names are cut to 63 characters: they end up in label values. */}}

{{- define "socks4-fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already contains the chart name. Component
suffixes (-proxy, -operator, -redis) are at most 9 characters, hence 54. */}}
{{- define "socks4-fleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "socks4-fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "socks4-fleet.labels" -}}
helm.sh/chart: {{ include "socks4-fleet.chart" . }}
{{ include "socks4-fleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: socks4-fleet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The release's selector; never changes across upgrades (Deployment selectors are immutable). */}}
{{- define "socks4-fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "socks4-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one component: (dict "ctx" $ "component" "proxy"). */}}
{{- define "socks4-fleet.componentSelectorLabels" -}}
{{ include "socks4-fleet.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of one component's objects: (dict "ctx" $ "component" "proxy"). */}}
{{- define "socks4-fleet.componentLabels" -}}
{{ include "socks4-fleet.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "socks4-fleet.proxyName" -}}
{{ include "socks4-fleet.fullname" . }}-proxy
{{- end }}

{{- define "socks4-fleet.operatorName" -}}
{{ include "socks4-fleet.fullname" . }}-operator
{{- end }}

{{- define "socks4-fleet.redisName" -}}
{{ include "socks4-fleet.fullname" . }}-redis
{{- end }}

{{/* The Secret holding the bundled Redis password: the one named in values, or the generated one. */}}
{{- define "socks4-fleet.redisAuthSecret" -}}
{{- default (printf "%s-auth" (include "socks4-fleet.redisName" .)) .Values.redis.bundled.auth.existingSecret }}
{{- end }}

{{- define "socks4-fleet.proxyServiceAccountName" -}}
{{- default (include "socks4-fleet.proxyName" .) .Values.proxy.serviceAccount.name }}
{{- end }}

{{- define "socks4-fleet.operatorServiceAccountName" -}}
{{- default (include "socks4-fleet.operatorName" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{/* repository@digest when a digest is given (it pins the content), else repository:tag. */}}
{{- define "socks4-fleet.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .defaultTag .image.tag) }}
{{- end }}
{{- end }}

{{- define "socks4-fleet.image" -}}
{{ include "socks4-fleet.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/* The Redis key prefix every proxy and the operator share. */}}
{{- define "socks4-fleet.redisPrefix" -}}
{{- default .Release.Name .Values.redis.prefix }}
{{- end }}

{{- define "socks4-fleet.leaseName" -}}
{{ include "socks4-fleet.operatorName" . }}
{{- end }}

{{/* "true" when the operator elects a leader through its Lease, else empty. `auto` elects exactly
when more than one replica runs; without election every replica publishes, so false allows one. */}}
{{- define "socks4-fleet.leaderElection" -}}
{{- $enabled := toString .Values.operator.leaderElection.enabled }}
{{- $replicas := int64 .Values.operator.replicas }}
{{- if and (eq $enabled "false") (gt $replicas 1) }}
{{- fail "operator.leaderElection.enabled=false runs a single operator (without election every replica publishes): set operator.replicas to 1, or leaderElection.enabled to auto or true" }}
{{- end }}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (gt $replicas 1)) }}true{{ end }}
{{- end }}

{{/* An IntOrString value: numbers as integers (values arrive as floats), percentages quoted. */}}
{{- define "socks4-fleet.intOrPercent" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}
