{{- define "epic-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "epic-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "epic-operator.labels" -}}
app.kubernetes.io/name: {{ include "epic-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "epic-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "epic-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "epic-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "epic-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "epic-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}
{{- /*
The --jwks-public-url value: jwks.publicUrl, or, when empty and the Ingress serves the default
path, https://<jwks.ingress.host> (the operator appends /jwks/{namespace}/{name} itself).
*/}}
{{- define "epic-operator.jwksPublicUrl" -}}
{{- $j := .Values.jwks -}}
{{- if $j.publicUrl -}}
{{- trimSuffix "/" $j.publicUrl -}}
{{- else if and $j.enabled $j.ingress.enabled (eq $j.ingress.path "/jwks") -}}
{{- printf "https://%s" $j.ingress.host -}}
{{- end -}}
{{- end -}}
{{- /*
The pod security context: podSecurityContext, without runAsUser and runAsGroup when
openshift is true (the restricted SCC assigns a UID from the namespace's range and refuses
one outside it).
*/}}
{{- define "epic-operator.podSecurityContext" -}}
{{- $ctx := deepCopy .Values.podSecurityContext -}}
{{- if .Values.openshift -}}
{{- $_ := unset $ctx "runAsUser" -}}
{{- $_ := unset $ctx "runAsGroup" -}}
{{- $_ := unset $ctx "fsGroup" -}}
{{- end -}}
{{- toYaml $ctx -}}
{{- end -}}
{{- /*
Topology spread: topologySpreadConstraints as given, else, with more than one replica, one
that keeps replicas on different nodes where it can (ScheduleAnyway: never unschedulable).
*/}}
{{- define "epic-operator.topologySpread" -}}
{{- if .Values.topologySpreadConstraints -}}
{{- toYaml .Values.topologySpreadConstraints -}}
{{- else if gt (int .Values.replicaCount) 1 -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "epic-operator.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
