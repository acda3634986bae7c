// Command kubernetes is Kubernetes v1.37.2 from its Go module (k8s.io/kubernetes, staging modules
// pinned by replace) as one multi-call binary, for the project's test suite only:
//
//	kubernetes [etcd flags] -- <kube-apiserver flags>   the apiserver with an embedded etcd v3.7.0
//	kubernetes kubectl ...                              the stock kubectl
//	kubernetes kubelet | kube-controller-manager | kube-scheduler | kube-proxy ...
//
// The apiserver form starts etcd on loopback (flags --embedded-etcd-dir, --embedded-etcd-port,
// --embedded-etcd-peer-port), then runs the stock kube-apiserver command with the arguments after
// "--". The other components make a real single-node cluster with running pods
// (tests/support/cluster/). Nothing here changes Kubernetes behaviour: the point is to test against
// the real thing.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"
	_ "time/tzdata" // for CronJob Time Zone support (kube-controller-manager)

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	// Multi-call: argv[1] picks a stock component; anything else is the apiserver (+ embedded etcd).
	if len(os.Args) > 1 {
		var cmd func() int
		switch os.Args[1] {
		case "kubelet":
			cmd = func() int { return cli.Run(kubelet.NewKubeletCommand(context.Background())) }
		case "kube-controller-manager":
			cmd = func() int { return cli.Run(kcm.NewControllerManagerCommand()) }
		case "kube-scheduler":
			cmd = func() int { return cli.Run(scheduler.NewSchedulerCommand()) }
		case "kube-proxy":
			cmd = func() int { return cli.Run(proxy.NewProxyCommand()) }
		}
		if cmd != nil {
			os.Args = append([]string{os.Args[1]}, os.Args[2:]...)
			os.Exit(cmd())
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "kubectl" {
		os.Args = append([]string{"kubectl"}, os.Args[2:]...)
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	fs := flag.NewFlagSet("embedded-etcd", flag.ContinueOnError)
	dir := fs.String("embedded-etcd-dir", "", "data directory of the embedded etcd (required)")
	port := fs.Int("embedded-etcd-port", 0, "loopback client port of the embedded etcd (required)")
	peerPort := fs.Int("embedded-etcd-peer-port", 0, "loopback peer port of the embedded etcd (required)")
	// Our flags come first, then "--", then kube-apiserver's own flags.
	args := os.Args[1:]
	split := len(args)
	for i, a := range args {
		if a == "--" {
			split = i
			break
		}
	}
	if err := fs.Parse(args[:split]); err != nil || *dir == "" || *port == 0 || *peerPort == 0 {
		fmt.Fprintln(os.Stderr, "usage: kube-apiserver --embedded-etcd-dir DIR --embedded-etcd-port N --embedded-etcd-peer-port N -- <kube-apiserver flags>")
		os.Exit(2)
	}
	rest := []string{}
	if split < len(args) {
		rest = args[split+1:]
	}

	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.LogLevel = "error"
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *port))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *peerPort))
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded etcd:", err)
		os.Exit(1)
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "embedded etcd: not ready after 30s")
		os.Exit(1)
	}

	os.Args = append([]string{os.Args[0]}, rest...)
	code := cli.Run(app.NewAPIServerCommand())
	etcd.Close()
	os.Exit(code)
}
