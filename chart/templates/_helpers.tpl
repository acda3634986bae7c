{{/*
Names and labels. The template names, the fullname rule and the selector labels are the same as the
Go reference chart's, so a release can switch charts in place (a Deployment's selector cannot change)
and `extraObjects` that include these templates keep working.
*/}}
{{- define "nats-k8s-oidc-callout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nats-k8s-oidc-callout.fullname" -}}
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

{{- define "nats-k8s-oidc-callout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nats-k8s-oidc-callout.labels" -}}
helm.sh/chart: {{ include "nats-k8s-oidc-callout.chart" . }}
{{ include "nats-k8s-oidc-callout.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nats-k8s-oidc-callout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nats-k8s-oidc-callout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nats-k8s-oidc-callout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nats-k8s-oidc-callout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Credentials of the service's own NATS user. `nats.userCredentials` is the reference chart's current
key; `nats.credentials` is its earlier name (charts before v2.0 of the reference) and still works.
Prints the name of the values block in use ("userCredentials", "credentials") or nothing.
*/}}
{{- define "nats-k8s-oidc-callout.natsUserCredsBlock" -}}
{{- $new := .Values.nats.userCredentials | default dict }}
{{- $old := .Values.nats.credentials | default dict }}
{{- $useNew := or $new.create $new.existingSecret }}
{{- $useOld := or $old.create $old.existingSecret }}
{{- if and $useNew $useOld }}
{{- fail "nats.userCredentials and nats.credentials (its older name) are both set: keep only nats.userCredentials" }}
{{- else if $useNew }}
{{- print "userCredentials" }}
{{- else if $useOld }}
{{- print "credentials" }}
{{- end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.natsUserCredsSecretName" -}}
{{- $block := include "nats-k8s-oidc-callout.natsUserCredsBlock" . }}
{{- if $block }}
{{- $v := index .Values.nats $block }}
{{- if $v.create }}
{{- printf "%s-nats-user-creds" (include "nats-k8s-oidc-callout.fullname" .) }}
{{- else }}
{{- $v.existingSecret }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.natsUserCredsSecretKey" -}}
{{- $block := include "nats-k8s-oidc-callout.natsUserCredsBlock" . }}
{{- if $block }}
{{- $v := index .Values.nats $block }}
{{- if $v.create }}
{{- print "user.creds" }}
{{- else if eq $block "credentials" }}
{{- $v.existingSecretKey | default "credentials" }}
{{- else }}
{{- $v.existingSecretKey | default "user.creds" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Account signing key (required): a created or an existing Secret. */}}
{{- define "nats-k8s-oidc-callout.natsSigningKeySecretName" -}}
{{- if .Values.nats.signingKey.create }}
{{- printf "%s-nats-signing-key" (include "nats-k8s-oidc-callout.fullname" .) }}
{{- else }}
{{- required "nats.signingKey.existingSecret is required when nats.signingKey.create=false" .Values.nats.signingKey.existingSecret }}
{{- end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.natsSigningKeySecretKey" -}}
{{- if .Values.nats.signingKey.create }}
{{- print "signing.key" }}
{{- else }}
{{- .Values.nats.signingKey.existingSecretKey | default "signing.key" }}
{{- end }}
{{- end }}

{{/* Curve (xkey) seed for encrypted callouts (optional). */}}
{{- define "nats-k8s-oidc-callout.natsXkeyEnabled" -}}
{{- if or .Values.nats.xkey.create .Values.nats.xkey.existingSecret }}true{{ end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.natsXkeySecretName" -}}
{{- if .Values.nats.xkey.create }}
{{- printf "%s-nats-xkey" (include "nats-k8s-oidc-callout.fullname" .) }}
{{- else }}
{{- .Values.nats.xkey.existingSecret }}
{{- end }}
{{- end }}

{{- define "nats-k8s-oidc-callout.natsXkeySecretKey" -}}
{{- if .Values.nats.xkey.create }}
{{- print "xkey.seed" }}
{{- else }}
{{- .Values.nats.xkey.existingSecretKey | default "xkey.seed" }}
{{- end }}
{{- end }}

{{/*
Container environment, in the reference chart's order (PORT, LOG_LEVEL, NATS_URL, NATS_ACCOUNT, ...)
followed by the variables the reference does not have. A name that is also a key of `secretEnv` is
read from the `-env` Secret in place; other `secretEnv` keys follow; a name repeated in `extraEnv`
is left to `extraEnv`, which comes last.
*/}}
{{- define "nats-k8s-oidc-callout.env" -}}
{{- $fullname := include "nats-k8s-oidc-callout.fullname" . }}
{{- $secretEnv := .Values.secretEnv | default dict }}
{{- $extraNames := list }}
{{- range .Values.extraEnv }}{{ $extraNames = append $extraNames .name }}{{ end }}
{{- $env := list }}
{{- $env = append $env (dict "name" "PORT" "value" "8080") }}
{{- $env = append $env (dict "name" "LOG_LEVEL" "value" (.Values.logLevel | default "info")) }}
{{- $env = append $env (dict "name" "NATS_URL" "value" (.Values.nats.url | default "nats://nats:4222")) }}
{{- $env = append $env (dict "name" "NATS_ACCOUNT" "value" (required "nats.account is required: the NATS account the callout places users in" .Values.nats.account)) }}
{{- if include "nats-k8s-oidc-callout.natsUserCredsBlock" . }}
{{- $env = append $env (dict "name" "NATS_USER_CREDS_FILE" "value" "/etc/nats/user.creds") }}
{{- end }}
{{- if .Values.nats.token }}
{{- $env = append $env (dict "name" "NATS_TOKEN" "secretName" (printf "%s-nats-token" $fullname) "secretKey" "token") }}
{{- end }}
{{- $env = append $env (dict "name" "NATS_SIGNING_KEY_FILE" "value" "/etc/nats/signing.key") }}
{{- $env = append $env (dict "name" "K8S_IN_CLUSTER" "value" "true") }}
{{- with .Values.jwt.issuer }}{{ $env = append $env (dict "name" "JWT_ISSUER" "value" .) }}{{ end }}
{{- with .Values.jwt.audience }}{{ $env = append $env (dict "name" "JWT_AUDIENCE" "value" .) }}{{ end }}
{{- with .Values.jwt.jwksUrl }}{{ $env = append $env (dict "name" "JWKS_URL" "value" .) }}{{ end }}
{{- if include "nats-k8s-oidc-callout.natsXkeyEnabled" . }}
{{- $env = append $env (dict "name" "NATS_XKEY_SEED_FILE" "value" "/etc/nats/xkey.seed") }}
{{- end }}
{{- if .Values.nats.tls.ca.existingSecret }}
{{- $env = append $env (dict "name" "NATS_TLS_CA_FILE" "value" "/etc/nats/tls/ca/ca.crt") }}
{{- end }}
{{- if .Values.nats.tls.client.existingSecret }}
{{- $env = append $env (dict "name" "NATS_TLS_CERT_FILE" "value" "/etc/nats/tls/client/tls.crt") }}
{{- $env = append $env (dict "name" "NATS_TLS_KEY_FILE" "value" "/etc/nats/tls/client/tls.key") }}
{{- end }}
{{- with .Values.config.watchNamespace }}{{ $env = append $env (dict "name" "K8S_NAMESPACE" "value" .) }}{{ end }}
{{- if eq (toString .Values.config.watchPods) "false" }}{{ $env = append $env (dict "name" "K8S_WATCH_PODS" "value" "false") }}{{ end }}
{{- with .Values.config.annotationPrefix }}{{ $env = append $env (dict "name" "SA_ANNOTATION_PREFIX" "value" .) }}{{ end }}
{{- with .Values.config.cacheCleanupInterval }}{{ $env = append $env (dict "name" "CACHE_CLEANUP_INTERVAL" "value" .) }}{{ end }}
{{- with .Values.config.userJwtTtl }}{{ $env = append $env (dict "name" "NATS_USER_JWT_TTL" "value" .) }}{{ end }}
{{- with .Values.config.queueGroup }}{{ $env = append $env (dict "name" "NATS_QUEUE_GROUP" "value" .) }}{{ end }}
{{- $seen := list }}
{{- range $env }}
{{- $seen = append $seen .name }}
{{- if has .name $extraNames }}
{{- else if hasKey $secretEnv .name }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}-env
      key: {{ .name }}
{{- else if .secretName }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
{{- else }}
- name: {{ .name }}
  value: {{ .value | toString | quote }}
{{- end }}
{{- end }}
{{- range $name := keys $secretEnv | sortAlpha }}
{{- if not (or (has $name $seen) (has $name $extraNames)) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}-env
      key: {{ $name }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Label matchers that select this release's pods in PromQL. */}}
{{- define "nats-k8s-oidc-callout.metricSelector" -}}
{{- if .Values.prometheusRule.metricSelector }}
{{- .Values.prometheusRule.metricSelector }}
{{- else }}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-.*" (include "nats-k8s-oidc-callout.fullname" .)) }}
{{- end }}
{{- end }}
