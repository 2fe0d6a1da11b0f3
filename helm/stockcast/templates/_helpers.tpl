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
