{{/*
The proxy's --workers: `auto` takes the whole cores of the container's CPU limit (2 → 2, 1500m
→ 1, 500m → 1), and 1 without a limit (nothing says how many cores the pod may use). A worker
is a whole proxy process with its own event loop: more workers than cores only add memory.
*/}}
{{- define "socks4-fleet.proxyWorkers" -}}
{{- $proxy := .Values.proxy -}}
{{- if eq (toString $proxy.workers) "auto" -}}
{{- $cpu := "" -}}
{{- with $proxy.resources }}{{ with .limits }}{{ with .cpu }}{{ $cpu = toString . }}{{ end }}{{ end }}{{ end -}}
{{- if eq $cpu "" -}}
1
{{- else if hasSuffix "m" $cpu -}}
{{ max 1 (div (int64 (trimSuffix "m" $cpu)) 1000) }}
{{- else -}}
{{ max 1 (int64 (floor (float64 $cpu))) }}
{{- end -}}
{{- else if lt (int64 $proxy.workers) 1 -}}
{{- fail (printf "proxy.workers: %v is not a worker count; use auto or a number from 1" $proxy.workers) -}}
{{- else -}}
{{ int64 $proxy.workers }}
{{- end -}}
{{- end -}}
