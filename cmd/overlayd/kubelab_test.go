package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/kubetest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/testbin"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// The Kubernetes labs' common parts: overlayd and the plugin on the
// simulated nodes of internal/kubetest, pods, pings, the overlay's kernel
// entries on a node.

// kubeBins are overlayd and the CNI plugin, built as make image builds them
// (the image's overlayd without the etcd client, the plugin without the
// Kubernetes client).
var kubeBins = &testbin.Set{Pkgs: map[string]string{"overlayd": ".", "overlaynet": "../overlaynet"},
	Tags: map[string]string{"overlayd": "noetcd", "overlaynet": "nokube"}}

// The DaemonSet's settings, which the labs running overlayd directly use
// too (deploy/kubernetes/overlaynet.yaml).
const (
	kubeManifest = "../../deploy/kubernetes/overlaynet.yaml"
	kubeGateway  = "10.244.0.1/16" // the ConfigMap's: kubetest.ClusterCIDR's first address
	kubeStateDir = "/var/lib/cni/overlaynet"
	kubeNetNSDir = "/run/netns"
	kubeMetrics  = "127.0.0.1:9477"
)

// manifestDocs returns the documents of the manifest whose kind is in kinds
// (all without kinds).
func manifestDocs(t testing.TB, kinds ...string) string {
	t.Helper()
	b, err := os.ReadFile(kubeManifest)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		for _, l := range strings.Split(doc, "\n") {
			if k, ok := strings.CutPrefix(l, "kind: "); ok && (len(kinds) == 0 || slices.Contains(kinds, strings.TrimSpace(k))) {
				keep = append(keep, doc)
				break
			}
		}
	}
	return strings.Join(keep, "\n---\n")
}

// daemonKubeconfig applies the manifest's Namespace, ServiceAccount and
// ClusterRole with its binding, and returns a kubeconfig holding a token of
// the ServiceAccount: the daemon's own credentials, not an administrator's.
func daemonKubeconfig(t testing.TB, c *kubetest.Cluster) string {
	t.Helper()
	c.Apply(t, manifestDocs(t, "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"))
	return c.KubeconfigFor(t, c.ServiceAccountToken(t, "overlaynet", "overlaynet"))
}

// kubeDaemon is overlayd run on a node as the DaemonSet's container runs
// it, with the arguments it was started with; t is the test it lives for
// (started again in a subtest, it still lives until that test's end).
type kubeDaemon struct {
	t    testing.TB
	n    *kubetest.Node
	args []string
	p    *kubetest.Process
}

// startKubeDaemon runs `overlayd run --create` on n with the DaemonSet's
// flags, the store kube:kubeconfig, and more flags.
func startKubeDaemon(t testing.TB, n *kubetest.Node, kubeconfig string, more ...string) *kubeDaemon {
	t.Helper()
	args := append([]string{filepath.Join(kubeBins.Dir(t), "overlayd"), "run", "--create",
		"--store=kube:" + kubeconfig, "--node-name=" + n.Name, "--local=" + n.IP.String(),
		"--gateway=" + kubeGateway, "--state-dir=" + kubeStateDir, "--netns-dir=" + kubeNetNSDir,
		"--metrics=" + kubeMetrics}, more...)
	d := &kubeDaemon{t: t, n: n, args: args}
	d.p = n.Start(t, "overlayd", args...)
	return d
}

// restart starts the daemon again with the same arguments (after it was
// stopped or killed), for the rest of the test it was started for.
func (d *kubeDaemon) restart() {
	d.p = d.n.Start(d.t, "overlayd", d.args...)
}

// nodeHTTP returns a client whose connections start in n's network
// namespace.
func nodeHTTP(n *kubetest.Node) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nstest.DialContext(ctx, n.NetNSPath, network, addr)
		}}}
}

// probe GETs http://kubeMetrics/path on n and returns the status and body.
func probe(n *kubetest.Node, path string) (int, string, error) {
	resp, err := nodeHTTP(n).Get("http://" + kubeMetrics + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// waitReady waits until the daemon on n answers /readyz with 200.
func waitReady(t testing.TB, n *kubetest.Node, timeout time.Duration) {
	t.Helper()
	kubetest.Poll(t, timeout, "overlayd ready on "+n.Name, func() error {
		code, body, err := probe(n, "/readyz")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
}

// installCNI installs the plugin and its conflist on n as the DaemonSet's
// init container does.
func installCNI(t testing.TB, n *kubetest.Node) {
	t.Helper()
	dir := kubeBins.Dir(t)
	n.Run(t, filepath.Join(dir, "overlayd"), "install-cni", "--plugin="+filepath.Join(dir, "overlaynet"),
		"--store=kube:", "--state-dir="+kubeStateDir, "--netns-dir="+kubeNetNSDir)
}

// podInfo is a pod as the tests read it.
type podInfo struct {
	Name, Node string
	IP         netip.Addr
	Restarts   int  // its first container's
	Ready      bool // its first container's
}

// pods returns the pods of namespace ns matching the label selector.
func pods(t testing.TB, c *kubetest.Cluster, ns, selector string) []podInfo {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP      string `json:"podIP"`
				Containers []struct {
					Ready        bool `json:"ready"`
					RestartCount int  `json:"restartCount"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	c.Get(t, "/api/v1/namespaces/"+ns+"/pods?labelSelector="+selector, &list)
	var out []podInfo
	for _, p := range list.Items {
		ip, _ := netip.ParseAddr(p.Status.PodIP)
		pi := podInfo{Name: p.Metadata.Name, Node: p.Spec.NodeName, IP: ip}
		if len(p.Status.Containers) > 0 {
			pi.Restarts, pi.Ready = p.Status.Containers[0].RestartCount, p.Status.Containers[0].Ready
		}
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b podInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// pinnedPod is a busybox pod on node, labelled app=label.
func pinnedPod(name, node, label string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default, labels: {app: %s}}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: %s
    imagePullPolicy: Never
    command: [sleep, infinity]
`, name, label, node, kubetest.BusyboxImage)
}

// pingEveryPair makes every pod of ps ping every other one once, each
// answered on the first try.
func pingEveryPair(t testing.TB, c *kubetest.Cluster, ps []podInfo) {
	t.Helper()
	var ips []netip.Addr
	for _, p := range ps {
		ips = append(ips, p.IP)
	}
	if failed := pingAll(t, c, ps, ips); failed != nil {
		t.Fatalf("pings not answered on the first try:\n%s", strings.Join(failed, "\n"))
	}
}

// pingAll makes every pod ping every target once (one echo request, which
// must be answered: the first try), all at once, and returns the failures.
func pingAll(t testing.TB, c *kubetest.Cluster, from []podInfo, to []netip.Addr) []string {
	t.Helper()
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, p := range from {
		var script strings.Builder
		for _, ip := range to {
			if ip != p.IP {
				fmt.Fprintf(&script, "(ping -c 1 -W 5 %s >/dev/null 2>&1 && echo ok %s || echo FAIL %s) & ", ip, ip, ip)
			}
		}
		script.WriteString("wait")
		wg.Go(func() {
			out, err := c.KubectlWith(c.AdminKubeconfig, "exec", p.Name, "--", "sh", "-c", script.String())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", p.Name, err))
				return
			}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(l, "FAIL") {
					failed = append(failed, fmt.Sprintf("%s (%s on %s) -> %s", p.Name, p.IP, p.Node, strings.TrimPrefix(l, "FAIL ")))
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(failed)
	return failed
}

// overlayNeigh is a neighbour entry of the overlay's vxlan on a node.
type overlayNeigh struct {
	Dst    string `json:"dst"`
	LLAddr string `json:"lladdr"`
}

// overlayFDB is an FDB entry of the overlay's vxlan on a node.
type overlayFDB struct {
	MAC   string   `json:"mac"`
	Dst   string   `json:"dst"`
	Flags []string `json:"flags"`
}

// overlayEntries returns the neighbour and (self) FDB entries of the vxlan
// in n's overlay namespace.
func overlayEntries(t testing.TB, n *kubetest.Node) ([]overlayNeigh, []overlayFDB) {
	t.Helper()
	var neigh []overlayNeigh
	var fdb, self []overlayFDB
	if err := json.Unmarshal([]byte(n.Run(t, "ip", "-n", "overns", "-j", "neigh", "show", "dev", "vxlan1")), &neigh); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(n.Run(t, "bridge", "-n", "overns", "-j", "fdb", "show", "dev", "vxlan1")), &fdb); err != nil {
		t.Fatal(err)
	}
	for _, f := range fdb {
		if slices.Contains(f.Flags, "self") && f.Dst != "" {
			self = append(self, f)
		}
	}
	return neigh, self
}

// entriesIn returns n's vxlan entries for addresses of prefix: neighbours by
// IP, and FDB entries of MACs derived from those addresses by MAC, with
// where they point.
func entriesIn(t testing.TB, n *kubetest.Node, prefix netip.Prefix) (neigh map[string]string, fdb map[string]string) {
	t.Helper()
	ns, fs := overlayEntries(t, n)
	neigh, fdb = map[string]string{}, map[string]string{}
	for _, e := range ns {
		if ip, err := netip.ParseAddr(e.Dst); err == nil && prefix.Contains(ip) {
			neigh[e.Dst] = e.LLAddr
		}
	}
	for _, f := range fs {
		mac, err := ethaddr.Parse(f.MAC)
		if err != nil {
			continue
		}
		if ip, ok := registry.DerivedIP(mac); ok && prefix.Contains(ip) {
			fdb[f.MAC] = f.Dst
		}
	}
	return neigh, fdb
}

// podCIDR returns n's podCIDR.
func podCIDR(t testing.TB, n *kubetest.Node) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(n.PodCIDR(t))
	if err != nil {
		t.Fatalf("%s: podCIDR: %v", n.Name, err)
	}
	return p
}
