// Package kubetest runs a real Kubernetes cluster for tests, on simulated
// nodes: Debian's etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler (built by scripts/kube-build.sh) in a network namespace of
// the test's own that is also the underlay switch, and per node a network
// namespace and a mount namespace of its own on that switch, with its own
// containerd (CRI) and kubelet, and kube-proxy (nftables) if asked for.
// Every component runs with the flags a cluster operator gives it: TLS
// from the cluster's CA, RBAC and the Node authorizer, service-account
// tokens, podCIDRs allocated by the controller manager. Nothing is pulled:
// the pod sandbox image and a busybox image are written by
// internal/ociarchive and imported on every node. Everything the cluster
// starts, mounts and creates is stopped and removed when the test ends,
// also on failure; the components' logs are printed when it failed.
//
// The cluster lives on the underlay 192.0.2.0/24: the API server at
// 192.0.2.1:6443, node i (from 0) at 192.0.2.(10+i) named "node<i+1>"; pods
// in 10.244.0.0/16 (a /24 per node), Services in 10.96.0.0/16. Clients run
// inside the test's namespaces: kubectl in the control plane's (Kubectl),
// HTTP through DialContext.
package kubetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Version is the Kubernetes release the lab runs (scripts/kube-build.sh
// builds it; the k8s.io modules in go.mod are at the same release).
const Version = "v1.37.2"

// The cluster's fixed addresses.
const (
	// APIServerIP is the API server's address on the underlay.
	APIServerIP = "192.0.2.1"
	// ClusterCIDR is the pod network the controller manager cuts
	// podCIDRs from (--cluster-cidr).
	ClusterCIDR = "10.244.0.0/16"
	// NodeCIDRMaskSize is the prefix length of each node's podCIDR.
	NodeCIDRMaskSize = 24
	// ServiceCIDR is the Service ClusterIP range.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the ClusterIP of the "kubernetes" Service.
	KubernetesServiceIP = "10.96.0.1"
)

// Images imported on every node.
const (
	// PauseImage is containerd's pod sandbox image (busybox sleeping).
	PauseImage = "registry.k8s.io/pause:3.10"
	// BusyboxImage is busybox-static with all its applets; pods use it
	// with imagePullPolicy: Never.
	BusyboxImage = "docker.io/library/busybox:latest"
)

// Options say what cluster to start.
type Options struct {
	// Nodes is the number of simulated nodes (default 1).
	Nodes int
	// KubeProxy runs kube-proxy in nftables mode on every node.
	KubeProxy bool
	// BridgeCNI gives every node a pod network without overlaynet: the
	// standard bridge and host-local plugins, configured by containerd from
	// the node's podCIDR (its CRI conf_template), and routes between the
	// nodes' podCIDRs over the underlay. Without it nodes stay NotReady
	// ("cni plugin not initialized") until a network plugin installs a
	// conflist in their /etc/cni/net.d.
	BridgeCNI bool
	// NoPodCIDRs runs the controller manager without podCIDR allocation
	// (--allocate-node-cidrs=false): nodes register without one, as on a
	// cluster set up without it, and Start does not wait for them.
	NoPodCIDRs bool
	// APIServerArgs, ControllerManagerArgs and KubeletArgs are more flags
	// for those components (they come last and win).
	APIServerArgs, ControllerManagerArgs, KubeletArgs []string
}

// Cluster is a running cluster; Start returns it.
type Cluster struct {
	// Dir is the cluster's directory in the test's: configs, keys, logs.
	Dir string
	// Bin is the directory of the Kubernetes binaries.
	Bin string
	// NetNS is the name of the control plane's network namespace, which
	// holds the underlay switch (bridge "ul", 192.0.2.1/24), etcd on
	// 127.0.0.1:2379 and the API server.
	NetNS string
	// NetNSPath is its path.
	NetNSPath string
	// Server is the API server's URL.
	Server string
	// CAFile holds the cluster CA's certificate (PEM); CA is its content.
	CAFile string
	CA     []byte
	// AdminKubeconfig is a kubeconfig of a system:masters user (token).
	AdminKubeconfig string
	// AdminToken is that user's bearer token.
	AdminToken string
	// Nodes are the simulated nodes.
	Nodes []*Node

	opts       Options
	ca         *ca
	etcd       *etcdtest.Server
	apiserver  *proc
	kcm        *proc
	scheduler  *proc
	httpClient *http.Client
}

// Binaries are the components the lab runs from Bin.
func Binaries() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "crictl"}
}

// BinDir returns where scripts/kube-build.sh puts the binaries:
// $OVERLAYNET_KUBE_CACHE (default /var/cache/overlaynet/kube)/VERSION/bin.
func BinDir() string {
	cache := os.Getenv("OVERLAYNET_KUBE_CACHE")
	if cache == "" {
		cache = "/var/cache/overlaynet/kube"
	}
	return filepath.Join(cache, Version, "bin")
}

// Require skips t (fails it when CI=true) unless it runs as root with the
// Kubernetes binaries and the host tools the lab needs, and returns the
// binaries' directory.
func Require(t testing.TB) string {
	t.Helper()
	nstest.RequireRoot(t)
	etcdtest.Require(t)
	bin := BinDir()
	for _, b := range Binaries() {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			nstest.Unavailable(t, fmt.Sprintf("needs the Kubernetes %s components in %s (scripts/kube-build.sh builds them; scripts/setup.sh runs it): %s missing", Version, bin, b))
		}
	}
	nstest.RequireTools(t, "containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare", "mount", "nft")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		nstest.Unavailable(t, "needs /bin/busybox for the lab's images (busybox-static; scripts/setup.sh installs it)")
	}
	for _, p := range append(bridgePlugins(), "loopback") {
		if _, err := os.Stat(filepath.Join(StandardPlugins, p)); err != nil {
			nstest.Unavailable(t, "needs the standard CNI plugins in "+StandardPlugins+" (containernetworking-plugins; scripts/setup.sh installs it)")
		}
	}
	return bin
}

// Start starts a cluster and returns once the API server is ready and
// every node has registered and has its podCIDR. Without a network plugin
// (Options.BridgeCNI, or one the test installs) the nodes are NotReady;
// WaitNodesReady waits for Ready. Everything is stopped and removed when
// the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	bin := Require(t)
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Nodes > 200 {
		t.Fatalf("kubetest: %d nodes: the underlay has room for 200", o.Nodes)
	}
	began := time.Now()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, Bin: bin, opts: o, Server: "https://" + APIServerIP + ":6443"}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: the components' logs:\n%s", logTails(dir, 40))
			if c.etcd != nil {
				t.Log(c.etcd.LogTail())
			}
		}
	})
	_, c.NetNS = nstest.NetNS(t, "kc")
	c.NetNSPath = filepath.Join(rtnl.DefaultNetNSDir, c.NetNS)
	// A fixed MAC: a bridge otherwise takes its lowest port's, which
	// changes when a node goes.
	nstest.Run(t, c.NetNS, "ip", "link", "add", "ul", "address", "02:00:c0:00:02:01", "type", "bridge")
	nstest.Run(t, c.NetNS, "ip", "addr", "add", APIServerIP+"/24", "dev", "ul")
	nstest.Run(t, c.NetNS, "ip", "link", "set", "ul", "up")
	if err := c.writePKI(); err != nil {
		t.Fatal(err)
	}
	if err := writeImages(filepath.Join(dir, "images.tar")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bridge.conflist.tmpl"), []byte(bridgeTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	c.httpClient = c.newHTTPClient()

	// The nodes come up (containerd, images) while the control plane does.
	for i := range o.Nodes {
		c.Nodes = append(c.Nodes, c.newNode(t, i))
	}
	t.Cleanup(func() { c.tearDownNodes(t) })
	// Kubelets start once the API server is ready; if it never is (or
	// startControlPlane fails the test), the nodes stop there, and Start
	// returns only when no node is half-way.
	apiReady := make(chan struct{})
	var apiOK bool
	nodeErrs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodeErrs[i] = c.bringUp(n, apiReady, &apiOK)
		}()
	}
	func() {
		defer func() { close(apiReady); wg.Wait() }()
		if err := c.startControlPlane(t); err != nil {
			t.Fatal(err)
		}
		apiOK = true
	}()
	for _, err := range nodeErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitNodesRegistered(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Pods are refused until their namespace's default ServiceAccount
	// exists (the controller manager makes it).
	Poll(t, 30*time.Second, "kubetest: ServiceAccount default/default", func() error {
		var sa struct{}
		return c.getJSON("/api/v1/namespaces/default/serviceaccounts/default", &sa)
	})
	if o.BridgeCNI {
		c.routePodCIDRs(t)
	}
	t.Logf("kubetest: %d node(s) registered with podCIDRs %v after start", len(c.Nodes), time.Since(began).Round(time.Millisecond))
	return c
}

// newNode makes node i's network namespace, plugged into the switch.
func (c *Cluster) newNode(t testing.TB, i int) *Node {
	t.Helper()
	n := &Node{
		Name:   fmt.Sprintf("node%d", i+1),
		IP:     netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}),
		Dir:    filepath.Join(c.Dir, fmt.Sprintf("node%d", i+1)),
		Cgroup: "/" + nstest.UniqueName("k"),
		c:      c,
	}
	n.Root = filepath.Join(n.Dir, "root")
	n.CNIConfDir, n.CNIBinDir = n.Path("/etc/cni/net.d"), n.Path("/opt/cni/bin")
	n.StateDir, n.RunDir = n.Path("/var/lib/overlayd"), n.Path("/run/overlayd")
	_, n.NetNS = nstest.NetNS(t, "kn")
	n.NetNSPath = filepath.Join(rtnl.DefaultNetNSDir, n.NetNS)
	port := fmt.Sprintf("p%d", i+1)
	nstest.Run(t, c.NetNS, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.NetNS)
	nstest.Run(t, c.NetNS, "ip", "link", "set", port, "master", "ul", "up")
	nstest.Run(t, n.NetNS, "ip", "addr", "add", n.IP.String()+"/24", "dev", "eth0")
	nstest.Run(t, n.NetNS, "ip", "link", "set", "eth0", "up")
	nstest.Run(t, n.NetNS, "ip", "route", "add", "default", "via", APIServerIP)
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

// bringUp starts node n: mount namespace, containerd, images, then — once
// the API server is ready — kubelet and kube-proxy.
func (c *Cluster) bringUp(n *Node, apiReady <-chan struct{}, apiOK *bool) error {
	if err := c.writeNodeConfigs(n); err != nil {
		return err
	}
	if err := n.setUp(); err != nil {
		return err
	}
	if err := n.importImage(filepath.Join(c.Dir, "images.tar")); err != nil {
		return err
	}
	plugins := []string{"loopback"}
	if c.opts.BridgeCNI {
		plugins = append(plugins, bridgePlugins()...)
	}
	for _, p := range plugins {
		if err := copyFile(filepath.Join(StandardPlugins, p), filepath.Join(n.CNIBinDir, p), 0o755); err != nil {
			return err
		}
	}
	if <-apiReady; !*apiOK {
		return nil
	}
	if err := n.startKubelet(); err != nil {
		return err
	}
	if c.opts.KubeProxy {
		return n.startKubeProxy()
	}
	return nil
}

// tearDownNodes stops every node, at once.
func (c *Cluster) tearDownNodes(t testing.TB) {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.tearDown(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// DialContext connects from the control plane's network namespace (an
// http.Transport's dialer reaching the API server, say).
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nstest.DialContext(ctx, c.NetNSPath, network, addr)
}

// Poll calls cond every 100 ms until it returns nil; after timeout it
// fails t with what and cond's last error.
func Poll(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := waitFor(timeout, 100*time.Millisecond, func() (error, error) { return nil, cond() }); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// output runs cmd and returns its standard output, or an error carrying its
// standard error.
func output(cmd *exec.Cmd) (string, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func copyFile(src, dst string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, perm)
}
