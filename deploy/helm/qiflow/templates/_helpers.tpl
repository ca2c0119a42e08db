{{/* The release's base name, at most 63 characters with the suffixes the chart adds. */}}
{{- define "qiflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qiflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one ingest pipeline (dict "root" $ "name" NAME). */}}
{{- define "qiflow.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "qiflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The pipelines, schema and topics files: the chart's files/, overridden by .Values.pipelineFiles. */}}
{{- define "qiflow.files" -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/*.yaml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $content := .Values.pipelineFiles -}}
{{- $_ := set $files $name $content -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/* The connection environment of every qiflow container: the profile and
     the brokers and database, without a password. DATABASE_URL comes from
     the Secret when database.urlSecretKey names one of its keys. */}}
{{- define "qiflow.connectionEnv" -}}
{{- if and .Values.database.url (regexMatch "^[a-z]+://[^/@]*:[^/@]*@" .Values.database.url) -}}
{{- fail "database.url carries a password: put the whole URL in the Secret and set database.urlSecretKey, or leave the password to secrets.databasePasswordKey" -}}
{{- end -}}
- name: QIFLOW_ENV
  value: {{ .Values.profile | quote }}
- name: REDPANDA_BROKERS
  value: {{ required "redpanda.brokers is required" .Values.redpanda.brokers | quote }}
- name: REDPANDA_TLS
  value: {{ .Values.redpanda.tls | quote }}
{{- with .Values.redpanda.saslMechanism }}
- name: REDPANDA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.redpanda.username }}
- name: REDPANDA_USERNAME
  value: {{ . | quote }}
{{- end }}
- name: DATABASE_URL
{{- if .Values.database.urlSecretKey }}
  valueFrom:
    secretKeyRef:
      name: {{ include "qiflow.secretName" . }}
      key: {{ .Values.database.urlSecretKey }}
{{- else }}
  value: {{ required "database.url or database.urlSecretKey is required" .Values.database.url | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A variable of one Secret key (dict "root" $ "name" VAR "key" KEY). */}}
{{- define "qiflow.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "qiflow.secretName" .root }}
      key: {{ .key }}
{{- end -}}

{{- define "qiflow.secretName" -}}
{{- required "secrets.existingSecret is required: the chart never renders passwords" .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "qiflow.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ include "qiflow.secretName" . }}
    defaultMode: 0440
{{- end -}}

{{- define "qiflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "qiflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ ALL ]
{{- end -}}
