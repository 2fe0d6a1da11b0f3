{{- define "stockcast.labels" -}}
app.kubernetes.io/part-of: stockcast
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "stockcast.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}


{{- define "stockcast.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .name }}
{{- end -}}

{{- define "stockcast.image" -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "stockcast.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-stockcast" .Release.Name) -}}
{{- end -}}

{{- define "stockcast.maxReplicas" -}}
{{- .Values.autoscaling.maxReplicas | default .Values.kafka.partitions -}}
{{- end -}}

{{- /* Container securityContext, pod securityContext and the /tmp volume
     shared by the Deployments, the hook Jobs and the CronJob. */ -}}
{{- define "stockcast.podSecurity" -}}
serviceAccountName: {{ .Release.Name }}-stockcast
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- /* Passwords as environment variables from the release's Secret: each
     binary gets only the ones it has flags for (name: the service; none
     given, both). forecast, the console and `stockcast train` have no Redis
     flags; feature reads ClickHouse to rebuild after a Redis loss. */ -}}
{{- define "stockcast.passwordEnv" -}}
{{- $name := .name | default "" -}}
{{- if not (has $name (list "forecast" "console" "train")) }}
- name: STOCKCAST_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .secret }}, key: redis-password, optional: true}
{{- end }}
- name: STOCKCAST_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .secret }}, key: clickhouse-password, optional: true}
{{- end -}}

{{- /* The Secret the pre-install/pre-upgrade hooks read: hooks run before
     the release's own Secret exists, so the chart renders a hook copy. */ -}}
{{- define "stockcast.hookSecretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-stockcast-hooks" .Release.Name) -}}
{{- end -}}

{{- /* The Kafka topics each consuming service reads (KEDA triggers). */ -}}
{{- define "stockcast.consumedTopics" -}}
ingest: {group: stockcast-ingest, topics: [orders.v1, inventory.v1, catalog.v1]}
feature: {group: stockcast-feature, topics: [demand.v1]}
forecast: {group: stockcast-forecast, topics: [features.v1]}
replenishment: {group: stockcast-replenishment, topics: [forecasts.v1]}
{{- end -}}

{{- /* gRPC bearer tokens (grpcAuth) of one pod: a gRPC server gets the
     token lines and its method-role rules; forecast and the console get the
     token their clients send. Nothing when grpcAuth is off. */ -}}
{{- define "stockcast.grpcAuthEnv" -}}
{{- $v := .root.Values.grpcAuth -}}
{{- if $v.enabled -}}
{{- $secret := include "stockcast.grpcAuthSecretName" .root -}}
{{- if ne .name "console" }}
- name: STOCKCAST_GRPC_AUTH_TOKENS
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: tokens}
{{- with index $v.methodRoles .name }}
- {name: STOCKCAST_GRPC_AUTH_METHOD_ROLES, value: {{ . | quote }}}
{{- end }}
{{- end }}
{{- if eq .name "forecast" }}
# forecast's client of the feature service
- name: STOCKCAST_FEATURE_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: feature-token}
{{- end }}
{{- if eq .name "console" }}
# the console's clients of feature, forecast and replenishment
- name: STOCKCAST_UPSTREAM_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: console-token}
{{- end }}
{{- end -}}
{{- end -}}
