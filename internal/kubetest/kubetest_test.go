package kubetest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// hostState is what the lab must leave on the host as it found it: the
// host-wide sysctls kubelet and kube-proxy set on a real node, and the
// host's firewall.
type hostState struct {
	files   map[string]string
	ruleset string
}

func readHostState(t *testing.T) hostState {
	t.Helper()
	s := hostState{files: map[string]string{}}
	paths := []string{"/proc/sys/net/netfilter/nf_conntrack_max", "/sys/module/nf_conntrack/parameters/hashsize",
		"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"}
	for key := range kernelTunables() {
		paths = append(paths, "/proc/sys/"+key)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			s.files[p] = "(" + err.Error() + ")"
		} else {
			s.files[p] = strings.TrimSpace(string(b))
		}
	}
	s.ruleset = nstest.Run(t, "", "nft", "list", "ruleset")
	return s
}

func (s hostState) diff(after hostState) []string {
	var d []string
	for p, v := range s.files {
		if after.files[p] != v {
			d = append(d, fmt.Sprintf("%s: %s -> %s", p, v, after.files[p]))
		}
	}
	if s.ruleset != after.ruleset {
		d = append(d, fmt.Sprintf("host nft ruleset changed:\n%s\n->\n%s", s.ruleset, after.ruleset))
	}
	return d
}

// procID is a process as it was: its pid and start time (pids are reused).
type procID struct {
	pid   int
	start string
}

// procStart returns a live process's start time ("" for none, or a
// zombie: dead, waiting for its parent — init, for a daemonized shim — to
// reap it).
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return f[19] // field 22: starttime
}

// labFootprint is everything a cluster made that must be gone after it.
type labFootprint struct {
	procs    []procID
	cgroups  []string // kubelet cgroupRoots
	netns    []string
	mountNSs []string // the nodes' mount namespaces (ns/mnt link targets)
}

func footprint(c *Cluster) labFootprint {
	var f labFootprint
	add := func(p *proc) {
		if p != nil && p.running() {
			f.procs = append(f.procs, procID{p.pid(), procStart(p.pid())})
		}
	}
	add(c.apiserver)
	add(c.kcm)
	add(c.scheduler)
	f.procs = append(f.procs, procID{c.etcd.Pid(), procStart(c.etcd.Pid())})
	f.netns = append(f.netns, c.NetNS)
	for _, n := range c.Nodes {
		for _, p := range []*proc{n.holder, n.ctrd, n.kubelet, n.kubeProxy} {
			add(p)
		}
		for _, pid := range n.cg.pids() {
			f.procs = append(f.procs, procID{pid, procStart(pid)})
		}
		f.cgroups = append(f.cgroups, n.Cgroup)
		f.netns = append(f.netns, n.NetNS)
		if l, err := os.Readlink(n.MountNS()); err == nil {
			f.mountNSs = append(f.mountNSs, l)
		}
	}
	return f
}

// left returns what of the footprint is still there.
func (f labFootprint) left() []string {
	var left []string
	for _, p := range f.procs {
		if p.start != "" && procStart(p.pid) == p.start {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
			left = append(left, fmt.Sprintf("process %d (%s)", p.pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	for _, cg := range f.cgroups {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*" + cg)
		for _, m := range matches {
			left = append(left, "cgroup "+m)
		}
	}
	for _, ns := range f.netns {
		if _, err := os.Stat(filepath.Join(rtnl.DefaultNetNSDir, ns)); err == nil {
			left = append(left, "netns "+ns)
		}
	}
	links, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
	for _, l := range links {
		target, _ := os.Readlink(l)
		for _, m := range f.mountNSs {
			if target == m {
				left = append(left, fmt.Sprintf("mount namespace %s (held by %s)", m, l))
			}
		}
	}
	return left
}

// TestCluster: three nodes register with podCIDRs the controller manager
// cut from the cluster CIDR and are NotReady for want of a network
// (kubelet's condition names containerd's "cni plugin not initialized");
// a hostNetwork DaemonSet runs on all three (its pods in the nodes'
// network namespaces, reached by kubectl exec through the API server and
// kubelet); an ordinary pod is refused by the scheduler (not-ready taint)
// and, bound to a node, by kubelet (NetworkNotReady); once a conflist of
// the standard bridge plugin appears in each node's /etc/cni/net.d the
// nodes turn Ready and both pods run with addresses of their nodes'
// podCIDRs. A ServiceAccount token bound to a ClusterRole can do what the
// role grants and nothing else. kubectl delete node removes a node from
// the DaemonSet. When the test ends, every process, cgroup, network and
// mount namespace of the lab is gone and the host's sysctls and firewall
// are as they were.
func TestCluster(t *testing.T) {
	Require(t)
	t.Parallel()
	before := readHostState(t)
	var fp labFootprint
	t.Run("lab", func(t *testing.T) {
		c := Start(t, Options{Nodes: 3})
		t.Run("registered", func(t *testing.T) { testRegistered(t, c) })
		t.Run("hostNetworkDaemonSet", func(t *testing.T) { testHostNetworkDaemonSet(t, c) })
		t.Run("podsWaitForNetwork", func(t *testing.T) { testPodsWaitForNetwork(t, c) })
		t.Run("nodeNamespaces", func(t *testing.T) { testNodeNamespaces(t, c) })
		t.Run("serviceAccountRBAC", func(t *testing.T) { testServiceAccountRBAC(t, c) })
		t.Run("deleteNode", func(t *testing.T) { testDeleteNode(t, c) })
		if d := before.diff(readHostState(t)); d != nil {
			t.Errorf("the running cluster changed the host:\n%s", strings.Join(d, "\n"))
		}
		fp = footprint(c)
	})
	if left := fp.left(); left != nil {
		t.Errorf("left after the cluster's cleanup: %s", strings.Join(left, "; "))
	}
	if d := before.diff(readHostState(t)); d != nil {
		t.Errorf("the cluster changed the host:\n%s", strings.Join(d, "\n"))
	}
}

func testRegistered(t *testing.T, c *Cluster) {
	objs, err := c.NodeObjects()
	if err != nil {
		t.Fatal(err)
	}
	cluster := netip.MustParsePrefix(ClusterCIDR)
	seen := map[string]string{}
	for _, n := range c.Nodes {
		o := objs[n.Name]
		p, err := netip.ParsePrefix(o.Spec.PodCIDR)
		if err != nil || p.Bits() != NodeCIDRMaskSize || !cluster.Contains(p.Addr()) {
			t.Errorf("%s: podCIDR %q, want a /%d of %s", n.Name, o.Spec.PodCIDR, NodeCIDRMaskSize, ClusterCIDR)
		}
		if other, dup := seen[o.Spec.PodCIDR]; dup {
			t.Errorf("%s and %s share podCIDR %s", n.Name, other, o.Spec.PodCIDR)
		}
		seen[o.Spec.PodCIDR] = n.Name
		var internal string
		for _, a := range o.Status.Addresses {
			if a.Type == "InternalIP" {
				internal = a.Address
			}
		}
		if internal != n.IP.String() {
			t.Errorf("%s: InternalIP %q, want %s", n.Name, internal, n.IP)
		}
		ready := o.Condition("Ready")
		if ready.Status != "False" || !strings.Contains(ready.Message, "NetworkPluginNotReady") || !strings.Contains(ready.Message, "cni plugin not initialized") {
			t.Errorf("%s: Ready condition %+v, want False for want of a network (NetworkPluginNotReady, cni plugin not initialized)", n.Name, ready)
		}
	}
	if v := c.Kubectl(t, "version", "-o", "json"); !strings.Contains(v, `"gitVersion": "`+Version+`"`) {
		t.Errorf("kubectl version: want %s on both sides:\n%s", Version, v)
	}
}

// hostNetDaemonSet runs on every node (tolerating every taint), in the
// node's network namespace, with the node's /var/lib/overlayd and
// /run/netns mounted as a node agent's manifest mounts them (the latter
// HostToContainer, so that it sees pods' namespaces made after it started).
const hostNetDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: hostnet, namespace: default}
spec:
  selector: {matchLabels: {app: hostnet}}
  template:
    metadata: {labels: {app: hostnet}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 0
      containers:
      - name: c
        image: ` + BusyboxImage + `
        imagePullPolicy: Never
        command: [sh, -c, 'echo "$NODE_NAME" > /state/written-by && exec sleep infinity']
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        volumeMounts:
        - {name: state, mountPath: /state}
        - {name: netns, mountPath: /host-netns, mountPropagation: HostToContainer}
      volumes:
      - {name: state, hostPath: {path: /var/lib/overlayd}}
      - {name: netns, hostPath: {path: /run/netns}}
`

// podList is the part of a PodList the tests read.
type podList struct {
	Items []podObject `json:"items"`
}

type podObject struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string          `json:"phase"`
		PodIP      string          `json:"podIP"`
		Conditions []NodeCondition `json:"conditions"`
	} `json:"status"`
}

func testHostNetworkDaemonSet(t *testing.T, c *Cluster) {
	c.Apply(t, hostNetDaemonSet)
	c.Kubectl(t, "rollout", "status", "daemonset/hostnet", "--timeout=90s")
	var pods podList
	c.Get(t, "/api/v1/namespaces/default/pods?labelSelector=app%3Dhostnet", &pods)
	onNode := map[string]bool{}
	for _, p := range pods.Items {
		n := c.Node(p.Spec.NodeName)
		if n == nil || p.Status.Phase != "Running" || p.Status.PodIP != n.IP.String() {
			t.Errorf("pod %s: node %q, phase %s, IP %s: want Running with its node's IP", p.Metadata.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP)
			continue
		}
		onNode[n.Name] = true
		// Through the API server and the node's kubelet (InternalIP): the
		// pod sees its node's network namespace.
		out := c.Kubectl(t, "exec", p.Metadata.Name, "--", "ip", "-4", "addr", "show", "dev", "eth0")
		if !strings.Contains(out, n.IP.String()+"/24") {
			t.Errorf("pod %s on %s: eth0 is not the node's:\n%s", p.Metadata.Name, n.Name, out)
		}
		// Its hostPath /var/lib/overlayd is the node's own.
		if b, err := os.ReadFile(filepath.Join(n.StateDir, "written-by")); err != nil || string(b) != n.Name+"\n" {
			t.Errorf("%s: /var/lib/overlayd/written-by: %q, %v; want the node's name", n.Name, b, err)
		}
	}
	if len(onNode) != len(c.Nodes) {
		t.Errorf("DaemonSet pods on %v, want one on each of %d nodes", onNode, len(c.Nodes))
	}
}

func podManifest(name, nodeName string) string {
	node := ""
	if nodeName != "" {
		node = "\n  nodeName: " + nodeName
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:%s
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: %s
    imagePullPolicy: Never
    command: [sleep, infinity]
`, name, node, BusyboxImage)
}

func (c *Cluster) pod(t *testing.T, name string) podObject {
	t.Helper()
	var p podObject
	c.Get(t, "/api/v1/namespaces/default/pods/"+name, &p)
	return p
}

// installBridgeCNI installs the standard bridge plugin on n with n's
// podCIDR, as a network plugin's installer does: binaries first, then the
// conflist, atomically.
func installBridgeCNI(t *testing.T, n *Node) {
	t.Helper()
	for _, p := range bridgePlugins() {
		if err := copyFile(filepath.Join(StandardPlugins, p), filepath.Join(n.CNIBinDir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := strings.Replace(bridgeTemplate, "{{.PodCIDR}}", n.PodCIDR(t), 1)
	tmp := filepath.Join(n.CNIConfDir, ".10-bridge.conflist.tmp")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.CNIConfDir, "10-bridge.conflist")); err != nil {
		t.Fatal(err)
	}
}

func testPodsWaitForNetwork(t *testing.T, c *Cluster) {
	n1 := c.Nodes[0]
	c.Apply(t, podManifest("bound", n1.Name))
	c.Apply(t, podManifest("free", ""))
	// kubelet refuses the pod bound to node1: no network.
	Poll(t, 60*time.Second, "event NetworkNotReady for pod bound", func() error {
		out, err := c.KubectlWith(c.AdminKubeconfig, "get", "events", "--field-selector", "involvedObject.name=bound",
			"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "NetworkNotReady: network is not ready") && strings.Contains(l, "NetworkPluginNotReady") && strings.Contains(l, "cni plugin not initialized") {
				return nil
			}
		}
		return fmt.Errorf("events:\n%s", out)
	})
	// The scheduler has nowhere to put the free one: every node has the
	// not-ready taint.
	Poll(t, 30*time.Second, "pod free unschedulable", func() error {
		p := c.pod(t, "free")
		for _, cond := range p.Status.Conditions {
			if cond.Type == "PodScheduled" && cond.Status == "False" && cond.Reason == "Unschedulable" &&
				strings.Contains(cond.Message, fmt.Sprintf("%d node(s) had untolerated taint", len(c.Nodes))) {
				return nil
			}
		}
		return fmt.Errorf("pod free: %+v", p.Status)
	})
	objs, err := c.NodeObjects()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		tainted := false
		for _, taint := range objs[n.Name].Spec.Taints {
			tainted = tainted || taint.Key == "node.kubernetes.io/not-ready" && taint.Effect == "NoSchedule"
		}
		if !tainted {
			t.Errorf("%s: taints %+v, want node.kubernetes.io/not-ready:NoSchedule", n.Name, objs[n.Name].Spec.Taints)
		}
	}
	for _, name := range []string{"bound", "free"} {
		if p := c.pod(t, name); p.Status.Phase != "Pending" || p.Status.PodIP != "" {
			t.Fatalf("pod %s without a network: phase %s, IP %q", name, p.Status.Phase, p.Status.PodIP)
		}
	}

	began := time.Now()
	for _, n := range c.Nodes {
		installBridgeCNI(t, n)
	}
	c.WaitNodesReady(t)
	t.Logf("nodes Ready %v after their conflists appeared", time.Since(began).Round(time.Millisecond))
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod/bound", "pod/free", "--timeout=90s")
	objs, err = c.NodeObjects()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bound", "free"} {
		p := c.pod(t, name)
		cidr := netip.MustParsePrefix(objs[p.Spec.NodeName].Spec.PodCIDR)
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !cidr.Contains(ip) || ip == cidr.Addr().Next() {
			t.Errorf("pod %s on %s: IP %q, want one of the node's podCIDR %s", name, p.Spec.NodeName, p.Status.PodIP, cidr)
		}
		if out := c.Kubectl(t, "exec", name, "--", "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, p.Status.PodIP+"/") {
			t.Errorf("pod %s: eth0 lacks %s:\n%s", name, p.Status.PodIP, out)
		}
	}
}

// nsInode returns the inode of a namespace file or link.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// testNodeNamespaces: a process a test starts on a node runs in the node's
// network and mount namespaces and cgroup; in the mount namespace the
// node's paths are its own (its CNI config, the pods' network namespaces
// under /run/netns, which the host does not see) and the kernel tunables
// kubelet wants read as it wants them; Kill ends the process.
func testNodeNamespaces(t *testing.T, c *Cluster) {
	hostNetns, _ := os.ReadDir(rtnl.DefaultNetNSDir)
	for _, n := range c.Nodes {
		p := n.Start(t, "probe", "sleep", "infinity")
		proc := fmt.Sprintf("/proc/%d", p.Pid())
		if nsInode(t, proc+"/ns/net") != nsInode(t, n.NetNSPath) {
			t.Errorf("%s: the process is not in the node's network namespace", n.Name)
		}
		if nsInode(t, proc+"/ns/mnt") != nsInode(t, n.MountNS()) {
			t.Errorf("%s: the process is not in the node's mount namespace", n.Name)
		}
		if cg, _ := os.ReadFile(proc + "/cgroup"); !strings.Contains(string(cg), ":"+n.Cgroup+"/runtime\n") {
			t.Errorf("%s: the process's cgroups:\n%s", n.Name, cg)
		}
		if out := n.Run(t, "ls", "/etc/cni/net.d"); strings.TrimSpace(out) != "10-bridge.conflist" {
			t.Errorf("%s: /etc/cni/net.d holds %q, want the node's own conflist only", n.Name, out)
		}
		var podNetns []string
		for _, f := range strings.Fields(n.Run(t, "ls", "/run/netns")) {
			podNetns = append(podNetns, f)
			if _, err := os.Stat(n.MountNSPath("/run/netns/" + f)); err != nil {
				t.Errorf("%s: %v", n.Name, err)
			}
			for _, h := range hostNetns {
				if h.Name() == f {
					t.Errorf("%s: the pod network namespace %s is the host's", n.Name, f)
				}
			}
		}
		var pods podList
		c.Get(t, "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D"+n.Name, &pods)
		hostNet := 0
		for _, pod := range pods.Items {
			if pod.Status.PodIP == n.IP.String() {
				hostNet++
			}
		}
		if want := len(pods.Items) - hostNet; len(podNetns) != want {
			t.Errorf("%s: /run/netns holds %v, want one per pod with a network of its own (%d)", n.Name, podNetns, want)
		}
		if ready := strings.Fields(n.Crictl(t, "pods", "--state", "ready", "-q")); len(ready) != len(pods.Items) {
			t.Errorf("%s: crictl lists %d ready pod sandboxes, the API server %d pods", n.Name, len(ready), len(pods.Items))
		}
		// The DaemonSet's pod sees them through its HostToContainer mount
		// of /run/netns, though they were made after it started.
		for _, pod := range pods.Items {
			if pod.Status.PodIP != n.IP.String() {
				continue
			}
			seen := strings.Fields(c.Kubectl(t, "exec", pod.Metadata.Name, "--", "ls", "/host-netns"))
			if strings.Join(seen, " ") != strings.Join(podNetns, " ") {
				t.Errorf("%s: pod %s sees %v in the node's /run/netns, want %v", n.Name, pod.Metadata.Name, seen, podNetns)
			}
		}
		for key, want := range kernelTunables() {
			if got := strings.TrimSpace(n.Run(t, "cat", "/proc/sys/"+key)); got != want {
				t.Errorf("%s: %s reads %q, want %q", n.Name, key, got, want)
			}
		}
		p.Kill()
		if p.Running() {
			t.Errorf("%s: the process runs after Kill", n.Name)
		}
	}
}

// serviceAccountRBAC is a ClusterRole like a node agent's: read Nodes,
// patch their status, nothing else.
const serviceAccountRBAC = `apiVersion: v1
kind: Namespace
metadata: {name: kubetest}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: agent, namespace: kubetest}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kubetest-agent}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kubetest-agent}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kubetest-agent}
subjects:
- {kind: ServiceAccount, name: agent, namespace: kubetest}
`

func testServiceAccountRBAC(t *testing.T, c *Cluster) {
	c.Apply(t, serviceAccountRBAC)
	token := c.ServiceAccountToken(t, "kubetest", "agent")
	kc := c.KubeconfigFor(t, token)
	node := c.Nodes[0].Name
	patch := `{"metadata":{"annotations":{"kubetest.overlaynet.io/probe":"1"}}}`
	for _, tc := range []struct {
		args    []string
		allowed bool
	}{
		{[]string{"get", "nodes"}, true},
		{[]string{"get", "node", node, "-o", "name"}, true},
		{[]string{"patch", "node", node, "--type=merge", "-p", patch}, false},
		{[]string{"get", "node", node, "--subresource=status"}, false},
		{[]string{"get", "pods", "--all-namespaces"}, false},
		{[]string{"get", "secrets", "--namespace", "kubetest"}, false},
		{[]string{"delete", "node", node, "--dry-run=server"}, false},
	} {
		out, err := c.KubectlWith(kc, tc.args...)
		switch {
		case tc.allowed && err != nil:
			t.Errorf("kubectl %s as the service account: %v", strings.Join(tc.args, " "), err)
		case !tc.allowed && err == nil:
			t.Errorf("kubectl %s as the service account was allowed:\n%s", strings.Join(tc.args, " "), out)
		case !tc.allowed && !strings.Contains(err.Error(), "Forbidden") && !strings.Contains(err.Error(), "forbidden"):
			t.Errorf("kubectl %s as the service account: %v, want Forbidden", strings.Join(tc.args, " "), err)
		}
	}
	// A status patch as an agent sends it (kubectl patch GETs first, which
	// the role does not grant).
	if status, body, err := c.Request("PATCH", "/api/v1/nodes/"+node+"/status", token, []byte(patch)); err != nil || status != 200 {
		t.Errorf("PATCH nodes/%s/status with the token: %d %v: %.300s", node, status, err, body)
	}
	var o NodeObject
	c.Get(t, "/api/v1/nodes/"+node, &o)
	if o.Metadata.Annotations["kubetest.overlaynet.io/probe"] != "1" {
		t.Errorf("the status patch did not land: annotations %v", o.Metadata.Annotations)
	}
	// The same token over plain HTTPS.
	for path, want := range map[string]int{"/api/v1/nodes": 200, "/api/v1/nodes?watch=1&timeoutSeconds=1": 200,
		"/api/v1/namespaces/kubetest/secrets": 403, "/api/v1/pods": 403} {
		status, body, err := c.Request("GET", path, token, nil)
		if err != nil || status != want {
			t.Errorf("GET %s with the token: %d %v (%.200s), want %d", path, status, err, body, want)
		}
	}
	if status, _, _ := c.Request("GET", "/api/v1/nodes", "not-a-token", nil); status != 401 {
		t.Errorf("GET /api/v1/nodes with a bad token: %d, want 401", status)
	}
}

// testDeleteNode: kubectl delete node removes the Node, and its kubelet,
// still running, does not register it again on its own; the node, moved
// to another address and its kubelet restarted, registers again with a
// podCIDR and its new InternalIP, turns Ready and runs its DaemonSet pod.
// (The pod garbage collector would remove a deleted node's pods after 40 s
// of quarantine: longer than this test waits.)
func testDeleteNode(t *testing.T, c *Cluster) {
	last := c.Nodes[len(c.Nodes)-1]
	c.DeleteNode(t, last)
	for range 3 {
		if _, err := c.KubectlWith(c.AdminKubeconfig, "get", "node", last.Name); err == nil || !strings.Contains(err.Error(), "NotFound") {
			t.Fatalf("node %s after its deletion: %v, want NotFound", last.Name, err)
		}
		time.Sleep(time.Second)
	}
	last.SetIP(t, netip.MustParseAddr("192.0.2.250"))
	c.WaitNodeRegistered(t, last)
	c.WaitNodesReady(t)
	c.Kubectl(t, "rollout", "status", "daemonset/hostnet", "--timeout=60s")
}

// TestVersionIsGoMods: the lab's release is the one of the k8s.io modules
// in go.mod (scripts/kube-build.sh builds that one), when go.mod has them.
func TestVersionIsGoMods(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == "k8s.io/client-go" {
			v := f[1]
			if want := "v0." + strings.TrimPrefix(Version, "v1."); v != want {
				t.Errorf("go.mod has k8s.io/client-go %s, the lab runs %s (want client-go %s)", v, Version, want)
			}
			return
		}
	}
	t.Logf("go.mod has no k8s.io/client-go yet; the lab runs %s", Version)
}
