package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/kubetest"
)

// TestKubeDeploy: the seed's exercise under real kubelets. Three nodes
// whose pods are "not running" for want of a network; the image is built
// as make image builds it and imported on each node as an operator loads
// an offline image; kubectl apply -f deploy/kubernetes/; the DaemonSet
// turns Ready on every node, whose NetworkUnavailable condition goes
// False; the Deployment's pods, spread over the nodes, get addresses of
// their nodes' podCIDRs and ping each other on the first try; the daemons
// run as the manifest's ServiceAccount (the API server's audit log); the
// overlayd container killed (kill -9) is restarted by kubelet without a
// ping lost, its overlay namespace outliving it; kubectl delete -f removes
// everything it installed from the nodes: the plugin, the conflist, the
// overlay namespace and its devices, the node path, overlaynet's nftables
// tables, the state.
func TestKubeDeploy(t *testing.T) {
	kubetest.Require(t)
	audit := auditArgs(t)
	c := kubetest.Start(t, kubetest.Options{Nodes: 3, KubeProxy: true, APIServerArgs: audit.args})
	before := map[string]nodeFootprint{}
	for _, n := range c.Nodes {
		before[n.Name] = footprintOf(t, n)
	}
	c.Apply(t, deployment)
	// No network: nodes NotReady, the pods Pending.
	for _, p := range pods(t, c, "default", "app%3Dspread") {
		if p.IP.IsValid() {
			t.Fatalf("pod %s has an address before any network: %s", p.Name, p.IP)
		}
	}
	image := buildImage(t)
	for _, n := range c.Nodes {
		n.ImportImage(t, image)
	}
	out, err := c.KubectlWith(c.AdminKubeconfig, "apply", "-f", filepath.Dir(kubeManifest))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl apply -f deploy/kubernetes/:\n%s", out)
	c.Kubectl(t, "rollout", "status", "-n", "overlaynet", "daemonset/overlaynet", "--timeout=120s")
	c.WaitNodesReady(t)
	checkNetworkAvailable(t, c)
	c.Kubectl(t, "rollout", "status", "deployment/spread", "--timeout=120s")
	ps := pods(t, c, "default", "app%3Dspread")
	checkPodCIDRs(t, c, ps)
	pingEveryPair(t, c, ps)
	checkDaemonUser(t, audit)
	t.Run("containerKill", func(t *testing.T) { testContainerKill(t, c, ps) })
	t.Run("uninstall", func(t *testing.T) { testUninstall(t, c, before) })
}

// deployment is a Deployment of busybox pods spread over the nodes.
const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 0
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}
      containers:
      - name: c
        image: ` + kubetest.BusyboxImage + `
        imagePullPolicy: Never
        command: [sleep, infinity]
`

// buildImage builds the image as make image does (internal/mkimage over
// the static binaries) and returns the archive.
func buildImage(t *testing.T) string {
	t.Helper()
	dir := kubeBins.Dir(t)
	archive := filepath.Join(t.TempDir(), "overlaynet-image.tar")
	cmd := exec.Command("go", "run", "../../internal/mkimage", "-o", archive, "-name", "docker.io/overlaynet/overlaynet:dev",
		filepath.Join(dir, "overlayd"), filepath.Join(dir, "overlaynet"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, out)
	}
	return archive
}

// audit is an API server audit log the test reads.
type audit struct {
	args []string
	log  string
}

// auditArgs writes an audit policy logging every request's metadata and
// returns the API server's flags for it.
func auditArgs(t *testing.T) audit {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := audit{log: filepath.Join(dir, "audit.log")}
	a.args = []string{"--audit-policy-file=" + policy, "--audit-log-path=" + a.log, "--audit-log-format=json", "--audit-log-mode=blocking"}
	return a
}

// auditEvent is the part of an audit event the tests read.
type auditEvent struct {
	AuditID    string    `json:"auditID"`
	Stage      string    `json:"stage"`
	Verb       string    `json:"verb"`
	RequestURI string    `json:"requestURI"`
	UserAgent  string    `json:"userAgent"`
	Received   time.Time `json:"requestReceivedTimestamp"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
}

// events returns the audit events of requests made with a user agent
// starting with agent.
func (a audit) events(t testing.TB, agent string) []auditEvent {
	t.Helper()
	f, err := os.Open(a.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && strings.HasPrefix(e.UserAgent, agent) {
			out = append(out, e)
		}
	}
	return out
}

// checkDaemonUser checks that every request of the daemons (their user
// agent) came from the manifest's ServiceAccount.
func checkDaemonUser(t *testing.T, a audit) {
	t.Helper()
	evs := a.events(t, "overlayd")
	if len(evs) == 0 {
		t.Fatal("no request of the daemons in the audit log")
	}
	users := map[string]int{}
	for _, e := range evs {
		users[e.User.Username]++
	}
	if len(users) != 1 || users["system:serviceaccount:overlaynet:overlaynet"] == 0 {
		t.Errorf("the daemons' requests came from %v, want the ServiceAccount overlaynet/overlaynet only", users)
	}
}

// testContainerKill: the overlayd container of a node is killed (kill -9
// of its process): kubelet starts it again, and a pod on another node
// pinging a pod there loses nothing; the overlay namespace is the same.
func testContainerKill(t *testing.T, c *kubetest.Cluster, ps []podInfo) {
	n := c.Node(ps[0].Node)
	var from podInfo
	for _, p := range ps {
		if p.Node != n.Name {
			from = p
			break
		}
	}
	nsBefore := n.Run(t, "stat", "-L", "-c", "%i", "/run/netns/overns")
	id := strings.TrimSpace(n.Crictl(t, "ps", "-q", "--name", "overlayd"))
	pid := strings.TrimSpace(n.Crictl(t, "inspect", "-o", "go-template", "--template", "{{.info.pid}}", id))
	done := make(chan string, 1)
	go func() {
		out, err := c.KubectlWith(c.AdminKubeconfig, "exec", from.Name, "--", "ping", "-c", "40", "-i", "0.2", "-W", "2", ps[0].IP.String())
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	time.Sleep(2 * time.Second)
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatalf("kill -9 %s (overlayd's container on %s): %v", pid, n.Name, err)
	}
	kubetest.Poll(t, 60*time.Second, "overlayd's container running again on "+n.Name, func() error {
		out, err := n.Output(filepath.Join(c.Bin, "crictl"), "--runtime-endpoint", "unix://"+kubetest.ContainerdSocket, "ps", "-q", "--name", "overlayd", "--state", "Running")
		if err != nil || strings.TrimSpace(out) == "" || strings.TrimSpace(out) == id {
			return fmt.Errorf("not yet: %q %v", out, err)
		}
		return nil
	})
	waitReady(t, n, 60*time.Second)
	out := <-done
	m := pingLoss.FindStringSubmatch(out)
	if m == nil || m[1] != "40" || m[2] != "40" {
		t.Errorf("%s -> %s across the overlayd container's kill -9 on %s: %s", from.Name, ps[0].Name, n.Name, out)
	}
	if after := n.Run(t, "stat", "-L", "-c", "%i", "/run/netns/overns"); after != nsBefore {
		t.Errorf("the overlay namespace changed across the container's restart: %s -> %s", nsBefore, after)
	}
}

// nodeFootprint is what overlaynet may leave on a node.
type nodeFootprint struct {
	files  []string // of overlaynet's paths, those present
	links  string   // the node's network devices
	tables string   // its nftables tables
}

// footprintOf reads n's footprint.
func footprintOf(t *testing.T, n *kubetest.Node) nodeFootprint {
	t.Helper()
	var f nodeFootprint
	for _, p := range []string{"/opt/cni/bin/overlaynet", "/etc/cni/net.d/10-overlaynet.conflist", kubeStateDir, "/run/netns/overns"} {
		if _, err := n.Output("stat", p); err == nil {
			f.files = append(f.files, p)
		}
	}
	f.links = n.Run(t, "sh", "-c", "ip -o link show | cut -d: -f2 | sort | tr -d ' ' | tr '\\n' ' '")
	f.tables = n.Run(t, "sh", "-c", "nft list tables | grep -v kube-proxy | sort | tr '\\n' ' '")
	return f
}

// testUninstall: the Deployment goes, then kubectl delete -f
// deploy/kubernetes/: the DaemonSet's pods uninstall, and every node is as
// it was before the apply.
func testUninstall(t *testing.T, c *kubetest.Cluster, before map[string]nodeFootprint) {
	c.Kubectl(t, "delete", "deployment", "spread", "--wait=true", "--timeout=60s")
	kubetest.Poll(t, 60*time.Second, "the Deployment's pods gone", func() error {
		if ps := pods(t, c, "default", "app%3Dspread"); len(ps) > 0 {
			return fmt.Errorf("%d pods left", len(ps))
		}
		return nil
	})
	// The runtime takes the pods off the network (CNI DEL) after the API
	// forgot them (a grace period of 0), and kubelet's garbage collection
	// removes their stopped sandboxes within a minute (containerd tears a
	// sandbox's network down again when it removes it, which needs the
	// plugin): the test removes them at once, as that collection would.
	for _, n := range c.Nodes {
		kubetest.Poll(t, 60*time.Second, "no pod on the network of "+n.Name, func() error {
			out, _ := n.Output("ls", kubeStateDir+"/endpoints")
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("endpoints: %s", out)
			}
			return nil
		})
		for _, id := range strings.Fields(n.Crictl(t, "pods", "-q", "--state", "NotReady")) {
			n.Crictl(t, "rmp", id)
		}
	}
	c.Kubectl(t, "delete", "-f", filepath.Dir(kubeManifest), "--wait=true", "--timeout=120s")
	for _, n := range c.Nodes {
		kubetest.Poll(t, 60*time.Second, n.Name+" as before the apply", func() error {
			if after := footprintOf(t, n); fmt.Sprint(after) != fmt.Sprint(before[n.Name]) {
				return fmt.Errorf("before: %+v\nafter:  %+v", before[n.Name], after)
			}
			return nil
		})
	}
}
