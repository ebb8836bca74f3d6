{{/*
What each service needs, declared once: the backends it talks to (NetworkPolicy egress, Secret env), whether it
verifies JWTs, and the components whose APIs it calls (`calls`: REVISIT_<NAME>_URL, an egress rule to their pods and
an ingress rule on theirs). A service in values.services without an entry here fails to render.
*/}}
{{- define "revisit.serviceWiring" -}}
ingest:
  backends: [nats, s3]
  jwt: true
matcher:
  backends: [nats, milvus]
  jwt: true
identity:
  backends: [nats, postgres, s3]
  jwt: true
reporting:
  backends: [nats, postgres]
  jwt: true
audit:
  backends: [nats, postgres]
  jwt: true
  auditSigning: true
console:
  backends: []
  jwt: true
  calls: [identity, matcher, reporting, audit]
  modelPack: true
{{- end }}

{{/* The enabled components that call `.name`'s API (their wiring's `calls`): (dict "root" $ "name" "identity") */}}
{{- define "revisit.callersOf" -}}
{{- $callers := list -}}
{{- $all := include "revisit.serviceWiring" .root | fromYaml -}}
{{- range $name, $svc := .root.Values.services -}}
{{- if and $svc.enabled (hasKey $all $name) (has $.name ((index $all $name).calls | default list)) -}}
{{- $callers = append $callers $name -}}
{{- end -}}
{{- end -}}
{{- toJson $callers -}}
{{- end }}

{{/* The in-cluster URL of a component's API: (dict "root" $ "name" "identity") -> http://<release>-identity:8003 */}}
{{- define "revisit.componentUrl" -}}
{{- $svc := index .root.Values.services .name -}}
{{- if not (and $svc $svc.enabled) -}}
{{- fail (printf "a component calls services.%s, which is not enabled" .name) -}}
{{- end -}}
{{- printf "http://%s:%v" (include "revisit.componentName" .) $svc.port -}}
{{- end }}

{{/* The wiring of one service: (dict "root" $ "name" "ingest") */}}
{{- define "revisit.wiringFor" -}}
{{- $all := include "revisit.serviceWiring" .root | fromYaml -}}
{{- if not (hasKey $all .name) -}}
{{- fail (printf "services.%s has no wiring in _helpers.tpl (revisit.serviceWiring)" .name) -}}
{{- end -}}
{{- index $all .name | toYaml -}}
{{- end }}

{{- define "revisit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "revisit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a per-service object: (dict "root" $ "name" "ingest") -> <fullname>-ingest */}}
{{- define "revisit.componentName" -}}
{{- printf "%s-%s" (include "revisit.fullname" .root | trunc 50 | trimSuffix "-") .name }}
{{- end }}

{{- define "revisit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the release: pass the root context. */}}
{{- define "revisit.commonLabels" -}}
helm.sh/chart: {{ include "revisit.chart" . }}
app.kubernetes.io/name: {{ include "revisit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: revisit
{{- end }}

{{/* Labels of one service: (dict "root" $ "name" "ingest") */}}
{{- define "revisit.labels" -}}
{{ include "revisit.commonLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "revisit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "revisit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
The image reference: repository:tag, or repository:tag@digest when a digest pins it (what runs is then exactly
the digest; the tag only informs people). Pass the root context for the chart's image, or
(dict "root" $ "name" "ingest") for a component, whose `image` (if any) overrides the chart's key by key.
*/}}
{{- define "revisit.image" -}}
{{- $root := .root | default . -}}
{{- $image := $root.Values.image -}}
{{- if and .name (index $root.Values.services .name).image -}}
{{- $own := (index $root.Values.services .name).image -}}
{{- /* A digest names one image's content: a component with its own image never inherits the chart's digest. */ -}}
{{- $image = merge (deepCopy $own) (omit $root.Values.image "digest") -}}
{{- end -}}
{{- $reference := printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- if $image.digest -}}
{{- $reference = printf "%s@%s" $reference $image.digest -}}
{{- end -}}
{{- $reference -}}
{{- end }}

{{/* The container command of a component: its `command`, else python -m services.<name>. (dict "root" $ "name" "ingest") */}}
{{- define "revisit.command" -}}
{{- $svc := index .root.Values.services .name -}}
{{- $svc.command | default (list "python" "-m" (printf "services.%s" .name)) | toJson -}}
{{- end }}

{{/*
Affinity of a component: `affinity` when given, else the podAntiAffinity default that keeps its replicas on
different nodes (soft: preferred, hard: required). (dict "root" $ "name" "ingest")
*/}}
{{- define "revisit.affinity" -}}
{{- $v := .root.Values -}}
{{- if $v.affinity -}}
{{- toYaml $v.affinity -}}
{{- else if eq $v.podAntiAffinity "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "revisit.selectorLabels" . | nindent 10 }}
{{- else if eq $v.podAntiAffinity "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "revisit.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end }}

{{/*
Topology spread of a component: `topologySpreadConstraints` when given, else one ScheduleAnyway constraint per
`topologySpread.topologyKeys` (zones, then nodes), so a zone or node lost takes few replicas with it.
(dict "root" $ "name" "ingest")
*/}}
{{- define "revisit.topologySpread" -}}
{{- $v := .root.Values -}}
{{- if $v.topologySpreadConstraints -}}
{{- toYaml $v.topologySpreadConstraints -}}
{{- else if $v.topologySpread.enabled -}}
{{- range $key := $v.topologySpread.topologyKeys }}
- maxSkew: {{ $v.topologySpread.maxSkew }}
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "revisit.selectorLabels" $ | nindent 6 }}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "revisit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "revisit.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Environment of one service beyond its ConfigMaps: values read from existing Secrets, and extraEnv.
(dict "root" $ "name" "ingest")
*/}}
{{- define "revisit.secretEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $wiring := include "revisit.wiringFor" . | fromYaml -}}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- if has "s3" $wiring.backends }}
- name: REVISIT_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "s3.credentialsSecret.name is required" $v.s3.credentialsSecret.name }}
      key: {{ $v.s3.credentialsSecret.accessKeyKey }}
- name: REVISIT_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.s3.credentialsSecret.name }}
      key: {{ $v.s3.credentialsSecret.secretKeyKey }}
{{- end }}
{{- if and (has "milvus" $wiring.backends) $v.milvus.tokenSecret.name }}
- name: REVISIT_MILVUS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.milvus.tokenSecret.name }}
      key: {{ $v.milvus.tokenSecret.key }}
{{- end }}
{{- if has "postgres" $wiring.backends }}
- name: REVISIT_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ required "postgres.dsnSecret.name is required" $v.postgres.dsnSecret.name }}
      key: {{ required (printf "postgres.dsnSecret.keys.%s is required" .name) (index $v.postgres.dsnSecret.keys .name) }}
{{- $migrationKeys := $v.postgres.dsnSecret.migrationKeys | default dict }}
{{- if hasKey $migrationKeys .name }}
- name: REVISIT_POSTGRES_MIGRATION_DSN
  valueFrom:
    secretKeyRef:
      name: {{ $v.postgres.dsnSecret.name }}
      key: {{ index $migrationKeys .name }}
{{- end }}
{{- end }}
{{- if $wiring.auditSigning }}
- name: REVISIT_AUDIT_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "audit.signingKeySecret.name is required" $v.audit.signingKeySecret.name }}
      key: {{ $v.audit.signingKeySecret.key }}
{{- end }}
{{- if $wiring.jwt }}
- name: REVISIT_JWT_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "jwt.publicKeySecret.name is required" $v.jwt.publicKeySecret.name }}
      key: {{ $v.jwt.publicKeySecret.key }}
{{- end }}
{{- range $key, $value := (index $v.services .name).extraEnv }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
envFrom of one service: the shared ConfigMap and its own, then the global and the service's `extraEnvFrom`
(later sources win, so an operator's Secret can override a chart setting). (dict "root" $ "name" "ingest")
*/}}
{{- define "revisit.envFrom" -}}
- configMapRef:
    name: {{ include "revisit.fullname" .root }}-common
- configMapRef:
    name: {{ include "revisit.componentName" . }}
{{- with .root.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- with (index .root.Values.services .name).extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}
