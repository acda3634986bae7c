module nats-k8s-oidc-callout/tools/netns-relay

go 1.26.0

require golang.org/x/sys v0.47.0
