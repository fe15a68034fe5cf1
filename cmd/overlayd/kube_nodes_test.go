package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/kubetest"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestKubeNodes: one real node on a cluster whose controller manager
// assigns no podCIDR, then Nodes made through the API (no kubelet): bad
// input and scale.
//
//   - noPodCIDR: the daemon is not ready and says why and how to fix it
//     (kube-controller-manager's --allocate-node-cidrs and --cluster-cidr,
//     or the Node's spec.podCIDR), and so does a pod's sandbox (the CNI
//     plugin's error in its event);
//   - outsideSubnet: the Node's podCIDR set by hand reaches the running
//     daemon (no restart), but it is outside the overlay's subnet: refused,
//     by the daemon's readiness and by the plugin; run with the right
//     subnet, pods get addresses of the podCIDR (and overlayd attach too);
//   - garbage: Nodes annotated badly (VTEP no address, multicast, too long;
//     network malformed or another; podCIDR outside the subnet, overlapping
//     an older Node's; an older Node's VTEP) are skipped and counted by
//     reason, and nothing is programmed from them; a sound one is;
//   - scale: with 1,000 more Nodes, a restarted daemon is ready within 5 s,
//     answers a miss for an address of each from memory, holds at most
//     32 MiB, and sends the API server no request once up (its audit log).
func TestKubeNodes(t *testing.T) {
	kubetest.Require(t)
	audit := auditArgs(t)
	c := kubetest.Start(t, kubetest.Options{Nodes: 1, NoPodCIDRs: true, APIServerArgs: audit.args})
	n := c.Nodes[0]
	kc := daemonKubeconfig(t, c)
	installCNI(t, n)
	c.WaitNodesReady(t)
	d := startKubeDaemon(t, n, kc, "--gateway=10.245.0.1/16")
	t.Run("noPodCIDR", func(t *testing.T) { testNoPodCIDR(t, c, n) })
	t.Run("outsideSubnet", func(t *testing.T) { testOutsideSubnet(t, c, d) })
	t.Run("garbage", func(t *testing.T) { testGarbageNodes(t, c, n) })
	t.Run("scale", func(t *testing.T) { testScaleNodes(t, c, d, audit) })
	t.Run("networkMismatch", func(t *testing.T) { testNetworkMismatch(t, d) })
}

// testNetworkMismatch: a daemon configured with another MTU than the one
// the other Nodes run refuses to start, naming the difference, and changes
// nothing on its Node.
func testNetworkMismatch(t *testing.T, d *kubeDaemon) {
	n := d.n
	d.p.Stop()
	n.Run(t, filepath.Join(kubeBins.Dir(t), "overlayd"), "reset", "--store=kube:", "--state-dir="+kubeStateDir, "--netns-dir="+kubeNetNSDir)
	d.args = append(d.args, "--mtu=1400")
	d.restart()
	select {
	case <-d.p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon of another MTU still runs")
	}
	b, err := os.ReadFile(d.p.Log())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"other annotated Nodes run another overlay", "store MTU: want 1400, have 1450"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the daemon's log lacks %q:\n%s", want, b[max(0, len(b)-2000):])
		}
	}
}

// waitReadyz waits until n's daemon answers /readyz with code and a body
// holding every one of want.
func waitReadyz(t *testing.T, n *kubetest.Node, code int, want ...string) {
	t.Helper()
	kubetest.Poll(t, 30*time.Second, fmt.Sprintf("/readyz %d %q", code, want), func() error {
		got, body, err := probe(n, "/readyz")
		if err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("%d: %s", got, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("%d: %s", got, body)
			}
		}
		return nil
	})
}

// sandboxError waits for pod's FailedCreatePodSandBox event holding every
// one of want: the CNI plugin's error as kubelet reports it.
func sandboxError(t *testing.T, c *kubetest.Cluster, pod string, want ...string) {
	t.Helper()
	kubetest.Poll(t, 60*time.Second, "pod "+pod+"'s sandbox error", func() error {
		out, err := c.KubectlWith(c.AdminKubeconfig, "get", "events", "--field-selector", "involvedObject.name="+pod+",reason=FailedCreatePodSandBox",
			"-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			ok := l != ""
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("events:\n%s", out)
	})
}

func testNoPodCIDR(t *testing.T, c *kubetest.Cluster, n *kubetest.Node) {
	waitReadyz(t, n, 503, `Node "node1" has no spec.podCIDR`, "--allocate-node-cidrs", "--cluster-cidr=10.245.0.0/16", "spec.podCIDR")
	c.Apply(t, pinnedPod("e1", n.Name, "kubenodes"))
	sandboxError(t, c, "e1", "has no spec.podCIDR", "--allocate-node-cidrs and --cluster-cidr")
}

func testOutsideSubnet(t *testing.T, c *kubetest.Cluster, d *kubeDaemon) {
	n := d.n
	c.Kubectl(t, "patch", "node", n.Name, "--type=merge", "-p", `{"spec":{"podCIDR":"10.244.7.0/24","podCIDRs":["10.244.7.0/24"]}}`)
	waitReadyz(t, n, 503, "podCIDR 10.244.7.0/24 is outside the overlay subnet 10.245.0.0/16")
	c.Apply(t, pinnedPod("e2", n.Name, "kubenodes"))
	sandboxError(t, c, "e2", "10.244.7.0/24", "outside the overlay subnet 10.245.0.0/16")
	// The right subnet: the overlay made again with it.
	d.p.Stop()
	n.Run(t, filepath.Join(kubeBins.Dir(t), "overlayd"), "reset", "--store=kube:", "--state-dir="+kubeStateDir, "--netns-dir="+kubeNetNSDir)
	d.args = slices.DeleteFunc(d.args, func(a string) bool { return a == "--gateway=10.245.0.1/16" })
	d.restart()
	waitReady(t, n, 30*time.Second)
	c.Kubectl(t, "delete", "pod", "e1", "e2", "--wait=false")
	c.Apply(t, pinnedPod("e3", n.Name, "kubenodes"))
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod/e3", "--timeout=60s")
	for _, p := range pods(t, c, "default", "app%3Dkubenodes") {
		if p.Name == "e3" && !netip.MustParsePrefix("10.244.7.0/24").Contains(p.IP) {
			t.Errorf("pod e3 has %s, outside its node's podCIDR 10.244.7.0/24", p.IP)
		}
	}
}

// fakeNode is a Node made through the API, with no kubelet behind it.
type fakeNode struct {
	name, podCIDR, vtep, network string
}

// ourNetwork is the network annotation of the daemons of these tests.
const ourNetwork = `{"vni":42,"port":4789,"mtu":1450,"gateway":"10.244.0.1/16"}`

// createNodes makes the Nodes through the API as the admin, 8 at a time.
func createNodes(t *testing.T, c *kubetest.Cluster, nodes []fakeNode) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	work := make(chan fakeNode)
	for range 8 {
		wg.Go(func() {
			for fn := range work {
				obj := map[string]any{"apiVersion": "v1", "kind": "Node",
					"metadata": map[string]any{"name": fn.name, "annotations": map[string]string{
						kubereg.AnnotationVTEP: fn.vtep, kubereg.AnnotationNetwork: fn.network}},
					"spec": map[string]any{"podCIDR": fn.podCIDR, "podCIDRs": []string{fn.podCIDR}}}
				b, _ := json.Marshal(obj)
				status, body, err := c.Request("POST", "/api/v1/nodes", c.AdminToken, b)
				if err == nil && status != 201 {
					err = fmt.Errorf("node %s: %d: %.200s", fn.name, status, body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for _, fn := range nodes {
		work <- fn
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// daemonMetrics returns the samples of n's daemon's metrics by name with
// labels.
func daemonMetrics(t *testing.T, n *kubetest.Node) map[string]float64 {
	t.Helper()
	_, body, err := probe(n, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// attachProbe attaches a container to n's overlay with overlayd attach (an
// address of the node's podCIDR) and returns a miss generator sending from
// it.
func attachProbe(t *testing.T, n *kubetest.Node, name string) *missgen.Generator {
	t.Helper()
	out := n.Run(t, filepath.Join(kubeBins.Dir(t), "overlayd"), "attach", name, "--store=kube:", "--state-dir="+kubeStateDir, "--netns-dir="+kubeNetNSDir)
	m := regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+)/\d+`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("overlayd attach %s: %s", name, out)
	}
	ip := netip.MustParseAddr(m[1])
	if !netip.MustParsePrefix("10.244.7.0/24").Contains(ip) {
		t.Errorf("overlayd attach gave %s, outside the node's podCIDR 10.244.7.0/24", ip)
	}
	ns, err := rtnl.OpenNetNS(n.MountNSPath(kubeNetNSDir + "/" + name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	g, err := missgen.New(ns, "eth0", registry.DeriveMAC(ip), ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func testGarbageNodes(t *testing.T, c *kubetest.Cluster, n *kubetest.Node) {
	nodes := []fakeNode{
		{"g-bad-vtep", "10.244.20.0/24", "not-an-ip", ourNetwork},
		{"g-multicast-vtep", "10.244.21.0/24", "224.0.0.1", ourNetwork},
		{"g-long-vtep", "10.244.22.0/24", strings.Repeat("1", 600), ourNetwork},
		{"g-bad-network", "10.244.23.0/24", "10.100.0.4", `{"vni":`},
		{"g-other-network", "10.244.24.0/24", "10.100.0.5", strings.Replace(ourNetwork, "42", "43", 1)},
		{"g-outside", "10.9.0.0/24", "10.100.0.6", ourNetwork},
		{"g-overlap", "10.244.7.128/25", "10.100.0.7", ourNetwork},
		{"g-vtep-taken", "10.244.25.0/24", n.IP.String(), ourNetwork},
		{"g-good", "10.244.26.0/24", "10.100.0.9", ourNetwork},
	}
	createNodes(t, c, nodes)
	want := map[string]float64{"ok": 2, "bad_vtep": 3, "bad_network": 1, "network_mismatch": 1, "outside_subnet": 1, "overlap": 1, "vtep_conflict": 1}
	kubetest.Poll(t, 10*time.Second, "the Nodes counted by state", func() error {
		m := daemonMetrics(t, n)
		for st, v := range want {
			if got := m[`overlayd_kube_nodes{state="`+st+`"}`]; got != v {
				return fmt.Errorf("state %s: %v, want %v", st, got, v)
			}
		}
		return nil
	})
	g := attachProbe(t, n, "probe1")
	for _, fn := range nodes {
		if p, err := netip.ParsePrefix(fn.podCIDR); err == nil {
			if _, err := g.ARP(p.Addr().Next().Next(), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	good := netip.MustParseAddr("10.244.26.2")
	kubetest.Poll(t, 10*time.Second, "the sound Node's entry", func() error {
		neigh, fdb := entriesIn(t, n, netip.MustParsePrefix("10.244.26.0/24"))
		if neigh[good.String()] != registry.DeriveMAC(good).String() || fdb[registry.DeriveMAC(good).String()] != "10.100.0.9" {
			return fmt.Errorf("entries %v %v", neigh, fdb)
		}
		return nil
	})
	for _, fn := range nodes {
		p, err := netip.ParsePrefix(fn.podCIDR)
		if err != nil || fn.name == "g-good" {
			continue
		}
		if neigh, fdb := entriesIn(t, n, p); len(neigh)+len(fdb) > 0 && fn.name != "g-overlap" {
			t.Errorf("%s: entries programmed from it: %v %v", fn.name, neigh, fdb)
		}
	}
	// g-overlap's addresses are node1's own: nothing on the vxlan either.
	if neigh, _ := entriesIn(t, n, netip.MustParsePrefix("10.244.7.128/25")); len(neigh) > 0 {
		t.Errorf("entries toward the overlapping Node: %v", neigh)
	}
}

func testScaleNodes(t *testing.T, c *kubetest.Cluster, d *kubeDaemon, a audit) {
	n := d.n
	const count = 1000
	base := netip.MustParseAddr("10.244.32.0")
	nodes := make([]fakeNode, count)
	for i := range nodes {
		p := netip.PrefixFrom(addrAt(base, i*32), 27)
		nodes[i] = fakeNode{name: fmt.Sprintf("s%04d", i), podCIDR: p.String(),
			vtep: fmt.Sprintf("10.100.%d.%d", 1+i/250, 1+i%250), network: ourNetwork}
	}
	began := time.Now()
	createNodes(t, c, nodes)
	t.Logf("%d Nodes created in %v", count, time.Since(began).Round(time.Millisecond))

	d.p.Stop()
	began = time.Now()
	d.restart()
	var ready time.Duration
	kubetest.Poll(t, 30*time.Second, "the daemon ready", func() error {
		code, body, err := probe(n, "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		ready = time.Since(began)
		return nil
	})
	if ready > 5*time.Second {
		t.Errorf("ready %v after its start among %d Nodes, want within 5 s", ready, count+10)
	}
	// Up: the Node annotated and its network announced, two patches.
	agent := kubereg.UserAgent + " (node " + n.Name + ")"
	kubetest.Poll(t, 10*time.Second, "the node annotated and announced", func() error {
		var patches []string
		for _, e := range a.events(t, agent) {
			if e.Received.After(began) && e.Verb == "patch" && e.Stage == "ResponseComplete" {
				patches = append(patches, e.RequestURI)
			}
		}
		if len(patches) < 2 {
			return fmt.Errorf("patches since the start: %v", patches)
		}
		return nil
	})
	idle := time.Now()
	m := daemonMetrics(t, n)
	if m[`overlayd_kube_nodes{state="ok"}`] != count+2 {
		t.Errorf("%v Nodes followed, want %d", m[`overlayd_kube_nodes{state="ok"}`], count+2)
	}
	fromFeed := m["overlayd_misses_answered_from_feed_total"]
	g := attachProbe(t, n, "probe2")
	for _, fn := range nodes {
		p := netip.MustParsePrefix(fn.podCIDR)
		if _, err := g.ARP(p.Addr().Next(), 1); err != nil {
			t.Fatal(err)
		}
	}
	kubetest.Poll(t, 30*time.Second, "an entry toward every Node", func() error {
		neigh, fdb := entriesIn(t, n, netip.MustParsePrefix("10.244.32.0/19"))
		n2, f2 := entriesIn(t, n, netip.MustParsePrefix("10.244.64.0/18"))
		n3, f3 := entriesIn(t, n, netip.MustParsePrefix("10.244.128.0/19"))
		if got := len(neigh) + len(n2) + len(n3); got < count || len(fdb)+len(f2)+len(f3) < count {
			return fmt.Errorf("%d neighbour entries, %d FDB entries", got, len(fdb)+len(f2)+len(f3))
		}
		return nil
	})
	for _, i := range []int{0, 499, 999} {
		ip := addrAt(base, i*32+1)
		neigh, fdb := entriesIn(t, n, netip.PrefixFrom(ip, 32))
		if neigh[ip.String()] != registry.DeriveMAC(ip).String() || fdb[registry.DeriveMAC(ip).String()] != nodes[i].vtep {
			t.Errorf("%s: entries %v %v, want its derived MAC at %s", ip, neigh, fdb, nodes[i].vtep)
		}
	}
	m = daemonMetrics(t, n)
	if got := m["overlayd_misses_answered_from_feed_total"] - fromFeed; got < count {
		t.Errorf("%v misses answered from memory, want %d", got, count)
	}
	rss := vmRSS(t, d.p.Pid())
	t.Logf("ready %v after the start among %d Nodes; RSS %.1f MiB after answering %d misses", ready.Round(time.Millisecond), count+10, float64(rss)/(1<<20), count)
	if rss > 32<<20 {
		t.Errorf("RSS %.1f MiB, want at most 32 MiB", float64(rss)/(1<<20))
	}
	time.Sleep(5 * time.Second)
	var after []string
	for _, e := range a.events(t, agent) {
		if e.Received.After(idle) {
			after = append(after, e.Verb+" "+e.RequestURI+" "+e.Stage)
		}
	}
	if after != nil {
		t.Errorf("requests once up and idle (%v): %v", time.Since(idle).Round(time.Second), after)
	}
}

// addrAt returns a's i-th successor.
func addrAt(a netip.Addr, i int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// vmRSS returns a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}
