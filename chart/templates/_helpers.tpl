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
{{- with .Values.nats.system }}
{{- if .existingSecret }}
{{- $env = append $env (dict "name" "NATS_SYSTEM_CREDS_FILE" "value" "/etc/nats/system.creds") }}
{{- else if .token }}
{{- $env = append $env (dict "name" "NATS_SYSTEM_TOKEN" "secretName" (printf "%s-nats-system" $fullname) "secretKey" "token") }}
{{- else if .user }}
{{- $env = append $env (dict "name" "NATS_SYSTEM_USER" "value" .user) }}
{{- $env = append $env (dict "name" "NATS_SYSTEM_PASSWORD" "secretName" (printf "%s-nats-system" $fullname) "secretKey" "password") }}
{{- end }}
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

{{/*
Seconds in a Go duration ("90s", "1h30m", "500ms"), as a float; the schema has checked the format.
*/}}
{{- define "nats-k8s-oidc-callout.durationSeconds" -}}
{{- $units := dict "ns" "0.000000001" "us" "0.000001" "µs" "0.000001" "ms" "0.001" "s" "1" "m" "60" "h" "3600" }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" }}
{{- $total = addf $total (mulf $number (get $units $unit | float64)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The NATS_URL the container ends up with: an `extraEnv` literal, else `secretEnv.NATS_URL`, else
`nats.url`, else the default. Prints "<values key>|<url>".
*/}}
{{- define "nats-k8s-oidc-callout.effectiveNatsUrl" -}}
{{- $found := "" }}
{{- range .Values.extraEnv }}
{{- if and (eq (toString .name) "NATS_URL") (hasKey . "value") }}{{ $found = printf "extraEnv NATS_URL|%s" (toString .value) }}{{ end }}
{{- end }}
{{- if $found }}
{{- $found }}
{{- else if hasKey (.Values.secretEnv | default dict) "NATS_URL" }}
{{- printf "secretEnv.NATS_URL|%s" (toString .Values.secretEnv.NATS_URL) }}
{{- else }}
{{- printf "nats.url|%s" (.Values.nats.url | default "nats://nats:4222") }}
{{- end }}
{{- end }}

{{/*
Install-time checks: every required value, and every setting the service would refuse at start
(lib/config/config.ts), refused here with one message that names each problem, the value to set and how to
make what it needs. values.schema.json keeps the type and format checks whose messages read well;
these are the ones whose schema messages do not ("'allOf' failed … minLength").
A problem never quotes a URL, token or seed: they may hold secrets.
*/}}
{{- define "nats-k8s-oidc-callout.validate" -}}
{{- $p := list }}
{{- $nats := .Values.nats }}
{{- /* NATS_ACCOUNT */}}
{{- if not $nats.account }}
{{- $p = append $p "nats.account is required: the NATS account logins are placed in, by name in config mode (--set nats.account=APP) or by public key in operator mode (--set nats.account=$(nsc describe account APP --field sub | tr -d '\"'))" }}
{{- else if regexMatch "\\s" (toString $nats.account) }}
{{- $p = append $p "nats.account contains whitespace: give one account name or A… public key" }}
{{- end }}
{{- /* NATS_SIGNING_KEY_FILE */}}
{{- $sk := $nats.signingKey | default dict }}
{{- $makeSk := "make the seed with `nk -gen account > signing.key` (config mode: `nk -inkey signing.key -pubout` is auth_callout.issuer; nk is `go install github.com/nats-io/nkeys/nk@latest`) or use a signing key of the target account from nsc (operator mode: `nsc edit account APP --sk generate`, seed under ~/.local/share/nats/nsc/keys)" }}
{{- if $sk.create }}
{{- if not $sk.content }}
{{- $p = append $p (printf "nats.signingKey.create=true needs the seed in nats.signingKey.content: --set-file nats.signingKey.content=signing.key; %s" $makeSk) }}
{{- else if not (regexMatch "SA[A-Z2-7]{56}" (toString $sk.content)) }}
{{- $p = append $p (printf "nats.signingKey.content holds no account seed (SA…, plain or in a creds file); %s" $makeSk) }}
{{- end }}
{{- else if not $sk.existingSecret }}
{{- $p = append $p (printf "nats.signingKey is required: the account seed (SA…) that signs user JWTs; %s, then either `kubectl create secret generic nats-callout-keys --from-file=signing.key` and --set nats.signingKey.existingSecret=nats-callout-keys, or --set nats.signingKey.create=true --set-file nats.signingKey.content=signing.key" $makeSk) }}
{{- end }}
{{- /* NATS_XKEY_SEED_FILE */}}
{{- $xk := $nats.xkey | default dict }}
{{- if $xk.create }}
{{- if not $xk.content }}
{{- $p = append $p "nats.xkey.create=true needs the curve seed in nats.xkey.content: make it with `nk -gen curve > xkey.seed` (`nk -inkey xkey.seed -pubout` is auth_callout.xkey), then --set-file nats.xkey.content=xkey.seed" }}
{{- else if not (regexMatch "SX[A-Z2-7]{56}" (toString $xk.content)) }}
{{- $p = append $p "nats.xkey.content holds no curve seed (SX…): make one with `nk -gen curve > xkey.seed`" }}
{{- end }}
{{- end }}
{{- /* NATS_USER_CREDS_FILE (either block) and NATS_TOKEN */}}
{{- $credsBlock := "" }}
{{- range $block := list "userCredentials" "credentials" }}
{{- $c := index $nats $block | default dict }}
{{- if and $c.create (not $c.content) }}
{{- $p = append $p (printf "nats.%s.create=true needs the creds file in nats.%s.content: --set-file nats.%s.content=user.creds (e.g. from `nsc generate creds --account AUTH --name callout`), or use nats.%s.existingSecret" $block $block $block $block) }}
{{- end }}
{{- if or $c.create $c.existingSecret }}{{ $credsBlock = $block }}{{ end }}
{{- end }}
{{- $secretEnv := .Values.secretEnv | default dict }}
{{- $hasToken := or $nats.token (hasKey $secretEnv "NATS_TOKEN") }}
{{- $hasCreds := or $credsBlock (hasKey $secretEnv "NATS_USER_CREDS_FILE") (hasKey $secretEnv "NATS_CREDS_FILE") }}
{{- if and $hasToken $hasCreds }}
{{- $p = append $p (printf "nats.token and nats.%s are both set: the service's NATS user has a creds file or a token, not both (the service refuses NATS_TOKEN with NATS_USER_CREDS_FILE); keep one" ($credsBlock | default "userCredentials")) }}
{{- end }}
{{- /* NATS_URL: every comma-separated entry nats:// or tls:// with a host */}}
{{- $url := include "nats-k8s-oidc-callout.effectiveNatsUrl" . }}
{{- $source := regexReplaceAll "\\|.*$" $url "" }}
{{- $i := 0 }}
{{- range $entry := splitList "," (regexReplaceAll "^[^|]*\\|" $url "") }}
{{- $i = add1 $i }}
{{- $e := trim $entry }}
{{- if eq $e "" }}
{{- $p = append $p (printf "%s: entry %d is empty (a stray comma?)" $source $i) }}
{{- else if regexMatch "\\s" $e }}
{{- $p = append $p (printf "%s: entry %d contains whitespace" $source $i) }}
{{- else if and (contains "://" $e) (not (regexMatch "^(nats|tls)://" $e)) }}
{{- $p = append $p (printf "%s: entry %d has the scheme %q; the service connects with nats:// or tls:// only" $source $i (regexReplaceAll "://.*$" $e "")) }}
{{- else if regexMatch "^([:/].*)?$" (regexReplaceAll "^((nats|tls)://)?([^@/]*@)?" $e "") }}
{{- $p = append $p (printf "%s: entry %d has no host (expected nats://host:port or tls://host:port)" $source $i) }}
{{- end }}
{{- end }}
{{- /* The deploy guide's TLS keys: files the chart cannot provide, so name the Secret keys instead */}}
{{- $tls := $nats.tls | default dict }}
{{- if hasKey $tls "enabled" }}
{{- $p = append $p "nats.tls.enabled is not a key of this chart: TLS is on when nats.url uses tls:// or the server requires it; give the CA with nats.tls.ca.existingSecret (key nats.tls.ca.key, default ca.crt)" }}
{{- end }}
{{- if hasKey $tls "caFile" }}
{{- $p = append $p "nats.tls.caFile is not a key of this chart: put the CA bundle in a Secret (kubectl create secret generic nats-ca --from-file=ca.crt) and set nats.tls.ca.existingSecret=nats-ca (key nats.tls.ca.key, default ca.crt)" }}
{{- end }}
{{- if or (hasKey $tls "certFile") (hasKey $tls "keyFile") }}
{{- $p = append $p "nats.tls.certFile/keyFile are not keys of this chart: put the client certificate in a Secret (kubectl create secret tls nats-client --cert=tls.crt --key=tls.key) and set nats.tls.client.existingSecret=nats-client (keys nats.tls.client.certKey/keyKey, default tls.crt/tls.key)" }}
{{- end }}
{{- /* JWT_ISSUER: a comma-separated list of issuers the apiserver would accept */}}
{{- $issuers := list }}
{{- with .Values.jwt.issuer }}
{{- range $i, $entry := splitList "," (toString .) }}
{{- $e := trim $entry }}
{{- if eq $e "" }}
{{- $p = append $p (printf "jwt.issuer: entry %d is empty (a comma too many?)" (add1 $i)) }}
{{- else if regexMatch "\\s" $e }}
{{- $p = append $p (printf "jwt.issuer %q contains whitespace" $e) }}
{{- else if and (contains ":" $e) (not (regexMatch "^https?://[^/?#@\\s]+(/[^?#\\s]*)?$" $e)) }}
{{- $p = append $p (printf "jwt.issuer: entry %d is not an http(s) URL without credentials, query or fragment (an issuer with a ':' must be one)" (add1 $i)) }}
{{- else if has $e $issuers }}
{{- $p = append $p (printf "jwt.issuer %q is listed twice" $e) }}
{{- else }}
{{- $issuers = append $issuers $e }}
{{- end }}
{{- end }}
{{- end }}
{{- /* JWT_AUDIENCE: one audience, never one the apiserver accepts for its own API */}}
{{- with .Values.jwt.audience }}
{{- $a := toString . }}
{{- $allowApi := false }}
{{- range $.Values.extraEnv }}{{ if and (eq (toString .name) "JWT_AUDIENCE_ALLOW_API_AUDIENCE") (has (toString .value) (list "1" "t" "T" "TRUE" "true" "True")) }}{{ $allowApi = true }}{{ end }}{{ end }}
{{- if regexMatch "[\\s,]" $a }}
{{- $p = append $p (printf "jwt.audience %q must be one audience, without whitespace or commas" $a) }}
{{- else if and (not $allowApi) (or (has $a (list "https://kubernetes.default.svc" "https://kubernetes.default.svc.cluster.local" "kubernetes.default.svc" "kubernetes")) (has $a $issuers)) }}
{{- $p = append $p (printf "jwt.audience %q is an audience the Kubernetes apiserver accepts for its own API: every pod's default token would log in to NATS; use a dedicated one such as nats (or accept the risk with extraEnv JWT_AUDIENCE_ALLOW_API_AUDIENCE=true)" $a) }}
{{- end }}
{{- end }}
{{- /* LOG_LEVEL, as the service reads it (case-insensitive, zap's names too) */}}
{{- $levels := list "debug" "info" "warn" "warning" "error" "dpanic" "panic" "fatal" }}
{{- if and .Values.logLevel (not (has (lower (toString .Values.logLevel)) $levels)) }}
{{- $p = append $p (printf "logLevel %q is not one of debug, info, warn (warning), error (any case)" (toString .Values.logLevel)) }}
{{- end }}
{{- /* Durations with the service's bounds */}}
{{- with .Values.config.userJwtTtl }}
{{- $s := include "nats-k8s-oidc-callout.durationSeconds" . | float64 }}
{{- if or (lt $s 10.0) (gt $s 86400.0) }}
{{- $p = append $p (printf "config.userJwtTtl %q is outside 10s..24h (NATS_USER_JWT_TTL)" (toString .)) }}
{{- end }}
{{- end }}
{{- with .Values.config.cacheCleanupInterval }}
{{- $s := include "nats-k8s-oidc-callout.durationSeconds" . | float64 }}
{{- if lt $s 10.0 }}
{{- $p = append $p (printf "config.cacheCleanupInterval %q is below the minimum of 10s (CACHE_CLEANUP_INTERVAL)" (toString .)) }}
{{- end }}
{{- end }}
{{- if $p }}
{{- fail (printf "\n%d problem(s) with the values:\n  - %s" (len $p) (join "\n  - " $p)) }}
{{- end }}
{{- end }}

{{/*
sha256 over the data of the existing Secrets the pod mounts (signing key, xkey, user creds, TLS),
read with `lookup` at install/upgrade; a constant under `helm template`, where lookup finds nothing.
Only a hash of the contents reaches the pod template, never the contents.
*/}}
{{- define "nats-k8s-oidc-callout.existingSecretsChecksum" -}}
{{- $names := list }}
{{- $nats := .Values.nats }}
{{- if not $nats.signingKey.create }}{{ $names = append $names $nats.signingKey.existingSecret }}{{ end }}
{{- if not $nats.xkey.create }}{{ $names = append $names $nats.xkey.existingSecret }}{{ end }}
{{- $block := include "nats-k8s-oidc-callout.natsUserCredsBlock" . }}
{{- if $block }}{{ $c := index $nats $block }}{{ if not $c.create }}{{ $names = append $names $c.existingSecret }}{{ end }}{{ end }}
{{- $names = append $names $nats.tls.ca.existingSecret }}
{{- $names = append $names $nats.tls.client.existingSecret }}
{{- $data := dict }}
{{- range $name := $names | compact | uniq | sortAlpha }}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace $name | default dict }}
{{- $_ := set $data $name ($secret.data | default dict) }}
{{- end }}
{{- $data | toJson | sha256sum }}
{{- end }}

{{/*
Labels of the `helm test` objects: not the selector labels, or the Deployment's ReplicaSet would
adopt the test Pod (and the Service, PDB and NetworkPolicy would count it as a replica).
*/}}
{{- define "nats-k8s-oidc-callout.testLabels" -}}
helm.sh/chart: {{ include "nats-k8s-oidc-callout.chart" . }}
app.kubernetes.io/name: {{ printf "%s-test" (include "nats-k8s-oidc-callout.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
