// Command client is a NATS client that logs in with its Kubernetes ServiceAccount token, the way
// every client of nats-k8s-oidc-callout should (docs/client-usage.md):
//
//  1. Read the token file on every connect and reconnect, never once at start: the kubelet
//     rewrites the projected token before it expires, and the server closes a connection when its
//     user JWT runs out; the reconnect must present the new token.
//  2. Never give up reconnecting, also not after authorization errors (a rotated token or a
//     ServiceAccount being recreated heals by itself).
//  3. Use the private inbox prefix _INBOX_<namespace>_<serviceaccount with . → _> for request/reply,
//     so replies to you cannot be read by other ServiceAccounts.
//
// It answers requests on <namespace>.echo and sends itself one request a second through the
// private inbox, printing each reply, until SIGTERM or SIGINT:
//
//	NATS_URL=nats://127.0.0.1:4222 NATS_TOKEN_FILE=/path/to/token go run .
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// tokenOwner reads namespace and ServiceAccount from a token's kubernetes.io claim. Unverified: the
// service verifies; the client only needs the names for its inbox prefix.
func tokenOwner(token string) (namespace, serviceAccount string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("token payload: %w", err)
	}
	var claims struct {
		K8s struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", "", fmt.Errorf("token claims: %w", err)
	}
	if claims.K8s.Namespace == "" || claims.K8s.ServiceAccount.Name == "" {
		return "", "", fmt.Errorf("token has no kubernetes.io namespace/serviceaccount claims")
	}
	return claims.K8s.Namespace, claims.K8s.ServiceAccount.Name, nil
}

// inboxPrefix is the private inbox prefix the service grants to a ServiceAccount. Dots become
// underscores, so SA foo's prefix is not a prefix of SA foo.bar's.
func inboxPrefix(namespace, serviceAccount string) string {
	return "_INBOX_" + namespace + "_" + strings.ReplaceAll(serviceAccount, ".", "_")
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	url := getenv("NATS_URL", "nats://127.0.0.1:4222")
	tokenFile := getenv("NATS_TOKEN_FILE", "/var/run/secrets/nats/token")

	// docs:start connect
	readToken := func() string { // called on every connect and reconnect
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			log.Printf("reading NATS token: %v", err)
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	namespace, serviceAccount, err := tokenOwner(readToken())
	if err != nil {
		log.Fatal(err)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(url,
		nats.TokenHandler(readToken),
		nats.MaxReconnects(-1),          // never give up,
		nats.IgnoreAuthErrorAbort(),     // ... also not after two authorization errors,
		nats.RetryOnFailedConnect(true), // ... nor when the first connect is refused
		nats.CustomInboxPrefix(inboxPrefix(namespace, serviceAccount)),
		nats.Name(namespace+"/"+serviceAccount),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Printf("disconnected: %v", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { log.Print("reconnected") }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	// docs:end connect
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("starting as %s/%s, inbox prefix %s\n", namespace, serviceAccount,
		inboxPrefix(namespace, serviceAccount))

	subject := namespace + ".echo"
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		_ = m.Respond(append([]byte("echo: "), m.Data...))
	}); err != nil {
		log.Fatal(err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 1; ctx.Err() == nil; n++ {
		if reply, err := nc.Request(subject, []byte(fmt.Sprintf("ping %d", n)), 2*time.Second); err != nil {
			log.Printf("request failed: %v", err)
		} else {
			fmt.Printf("reply: %s\n", reply.Data)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
	<-closed
	fmt.Println("stopped")
}
