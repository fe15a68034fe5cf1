package main

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/kubetest"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg"
)

// TestKubeOverlay: a real API server, kube-controller-manager assigning
// podCIDRs, three simulated nodes (kubelet, containerd's CRI, kube-proxy in
// nftables mode), overlayd run on each as the DaemonSet's container runs
// it, with the ServiceAccount token of the manifest's ClusterRole, and the
// plugin installed as its init container installs it. Every node turns
// Ready with NetworkUnavailable False; pods made through the CRI get
// addresses of their nodes' podCIDRs; every pod pings every other one on
// its first try (one echo, answered) and its own node; pods on two nodes,
// and a node, reach a ClusterIP Service whose pod is on one of them through
// kube-proxy (nftables mode); a daemon killed
// (kill -9) and restarted loses no ping of a running exchange; a node
// rebooted with another VTEP address is reprogrammed on its peers within
// 2 s of its new annotation; a deleted Node's entries leave its peers within
// 2 s.
func TestKubeOverlay(t *testing.T) {
	kubetest.Require(t)
	c := kubetest.Start(t, kubetest.Options{Nodes: 3, KubeProxy: true})
	kc := daemonKubeconfig(t, c)
	daemons := make([]*kubeDaemon, len(c.Nodes))
	for i, n := range c.Nodes {
		daemons[i] = startKubeDaemon(t, n, kc)
	}
	for _, n := range c.Nodes {
		waitReady(t, n, 60*time.Second)
		installCNI(t, n)
	}
	c.WaitNodesReady(t)
	checkNetworkAvailable(t, c)
	for i, n := range c.Nodes {
		c.Apply(t, pinnedPod(fmt.Sprintf("p%da", i+1), n.Name, "kubeov")+"---\n"+pinnedPod(fmt.Sprintf("p%db", i+1), n.Name, "kubeov"))
	}
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod", "-l", "app=kubeov", "--timeout=90s")
	ps := pods(t, c, "default", "app%3Dkubeov")
	checkPodCIDRs(t, c, ps)
	pingEveryPair(t, c, ps)
	for _, p := range ps {
		n := c.Node(p.Node)
		if failed := pingAll(t, c, []podInfo{p}, []netip.Addr{n.IP}); failed != nil {
			t.Errorf("pod %s does not reach its node: %v", p.Name, failed)
		}
	}
	t.Run("service", func(t *testing.T) { testKubeService(t, c, ps) })
	t.Run("killRestart", func(t *testing.T) { testKubeKillRestart(t, c, daemons[1], ps) })
	t.Run("newVTEP", func(t *testing.T) { testKubeNewVTEP(t, c, daemons[2]) })
	t.Run("deleteNode", func(t *testing.T) { testKubeDeleteNode(t, c, c.Nodes[1]) })
}

// checkNetworkAvailable checks that every node's NetworkUnavailable
// condition is False, set by overlaynet.
func checkNetworkAvailable(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	kubetest.Poll(t, 30*time.Second, "NetworkUnavailable False on every node", func() error {
		objs, err := c.NodeObjects()
		if err != nil {
			return err
		}
		for _, n := range c.Nodes {
			if cond := objs[n.Name].Condition("NetworkUnavailable"); cond.Status != "False" || cond.Reason != "OverlaynetIsUp" {
				return fmt.Errorf("%s: NetworkUnavailable %+v", n.Name, cond)
			}
		}
		return nil
	})
}

// checkPodCIDRs checks that every pod has an address of its node's
// podCIDR.
func checkPodCIDRs(t *testing.T, c *kubetest.Cluster, ps []podInfo) {
	t.Helper()
	nodes := map[string]bool{}
	for _, p := range ps {
		cidr := podCIDR(t, c.Node(p.Node))
		if !cidr.Contains(p.IP) {
			t.Errorf("pod %s on %s has %s, outside its node's podCIDR %s", p.Name, p.Node, p.IP, cidr)
		}
		nodes[p.Node] = true
	}
	if len(nodes) < 2 {
		t.Errorf("pods on %d node(s), want them spread", len(nodes))
	}
}

// pingLoss matches ping's summary line.
var pingLoss = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (packets )?received`)

// testKubeKillRestart: a pod pings a pod on another node 5 times a second
// while that node's daemon is killed (kill -9) and started again: no echo
// is lost, and the restarted daemon is ready again.
func testKubeKillRestart(t *testing.T, c *kubetest.Cluster, d *kubeDaemon, ps []podInfo) {
	var from, to podInfo
	for _, p := range ps {
		switch {
		case p.Node == d.n.Name && !to.IP.IsValid():
			to = p
		case p.Node != d.n.Name && !from.IP.IsValid():
			from = p
		}
	}
	done := make(chan string, 1)
	go func() {
		out, err := c.KubectlWith(c.AdminKubeconfig, "exec", from.Name, "--", "ping", "-c", "40", "-i", "0.2", "-W", "2", to.IP.String())
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	time.Sleep(2 * time.Second)
	d.p.Kill()
	d.restart()
	waitReady(t, d.n, 30*time.Second)
	out := <-done
	m := pingLoss.FindStringSubmatch(out)
	if m == nil || m[1] != "40" || m[2] != "40" {
		t.Errorf("%s -> %s across the daemon's kill -9 and restart on %s: %s", from.Name, to.Name, d.n.Name, out)
	}
}

// testKubeNewVTEP: node d.n is rebooted with another underlay address:
// its pods and overlay go (crictl removes the sandboxes, reset the
// overlay), it comes back at the new address, its daemon publishes the new
// VTEP; every peer's FDB entries for its podCIDR point at the new VTEP
// within 2 s of the annotation, and its pods, made again by kubelet, are
// reached.
func testKubeNewVTEP(t *testing.T, c *kubetest.Cluster, d *kubeDaemon) {
	n := d.n
	cidr := podCIDR(t, n)
	peers := []*kubetest.Node{}
	for _, p := range c.Nodes {
		if p != n {
			peers = append(peers, p)
			if _, fdb := entriesIn(t, p, cidr); len(fdb) == 0 {
				t.Fatalf("%s holds no entry toward %s to reprogram", p.Name, n.Name)
			}
		}
	}
	// The reboot: the daemon stops, the node's overlay and state go, then
	// its pods. In this order kubelet cannot make a sandbox again in the
	// overlay about to go (its pod would stay Ready with no network): a
	// sandbox made from here on waits for the new daemon's network.
	d.p.Stop()
	dir := kubeBins.Dir(t)
	n.Run(t, dir+"/overlayd", "reset", "--store=kube:", "--state-dir="+kubeStateDir, "--netns-dir="+kubeNetNSDir)
	n.RemovePods(t)
	newIP := netip.MustParseAddr("192.0.2.203")
	n.SetIP(t, newIP)
	for i, a := range d.args {
		if strings.HasPrefix(a, "--local=") {
			d.args[i] = "--local=" + newIP.String()
		}
	}
	d.restart()
	var annotated, moved time.Time
	kubetest.Poll(t, 60*time.Second, "peers' FDB entries toward "+newIP.String(), func() error {
		if annotated.IsZero() {
			objs, err := c.NodeObjects()
			if err != nil {
				return err
			}
			if objs[n.Name].Metadata.Annotations[kubereg.AnnotationVTEP] != newIP.String() {
				return fmt.Errorf("%s not annotated with %s yet", n.Name, newIP)
			}
			annotated = time.Now()
		}
		for _, p := range peers {
			_, fdb := entriesIn(t, p, cidr)
			for mac, dst := range fdb {
				if dst != newIP.String() {
					return fmt.Errorf("%s: %s still at %s", p.Name, mac, dst)
				}
			}
		}
		moved = time.Now()
		return nil
	})
	if d := moved.Sub(annotated); d > 2*time.Second {
		t.Errorf("peers reprogrammed %v after the new VTEP's annotation, want within 2 s", d)
	} else {
		t.Logf("peers reprogrammed within %v of the new VTEP's annotation", d.Round(time.Millisecond))
	}
	waitReady(t, n, 30*time.Second)
	// kubelet makes the pods' sandboxes again (their containers restart):
	// their pods get addresses of the same podCIDR.
	var fresh []netip.Addr
	var others []podInfo
	kubetest.Poll(t, 90*time.Second, n.Name+"'s pods running again", func() error {
		fresh, others = nil, nil
		for _, p := range pods(t, c, "default", "app%3Dkubeov") {
			if p.Node != n.Name {
				others = append(others, p)
				continue
			}
			if !p.IP.IsValid() || p.Restarts == 0 || !p.Ready {
				return fmt.Errorf("pod %s: address %v, %d restarts, ready %v", p.Name, p.IP, p.Restarts, p.Ready)
			}
			fresh = append(fresh, p.IP)
		}
		return nil
	})
	if failed := pingAll(t, c, others, fresh); failed != nil {
		t.Errorf("%s's pods after its reboot at %s, not reached on the first try:\n%s", n.Name, newIP, strings.Join(failed, "\n"))
	}
}

// testKubeDeleteNode: kubectl delete node n removes the entries its peers
// hold for its podCIDR within 2 s.
func testKubeDeleteNode(t *testing.T, c *kubetest.Cluster, n *kubetest.Node) {
	cidr := podCIDR(t, n)
	var peers []*kubetest.Node
	for _, p := range c.Nodes {
		if p != n {
			peers = append(peers, p)
			if neigh, fdb := entriesIn(t, p, cidr); len(neigh)+len(fdb) == 0 {
				t.Fatalf("%s holds no entry toward %s to remove", p.Name, n.Name)
			}
		}
	}
	began := time.Now()
	c.DeleteNode(t, n)
	kubetest.Poll(t, 10*time.Second, n.Name+"'s entries gone from its peers", func() error {
		for _, p := range peers {
			if neigh, fdb := entriesIn(t, p, cidr); len(neigh)+len(fdb) > 0 {
				return fmt.Errorf("%s still holds %v %v", p.Name, neigh, fdb)
			}
		}
		return nil
	})
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("%s's entries left its peers %v after kubectl delete node, want within 2 s", n.Name, d)
	} else {
		t.Logf("%s's entries left its peers within %v of kubectl delete node", n.Name, d.Round(time.Millisecond))
	}
}

// webManifest is an HTTP server pod on a node and its ClusterIP Service.
const webManifest = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: ` + kubetest.BusyboxImage + `
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www']
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
`

// testKubeService: a ClusterIP Service whose pod is on node2 is reached,
// through kube-proxy's rules in the nodes' namespaces, by a pod on node1
// (its traffic leaves the overlay by node1's node path and comes back
// translated: the reply returns to node1 over the overlay), by a pod on
// node2 (the Service's pod on the same node), and by node1 itself.
func testKubeService(t *testing.T, c *kubetest.Cluster, ps []podInfo) {
	n1, n2 := c.Nodes[0], c.Nodes[1]
	c.Apply(t, fmt.Sprintf(webManifest, n2.Name))
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
	ip := strings.TrimSpace(c.Kubectl(t, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
	const want = "hello from web"
	var clients []podInfo
	for _, node := range []*kubetest.Node{n1, n2} {
		for _, p := range ps {
			if p.Node == node.Name {
				clients = append(clients, p)
				break
			}
		}
	}
	for _, p := range clients {
		kubetest.Poll(t, 30*time.Second, "pod "+p.Name+" on "+p.Node+" reaches http://"+ip, func() error {
			out, err := c.KubectlWith(c.AdminKubeconfig, "exec", p.Name, "--", "timeout", "5", "wget", "-q", "-O", "-", "http://"+ip+"/")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != want {
				return fmt.Errorf("got %q", out)
			}
			return nil
		})
	}
	kubetest.Poll(t, 30*time.Second, "node "+n1.Name+" reaches http://"+ip, func() error {
		resp, err := nodeHTTP(n1).Get("http://" + ip + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(b)) != want {
			return fmt.Errorf("got %d %q", resp.StatusCode, b)
		}
		return nil
	})
}
