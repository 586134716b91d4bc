// gocni-driver runs a CNI network configuration list through containerd's go-cni library, the
// way containerd wires a pod sandbox: one Setup (ADD), Check or Remove (DEL) per run. The
// tern-cni e2e test builds it with Debian's Go and go-cni packages (GOPATH mode).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	cni "github.com/containerd/go-cni"
)

func main() {
	op := flag.String("op", "", "add, check or del")
	conflist := flag.String("conflist", "", "path of the .conflist file")
	binDirs := flag.String("bin-dirs", "", "plugin directories, colon-separated")
	netns := flag.String("netns", "", "path of the pod's network namespace")
	id := flag.String("id", "", "container (sandbox) id")
	podName := flag.String("pod-name", "", "K8S_POD_NAME")
	podNamespace := flag.String("pod-namespace", "", "K8S_POD_NAMESPACE")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline for the whole operation")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := cni.New(cni.WithPluginDir(strings.Split(*binDirs, ":")), cni.WithInterfacePrefix("eth"))
	if err != nil {
		fail(err)
	}
	if err := l.Load(cni.WithConfListFile(*conflist)); err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	opts := []cni.NamespaceOpts{
		cni.WithArgs("IgnoreUnknown", "1"),
		cni.WithArgs("K8S_POD_NAMESPACE", *podNamespace),
		cni.WithArgs("K8S_POD_NAME", *podName),
		cni.WithArgs("K8S_POD_INFRA_CONTAINER_ID", *id),
	}
	switch *op {
	case "add":
		result, err := l.Setup(ctx, *id, *netns, opts...)
		if err != nil {
			fail(err)
		}
		// The pod's addresses, for the test to send traffic to.
		ips := []string{}
		for name, c := range result.Interfaces {
			if !strings.HasPrefix(name, "eth") {
				continue
			}
			for _, ip := range c.IPConfigs {
				ips = append(ips, ip.IP.String())
			}
		}
		out, _ := json.Marshal(map[string][]string{"ips": ips})
		fmt.Println(string(out))
	case "check":
		if err := l.Check(ctx, *id, *netns, opts...); err != nil {
			fail(err)
		}
	case "del":
		if err := l.Remove(ctx, *id, *netns, opts...); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("-op must be add, check or del, not %q", *op))
	}
}
