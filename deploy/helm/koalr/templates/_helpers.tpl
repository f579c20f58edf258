{{/* Names, labels and the shared pieces of the pod templates. */}}

{{- define "koalr.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "koalr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: koalr
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "syncer"). */}}
{{- define "koalr.selectorLabels" -}}
app.kubernetes.io/name: koalr
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The services the chart runs: settings prefix and the secrets each one reads (environment
    variable: the value naming its key in secrets.existingSecret). */}}
{{- define "koalr.components" -}}
connector:
  prefix: CONNECTOR
  secrets: {DATABASE_URL: databaseUrlKey, KOALR_JWT_SECRET: jwtSecretKey, KOALR_SEALING_KEYS: sealingKeysKey}
  providers: true
  api: true
syncer:
  prefix: SYNCER
  secrets: {DATABASE_URL: databaseUrlKey, KOALR_SEALING_KEYS: sealingKeysKey}
  providers: true
  api: false
metrics:
  prefix: METRICS
  secrets: {DATABASE_URL: databaseUrlKey, KOALR_JWT_SECRET: jwtSecretKey}
  providers: false
  api: true
{{- end -}}

{{- define "koalr.image" -}}
{{- $repo := printf "%s-%s" .root.Values.image.repositoryPrefix .component -}}
{{- if .root.Values.image.registry -}}
{{- $repo = printf "%s/%s" .root.Values.image.registry $repo -}}
{{- end -}}
{{- printf "%s:%s" $repo (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* Environment of one component (the service and its migration Job read the same settings). */}}
{{- define "koalr.env" -}}
{{- $root := .root -}}
{{- $spec := index (include "koalr.components" $root | fromYaml) .component -}}
{{- $values := index $root.Values .component -}}
{{- $secret := required "secrets.existingSecret must name a Secret holding DATABASE_URL and the keys (docs/deploy.md)" $root.Values.secrets.existingSecret -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: KOALR_TOPIC_PARTITIONS
  value: {{ $root.Values.kafka.topicPartitions | quote }}
- name: KOALR_TOPIC_NAMESPACE
  value: {{ $root.Values.kafka.topicNamespace | quote }}
- name: LOG_LEVEL
  value: {{ $root.Values.log.level | quote }}
- name: LOG_FORMAT
  value: {{ $root.Values.log.format | quote }}
- name: {{ $spec.prefix }}_HOST
  value: "0.0.0.0"
- name: {{ $spec.prefix }}_PORT
  value: {{ $values.port | quote }}
{{- if $spec.providers }}
- name: CURSOR_API_BASE_URL
  value: {{ $root.Values.providers.cursorApiBaseUrl | quote }}
- name: GITHUB_API_BASE_URL
  value: {{ $root.Values.providers.githubApiBaseUrl | quote }}
{{- end }}
{{- if eq .component "syncer" }}
- name: SYNCER_WORKER_CONCURRENCY
  value: {{ $values.workerConcurrency | quote }}
{{- end }}
{{- range $name, $key := $spec.secrets }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index $root.Values.secrets $key }}
{{- end }}
{{- $managed := list "KAFKA_BOOTSTRAP_SERVERS" "KOALR_TOPIC_PARTITIONS" "KOALR_TOPIC_NAMESPACE" "LOG_LEVEL" "LOG_FORMAT" "CURSOR_API_BASE_URL" "GITHUB_API_BASE_URL" "SYNCER_WORKER_CONCURRENCY" (printf "%s_HOST" $spec.prefix) (printf "%s_PORT" $spec.prefix) }}
{{- range $name, $value := $values.env }}
{{- if or (has $name $managed) (hasKey $spec.secrets $name) }}
{{- fail (printf "%s.env.%s is set by the chart: use the value documented in docs/deploy.md instead" $.component $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "koalr.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
{{- end -}}
