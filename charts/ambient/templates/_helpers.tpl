{{/* Names, labels and the pod/container security settings shared by every component. */}}

{{- define "ambient.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ambient.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "ambient.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ambient.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ambient
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "ambient.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ambient.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ambient.componentLabels" -}}
{{ include "ambient.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ambient.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name of one component. */}}
{{- define "ambient.serviceAccount" -}}
{{ include "ambient.fullname" .ctx }}-{{ .component }}
{{- end -}}

{{/* Pod-level security: Pod Security Admission `restricted`. */}}
{{- define "ambient.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: restricted, plus a read-only root filesystem. */}}
{{- define "ambient.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Names of the admission webhook's objects, shared by the TLS and webhook templates. */}}
{{- define "ambient.admission.service" -}}
{{ include "ambient.fullname" . }}-admission
{{- end -}}
{{- define "ambient.admission.tlsSecret" -}}
{{ include "ambient.fullname" . }}-admission-tls
{{- end -}}

{{/* Does this install use cert-manager for the webhook's TLS? "true" or "". */}}
{{- define "ambient.admission.certManager" -}}
{{- $mode := .Values.admission.tls.mode -}}
{{- if or (eq $mode "cert-manager") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
true
{{- end -}}
{{- end -}}

{{/* The artifact store's settings (operator.store) as AMBIENT_STORE_* env entries, for the
components that export audit records to it. Empty without a bucket. */}}
{{- define "ambient.storeEnv" -}}
{{- with .Values.operator.store }}
{{- if .bucket }}
- name: AMBIENT_STORE_BUCKET
  value: {{ .bucket | quote }}
- name: AMBIENT_STORE_PREFIX
  value: {{ .prefix | quote }}
- name: AMBIENT_STORE_REGION
  value: {{ .region | quote }}
{{- if .endpointUrl }}
- name: AMBIENT_STORE_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* envFrom for the store's credentials Secret, when one is named. */}}
{{- define "ambient.storeCredentials" -}}
{{- with .Values.operator.store.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/*
The Secret names the operator and the ingress may read (RBAC resourceNames): the fixed
credential Secrets of crds/credentials.py (CREDENTIAL_SECRETS) and the webhook signing
Secrets of secrets.signingSecretNames. Nothing else, in any namespace.
*/}}
{{- define "ambient.readableSecrets" -}}
- ambient-source-credentials
- ambient-model-credentials
- ambient-n8n-credentials
{{- range .Values.secrets.signingSecretNames }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* One operator shard's Deployment and Lease name: (dict "ctx" $ "shard" N). With one
shard, the unsharded names (an upgrade keeps the Deployment and its selector); with more,
one per shard ("sharded" true: that name whatever the count). */}}
{{- define "ambient.operatorShard" -}}
{{- if or .sharded (gt (int .ctx.Values.operator.shards) 1) -}}
{{ include "ambient.fullname" .ctx }}-operator-shard-{{ .shard }}
{{- else -}}
{{ include "ambient.fullname" .ctx }}-operator
{{- end -}}
{{- end -}}

{{/* The selector label that sets one shard's pods apart (none with one shard, whose
selector stays what it was before shards). */}}
{{- define "ambient.shardLabel" -}}
{{- if gt (int .ctx.Values.operator.shards) 1 -}}
ambient.ai/operator-shard: {{ .shard | quote }}
{{- end -}}
{{- end -}}
