{{- /* The Secrets the chart renders (templates/secret.yaml). They are
     defines so that each pod template can carry a checksum of exactly the
     Secrets it reads (checksum/secret): changing a password, a token or a
     console user restarts the pods that use it. A Secret named through an
     existing* value is not the chart's: its changes are not seen (restart
     with `kubectl rollout restart`). */ -}}

{{- define "stockcast.secret.passwords" -}}
{{- if not .Values.secrets.existingSecret }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "stockcast.secretName" . }}
  labels:
    {{- include "stockcast.labels" . | nindent 4 }}
type: Opaque
stringData:
  redis-password: {{ .Values.secrets.redisPassword | quote }}
  clickhouse-password: {{ .Values.secrets.clickhousePassword | quote }}
{{- end }}
{{- end -}}

{{- define "stockcast.grpcAuthSecretName" -}}
{{- .Values.grpcAuth.existingSecret | default (printf "%s-stockcast-grpc-auth" .Release.Name) -}}
{{- end -}}

{{- /* gRPC bearer tokens (docs/security.md): the servers' token lines
     (key tokens, ';'-separated as STOCKCAST_GRPC_AUTH_TOKENS wants them),
     forecast's token for the feature service (feature-token) and the
     console's token for the three services (console-token). */ -}}
{{- define "stockcast.secret.grpcAuth" -}}
{{- if and .Values.grpcAuth.enabled (not .Values.grpcAuth.existingSecret) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "stockcast.grpcAuthSecretName" . }}
  labels:
    {{- include "stockcast.labels" . | nindent 4 }}
type: Opaque
stringData:
  tokens: {{ required "grpcAuth.tokens: list the servers' token lines, or name grpcAuth.existingSecret" (join ";" .Values.grpcAuth.tokens) | quote }}
  feature-token: {{ required "grpcAuth.featureToken: forecast's token for the feature service, or name grpcAuth.existingSecret" .Values.grpcAuth.featureToken | quote }}
  {{- if .Values.console.enabled }}
  console-token: {{ required "grpcAuth.consoleToken: the console's token for the services, or name grpcAuth.existingSecret" .Values.grpcAuth.consoleToken | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "stockcast.consoleUsersSecretName" -}}
{{- .Values.console.usersSecret | default (printf "%s-console-users" .Release.Name) -}}
{{- end -}}

{{- define "stockcast.secret.consoleUsers" -}}
{{- if and .Values.console.enabled (not .Values.console.usersSecret) }}
# The console's users, one name:role:bcrypt-hash a line (console.users). The
# console refuses to start while this is empty.
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "stockcast.consoleUsersSecretName" . }}
  labels:
    {{- include "stockcast.labels" . | nindent 4 }}
    app.kubernetes.io/name: console
type: Opaque
stringData:
  users: {{ join "\n" .Values.console.users | quote }}
{{- end }}
{{- end -}}

{{- define "stockcast.consoleOIDCSecretName" -}}
{{- .Values.console.oidc.existingSecret | default (printf "%s-console-oidc" .Release.Name) -}}
{{- end -}}

{{- /* The OIDC client secret (key client-secret), mounted as a file. */ -}}
{{- define "stockcast.secret.consoleOIDC" -}}
{{- $o := .Values.console.oidc }}
{{- if and .Values.console.enabled $o.issuer (not (and $o.clientID $o.redirectURL)) }}
{{- fail "console.oidc: issuer needs clientID and redirectURL" }}
{{- end }}
{{- if and .Values.console.enabled $o.issuer (not $o.existingSecret) }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "stockcast.consoleOIDCSecretName" . }}
  labels:
    {{- include "stockcast.labels" . | nindent 4 }}
    app.kubernetes.io/name: console
type: Opaque
stringData:
  client-secret: {{ required "console.oidc.clientSecret or console.oidc.existingSecret is required with console.oidc.issuer" .Values.console.oidc.clientSecret | quote }}
{{- end }}
{{- end -}}

{{- /* checksum/secret of a pod template: the chart's Secrets that pod reads. */ -}}
{{- define "stockcast.secretChecksum" -}}
{{- $s := list (include "stockcast.secret.passwords" .root) (include "stockcast.secret.grpcAuth" .root) -}}
{{- if eq .name "console" -}}
{{- $s = concat $s (list (include "stockcast.secret.consoleUsers" .root) (include "stockcast.secret.consoleOIDC" .root)) -}}
{{- end -}}
{{- join "\n---\n" $s | sha256sum -}}
{{- end -}}
