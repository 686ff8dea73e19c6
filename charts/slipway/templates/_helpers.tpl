{{- define "slipway.labels" -}}
app.kubernetes.io/name: slipway-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
{{- define "slipway.selector" -}}
app.kubernetes.io/name: slipway-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
