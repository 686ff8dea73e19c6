{{/* The chart's name: `slipway`, or nameOverride. */}}
{{- define "slipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's prefix of every name, as cert-manager's and Argo CD's charts make it:
fullnameOverride, else the release name when it contains the chart's name (release `slipway`:
`slipway`), else `<release>-slipway`; cut to 46 characters, so that `<fullname>-operator-metrics`
is a valid Service name. Two releases with different names share no name, namespaced or
cluster-scoped (ClusterRoles), but two releases of one name in two namespaces would.
*/}}
{{- define "slipway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := include "slipway.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's Deployment, Lease and (by default) ServiceAccount: `<fullname>-operator`. */}}
{{- define "slipway.operator" -}}
{{- printf "%s-operator" (include "slipway.fullname" .) }}
{{- end }}

{{- define "slipway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slipway.operator" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the existing ServiceAccount the operator runs as (serviceAccount.create is false)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "slipway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release (the CRD and the aggregated roles too). */}}
{{- define "slipway.commonLabels" -}}
helm.sh/chart: {{ include "slipway.chart" . }}
app.kubernetes.io/name: {{ include "slipway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slipway
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "slipway.labels" -}}
{{ include "slipway.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's pods: the Deployment's, the Service's, the PDB's and the ServiceMonitor's selector. */}}
{{- define "slipway.selector" -}}
app.kubernetes.io/name: {{ include "slipway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest when a digest is set,
else repository:tag, the tag defaulting to the chart's appVersion.
Usage: include "slipway.image" (list .Values.image "image" .)
*/}}
{{- define "slipway.image" -}}
{{- $image := index . 0 }}{{- $key := index . 1 }}{{- $root := index . 2 }}
{{- $repository := required (printf "set %s.repository (%s)" $key (ternary "the slipway-operator image" "the slipway-builder image" (eq $key "image"))) $image.repository }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default $root.Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Leader election: asked for, or implied by more than one replica. */}}
{{- define "slipway.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}
