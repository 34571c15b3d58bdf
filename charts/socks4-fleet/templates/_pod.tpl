{{/* Pieces every pod template shares: security, placement, the environment, Redis flags. */}}

{{/* Pod-level restricted Pod Security settings; `.psc` holds runAsUser/runAsGroup/fsGroup (null
leaves one to the image or the platform). */}}
{{- define "socks4-fleet.podSecurityContext" -}}
runAsNonRoot: true
{{- range $key := list "runAsUser" "runAsGroup" "fsGroup" }}
{{- /* `get` yields "" for a missing key (null in values deletes it): test presence first. */}}
{{- if and (hasKey $.psc $key) (not (kindIs "invalid" (index $.psc $key))) }}
{{ $key }}: {{ int64 (index $.psc $key) }}
{{- end }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level restricted Pod Security settings; the same for every container. */}}
{{- define "socks4-fleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Placement of one component: (dict "ctx" $ "component" "proxy" "values" .Values.proxy).
A topology spread constraint without labelSelector gets the component's selector. */}}
{{- define "socks4-fleet.placement" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
{{- $selector := include "socks4-fleet.componentSelectorLabels" (dict "ctx" $.ctx "component" $.component) | fromYaml }}
topologySpreadConstraints:
{{- range . }}
  - {{- toYaml (ternary . (merge (dict "labelSelector" (dict "matchLabels" $selector)) .) (hasKey . "labelSelector")) | nindent 4 }}
{{- end }}
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Downward API variables (the pod's identity) and the OpenTelemetry settings:
(dict "ctx" $ "component" "proxy"). Variables referenced as $(NAME) come first. */}}
{{- define "socks4-fleet.podEnv" -}}
{{- $otel := .ctx.Values.opentelemetry }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_SERVICE_NAME
  value: {{ printf "socks4-fleet-%s" .component | quote }}
{{- if $otel.enabled }}
{{- if not $otel.endpoint }}
{{- fail "opentelemetry.enabled=true needs opentelemetry.endpoint (the OTLP collector URL, e.g. http://otel-collector:4318)" }}
{{- end }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_METRICS_EXPORTER
  value: {{ ternary "otlp" "none" $otel.exportMetrics }}
- name: OTEL_LOGS_EXPORTER
  value: none
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $otel.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $otel.sampler | quote }}
{{- with $otel.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- $attributes := list
  "k8s.pod.name=$(POD_NAME)"
  "k8s.pod.uid=$(POD_UID)"
  "k8s.namespace.name=$(POD_NAMESPACE)"
  "k8s.node.name=$(NODE_NAME)"
  (printf "k8s.deployment.name=%s-%s" (include "socks4-fleet.fullname" .ctx) .component)
  (printf "k8s.container.name=%s" .component)
  "service.instance.id=$(POD_UID)"
  (printf "service.namespace=%s" .ctx.Release.Namespace)
  (printf "service.version=%s" .ctx.Chart.AppVersion) }}
{{- range $key, $value := $otel.resourceAttributes }}
{{- /* The variable's syntax: ',' and '=' inside keys and values must be percent-encoded. */}}
{{- $attributes = append $attributes (printf "%s=%s" (include "socks4-fleet.otelEscape" $key) (include "socks4-fleet.otelEscape" (toString $value))) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- else }}
- name: OTEL_SDK_DISABLED
  value: "true"
{{- end }}
{{- end }}

{{- define "socks4-fleet.otelEscape" -}}
{{- . | replace "%" "%25" | replace "," "%2C" | replace "=" "%3D" }}
{{- end }}

{{/*
Redis connection variables from the external Secret. The URL goes in REDIS_URL, which the CLI
reads when --redis-url is absent: as a `$(VAR)` in args the kubelet would expand it into the
command line, where its credentials show in every process list. The bundled Redis's password
comes from its Secret the same way, as REDIS_PASSWORD.
*/}}
{{- define "socks4-fleet.redisEnv" -}}
{{- $ext := .Values.redis.external }}
{{- if eq .Values.redis.mode "bundled" }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "socks4-fleet.redisAuthSecret" . | quote }}
      key: {{ .Values.redis.bundled.auth.passwordKey | quote }}
{{- end }}
{{- if eq .Values.redis.mode "external" }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $ext.existingSecret | quote }}
      key: {{ $ext.urlKey | quote }}
{{- with $ext.passwordKey }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ext.existingSecret | quote }}
      key: {{ . | quote }}
{{- end }}
{{- with $ext.usernameKey }}
- name: REDIS_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $ext.existingSecret | quote }}
      key: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Redis flags the proxy and the operator share (src/cli/redis-flags.ts). An external URL
comes from env REDIS_URL (socks4-fleet.redisEnv); the bundled one carries no secret (its
password is env REDIS_PASSWORD).
*/}}
{{- define "socks4-fleet.redisArgs" -}}
{{- $ext := .Values.redis.external }}
{{- if eq .Values.redis.mode "external" }}
{{- if not $ext.existingSecret }}
{{- fail "redis.mode=external needs redis.external.existingSecret: a Secret whose key redis.external.urlKey holds the Redis URL" }}
{{- end }}
- --redis-prefix
- {{ include "socks4-fleet.redisPrefix" . }}
{{- if $ext.tls.caSecret }}
- --redis-tls-ca
- /etc/socks4-fleet/redis-ca/{{ $ext.tls.caKey }}
{{- end }}
{{- with $ext.sentinel.addresses }}
{{- if not $ext.sentinel.masterName }}
{{- fail "redis.external.sentinel.addresses needs redis.external.sentinel.masterName (the master group name)" }}
{{- end }}
{{- if $ext.cluster }}
{{- fail "choose redis.external.sentinel or redis.external.cluster, not both" }}
{{- end }}
- --redis-sentinels
- {{ join "," . }}
- --redis-sentinel-name
- {{ $ext.sentinel.masterName }}
{{- end }}
{{- if $ext.cluster }}
- --redis-cluster
{{- end }}
{{- else }}
- --redis-url
- redis://{{ include "socks4-fleet.redisName" . }}:6379
- --redis-prefix
- {{ include "socks4-fleet.redisPrefix" . }}
{{- end }}
{{- end }}

{{- define "socks4-fleet.redisCaVolumeMount" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.tls.caSecret }}
- name: redis-ca
  mountPath: /etc/socks4-fleet/redis-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "socks4-fleet.redisCaVolume" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.tls.caSecret }}
- name: redis-ca
  secret:
    secretName: {{ .Values.redis.external.tls.caSecret | quote }}
    items:
      - key: {{ .Values.redis.external.tls.caKey | quote }}
        path: {{ .Values.redis.external.tls.caKey | quote }}
{{- end }}
{{- end }}
