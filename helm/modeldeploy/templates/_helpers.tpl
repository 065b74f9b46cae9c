{{/* Names and labels. */}}
{{- define "modeldeploy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Never `app.kubernetes.io/managed-by: modeldeploy`: the operator watches objects
     with that label as its own children. */}}
{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldeploy.args" -}}
- run
{{- if .Values.watchedNamespaces }}
{{- range .Values.watchedNamespaces }}
- --namespace
- {{ . | quote }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --log-format
- {{ .Values.logFormat | quote }}
{{- if eq .Values.logLevel "debug" }}
- --verbose
{{- end }}
- --metrics-port
- {{ .Values.metrics.port | quote }}
- --health-port
- {{ .Values.health.port | quote }}
- --storage-initializer-image
- {{ .Values.storageInitializerImage | quote }}
{{- /* The comparator a compare metric runs beside a canary is this image too (`modeldeploy compare`). */}}
- --comparator-image
- "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
- --kube-qps
- {{ .Values.kubeAPI.qps | quote }}
- --kube-burst
- {{ .Values.kubeAPI.burst | quote }}
- --resync-seconds
- {{ .Values.resyncSeconds | quote }}
{{- if .Values.analysis.allowInlineURLs }}
- --allow-inline-analysis-urls
{{- end }}
{{- if gt (int .Values.replicas) 1 }}
- --peering
- {{ .Values.peeringName | quote }}
{{- end }}
{{- end }}

{{/*
The operator's permissions; the same rules as manifests/cluster-rbac.yaml and
manifests/overlays/namespaced/role.yaml, which say why each is there
(tests/e2e/test_install.py compares them). Call with (dict "namespaced" true|false).
Namespaced adds `get` on Secrets (check that credentialsSecret exists) and uses
KopfPeering; cluster-wide reads no Secrets, watches CRDs and uses ClusterKopfPeering.
*/}}
{{- define "modeldeploy.rules" -}}
- apiGroups: [modeldeploy.dev]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [modeldeploy.dev]
  resources: [modeldeployments/status]
  verbs: [patch]
- apiGroups: [modeldeploy.dev]
  resources: [modeldeployments/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments, controllerrevisions]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
{{- if .namespaced }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- else }}
- apiGroups: [modeldeploy.dev]
  resources: [analysisproviders]
  verbs: [get, list, watch]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, patch]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, patch]
{{- if .namespaced }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch, create]
{{- else }}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch, create]
{{- end }}
{{- end }}
