package kubetest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// NodePaths returns the paths every node has of its own: bind mounts, in
// the node's mount namespace, of directories under its Root. Everything
// else is the host's file system.
func NodePaths() []string {
	return []string{
		"/var/lib/kubelet",    // kubelet's root (the device-plugin socket path is fixed there)
		"/var/log",            // pod logs and /var/log/containers
		"/var/lib/containerd", // containerd's root
		"/run/containerd",     // containerd's state and socket
		"/run/netns",          // the pods' network namespaces (containerd's default netns dir)
		"/var/lib/cni",        // CNI plugins' state (host-local, result cache)
		"/opt/cni/bin",        // containerd's CNI bin_dir
		"/etc/cni/net.d",      // containerd's CNI conf_dir
		"/var/lib/overlayd",   // overlayd's state
		"/run/overlayd",       // overlayd's runtime files (/var/run is /run)
	}
}

// kernelTunables are the host-wide sysctls kubelet sets at start (the
// values it wants): each node's mount namespace lays a file holding the
// value over the /proc/sys entry, so kubelet finds it set and the host's
// stays as it was.
func kernelTunables() map[string]string {
	return map[string]string{
		"vm/overcommit_memory":      "1",
		"vm/panic_on_oom":           "0",
		"kernel/panic":              "10",
		"kernel/panic_on_oops":      "1",
		"kernel/keys/root_maxkeys":  "1000000",
		"kernel/keys/root_maxbytes": "25000000",
	}
}

// ContainerdSocket is the path of each node's containerd socket inside the
// node's mount namespace (Node.Command runs a client there).
const ContainerdSocket = "/run/containerd/containerd.sock"

// Node is a simulated Kubernetes node: a network namespace of its own on the
// lab's underlay switch and a mount namespace of its own (NodePaths), in
// which its containerd (CRI) and kubelet run, and kube-proxy if asked for.
type Node struct {
	// Name is the Node object's name (kubelet's --hostname-override).
	Name string
	// IP is the node's underlay address (kubelet's --node-ip), on eth0.
	IP netip.Addr
	// NetNS is the name of the node's network namespace (ip netns).
	NetNS string
	// NetNSPath is its path (nsenter --net=..., rtnl.OpenNetNS).
	NetNSPath string
	// Dir is the node's directory in the test's (configs, logs, Root).
	Dir string
	// Root backs the node's own paths: node path P is Root+P on the host.
	Root string
	// Cgroup is kubelet's cgroupRoot; the node's daemons run in its
	// "runtime" child.
	Cgroup string
	// CNIConfDir and CNIBinDir are the host paths of the node's
	// /etc/cni/net.d and /opt/cni/bin (containerd's conf_dir and bin_dir).
	CNIConfDir, CNIBinDir string
	// StateDir and RunDir are the host paths of the node's
	// /var/lib/overlayd and /run/overlayd.
	StateDir, RunDir string

	c         *Cluster
	cg        *nodeCgroup
	mu        sync.Mutex
	holder    *proc // keeps the mount namespace (sleep)
	ctrd      *proc
	kubelet   *proc
	kubeProxy *proc
	deleted   bool // its Node was deleted (Cluster.DeleteNode) and kubelet not restarted since
}

// Path returns the host path backing the node path p (one of NodePaths or
// below one).
func (n *Node) Path(p string) string { return filepath.Join(n.Root, p) }

// MountNS returns the path of the node's mount namespace (nsenter --mount=).
func (n *Node) MountNS() string { return fmt.Sprintf("/proc/%d/ns/mnt", n.holder.pid()) }

// MountNSPath returns the path at which the host sees node path p
// through the node's mount namespace (/proc/PID/root/p): what the node's
// processes see there, mounts included (a pod's network namespace under
// /run/netns, say).
func (n *Node) MountNSPath(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", n.holder.pid()), p)
}

// nsenter returns the argv prefix that runs a command in the node's
// network and mount namespaces.
func (n *Node) nsenter() []string {
	return []string{"nsenter", "--net=" + n.NetNSPath, "--mount=" + n.MountNS(), "--"}
}

// Command returns a command that runs in the node's network and mount
// namespaces, as a process of the node would (not in its cgroup).
func (n *Node) Command(name string, args ...string) *exec.Cmd {
	return n.CommandContext(context.Background(), name, args...)
}

// CommandContext is Command with a context that kills the command.
func (n *Node) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append(n.nsenter(), name)
	return exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
}

// Run runs a command on the node (Command) and returns its standard
// output; a failure fails t, with the command's standard error.
func (n *Node) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Output runs a command on the node (Command) and returns its standard
// output, or an error carrying its standard error.
func (n *Node) Output(name string, args ...string) (string, error) {
	return output(n.Command(name, args...))
}

// Crictl runs crictl against the node's containerd and returns its output.
func (n *Node) Crictl(t testing.TB, args ...string) string {
	t.Helper()
	return n.Run(t, filepath.Join(n.c.Bin, "crictl"), n.crictlArgs(args)...)
}

// crictlArgs are crictl's arguments for args against the node's containerd.
func (n *Node) crictlArgs(args []string) []string {
	return append([]string{"--runtime-endpoint", "unix://" + ContainerdSocket, "--timeout", "20s"}, args...)
}

// RemovePods removes every pod sandbox of the node (crictl rmp --all
// --force), trying again for up to 20 s while it fails: kubelet may be
// starting a container of a pod meanwhile, which containerd refuses to
// remove until it started ("container is in starting state").
func (n *Node) RemovePods(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := n.Output(filepath.Join(n.c.Bin, "crictl"), n.crictlArgs([]string{"rmp", "--all", "--force"})...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ImportImage imports an image archive (docker-archive or OCI layout, as
// internal/ociarchive writes) into the node's containerd, where kubelet
// finds it (namespace k8s.io), as an operator loads an offline image.
func (n *Node) ImportImage(t testing.TB, archive string) {
	t.Helper()
	if err := n.importImage(archive); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) importImage(archive string) error {
	_, err := n.Output("ctr", "--address", ContainerdSocket, "--namespace", "k8s.io", "images", "import", archive)
	if err != nil {
		return fmt.Errorf("kubetest: node %s: import %s: %w", n.Name, archive, err)
	}
	return nil
}

// setUp makes the node's directories, cgroups and mount namespace and
// starts its containerd; kubelet starts later (startKubelet).
func (n *Node) setUp() error {
	for _, p := range NodePaths() {
		if err := os.MkdirAll(n.Path(p), 0o755); err != nil {
			return err
		}
		// The mount point on the host: the standard path, created empty
		// when missing and never removed (removing a directory detaches
		// the mounts other namespaces hold on it).
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("kubetest: mount point %s: %w", p, err)
		}
	}
	var err error
	if n.cg, err = newNodeCgroup(n.Cgroup); err != nil {
		return err
	}
	if err := n.startHolder(); err != nil {
		return err
	}
	return n.startContainerd()
}

// cgroupJoin returns argv prefixed with a shell that puts itself into the
// node's runtime cgroup in every v1 hierarchy and then execs argv (the pid
// stays the same), so that everything the process forks later — container
// shims — is in the node's cgroup from the start.
func (n *Node) cgroupJoin(argv []string) []string {
	var s strings.Builder
	for _, f := range n.cg.procsFiles() {
		fmt.Fprintf(&s, "echo $$ > %s && ", shellQuote(f))
	}
	s.WriteString(`exec "$@"`)
	return append([]string{"sh", "-c", s.String(), "sh"}, argv...)
}

// startHolder starts the process whose mount namespace is the node's: a
// private copy of the host's with NodePaths and the kernel tunables bind
// mounted, then made shared within itself (as on a systemd host, so that a
// pod's HostToContainer mounts see the node's later mounts).
func (n *Node) startHolder() error {
	var s strings.Builder
	s.WriteString("set -e\n")
	for _, p := range NodePaths() {
		fmt.Fprintf(&s, "mount --bind %s %s\n", shellQuote(n.Path(p)), shellQuote(p))
	}
	sysctlDir := filepath.Join(n.Dir, "sysctl")
	if err := os.MkdirAll(sysctlDir, 0o755); err != nil {
		return err
	}
	for key, val := range kernelTunables() {
		f := filepath.Join(sysctlDir, strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(f, []byte(val+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&s, "mount --bind %s %s\n", shellQuote(f), shellQuote("/proc/sys/"+key))
	}
	ready := filepath.Join(n.Dir, "mountns.ready")
	fmt.Fprintf(&s, "mount --make-rshared /\ntouch %s\nexec sleep infinity\n", shellQuote(ready))
	argv := n.cgroupJoin([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", s.String()})
	var err error
	if n.holder, err = startProc(n.Name+" mount namespace", filepath.Join(n.Dir, "mountns.log"), argv); err != nil {
		return err
	}
	return waitFor(10*time.Second, 10*time.Millisecond, func() (error, error) {
		if !n.holder.running() {
			return n.holder.exitErr(), nil
		}
		_, err := os.Stat(ready)
		return nil, err
	})
}

// startContainerd writes the node's containerd config and starts it in the
// node's namespaces, and waits until its socket answers.
func (n *Node) startContainerd() error {
	conf := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(conf, []byte(n.containerdConfig()), 0o644); err != nil {
		return err
	}
	argv := n.cgroupJoin(append(n.nsenter(), "containerd", "--config", conf))
	var err error
	if n.ctrd, err = startProc(n.Name+" containerd", filepath.Join(n.Dir, "containerd.log"), argv); err != nil {
		return err
	}
	sock := n.MountNSPath(ContainerdSocket)
	return waitFor(20*time.Second, 20*time.Millisecond, func() (error, error) {
		if !n.ctrd.running() {
			return n.ctrd.exitErr(), nil
		}
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			return nil, err
		}
		c.Close()
		return nil, nil
	})
}

// startKubelet starts the node's kubelet (configs written by the cluster).
func (n *Node) startKubelet() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	argv := n.cgroupJoin(append(n.nsenter(), filepath.Join(n.c.Bin, "kubelet"),
		"--config", filepath.Join(n.Dir, "kubelet.json"),
		"--kubeconfig", filepath.Join(n.Dir, "kubelet.kubeconfig"),
		"--hostname-override", n.Name,
		"--node-ip", n.IP.String()))
	argv = append(argv, n.c.opts.KubeletArgs...)
	var err error
	n.kubelet, err = startProc(n.Name+" kubelet", filepath.Join(n.Dir, "kubelet.log"), argv)
	return err
}

// startKubeProxy starts kube-proxy in nftables mode in the node's
// namespaces: it programs the node's netns only, and sets no conntrack
// sysctl (nf_conntrack_max and the hash size are host-wide).
func (n *Node) startKubeProxy() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	argv := n.cgroupJoin(append(n.nsenter(), filepath.Join(n.c.Bin, "kube-proxy"),
		"--config", filepath.Join(n.Dir, "kube-proxy.json")))
	var err error
	n.kubeProxy, err = startProc(n.Name+" kube-proxy", filepath.Join(n.Dir, "kube-proxy.log"), argv)
	return err
}

// RestartKubelet stops the node's kubelet and starts it again (its pods
// keep running, as on a real node); a kubelet whose Node was deleted
// registers it again.
func (n *Node) RestartKubelet(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	n.kubelet.stop(10 * time.Second)
	n.deleted = false
	n.mu.Unlock()
	if err := n.startKubelet(); err != nil {
		t.Fatal(err)
	}
}

// SetIP moves the node to another underlay address: eth0 readdressed,
// kubelet (and kube-proxy) restarted with it (the Node's InternalIP
// follows); with Options.BridgeCNI the routes between the nodes' podCIDRs
// follow too, once the Node is registered again.
func (n *Node) SetIP(t testing.TB, ip netip.Addr) {
	t.Helper()
	n.Run(t, "ip", "addr", "del", n.IP.String()+"/24", "dev", "eth0")
	n.Run(t, "ip", "addr", "add", ip.String()+"/24", "dev", "eth0")
	n.Run(t, "ip", "route", "replace", "default", "via", APIServerIP)
	n.IP = ip
	n.RestartKubelet(t)
	if n.c.opts.KubeProxy {
		n.mu.Lock()
		n.kubeProxy.stop(5 * time.Second)
		n.mu.Unlock()
		if err := n.startKubeProxy(); err != nil {
			t.Fatal(err)
		}
	}
	if n.c.opts.BridgeCNI {
		n.c.WaitNodeRegistered(t, n)
		n.c.routePodCIDRs(t)
	}
}

// tearDown stops the node: kube-proxy and kubelet, then every pod through
// the CRI (containerd calls the CNI plugins' DEL), containerd, whatever is
// left in the node's cgroups, and the mount namespace with all its mounts.
// It returns what it could not clean.
func (n *Node) tearDown() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kubeProxy.stop(5 * time.Second)
	n.kubelet.stop(5 * time.Second)
	var errs []string
	if n.ctrd != nil && n.ctrd.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		// Each call may take 20 s (crictlArgs): a pod's CNI DEL can take
		// longer than crictl's default 2 s with every node tearing down at
		// once on a busy machine.
		cmd := n.CommandContext(ctx, filepath.Join(n.c.Bin, "crictl"), n.crictlArgs([]string{"rmp", "--all", "--force"})...)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("crictl rmp: %v: %s", err, out))
		}
		cancel()
	}
	n.ctrd.stop(10 * time.Second)
	n.holder.stop(time.Second)
	if n.cg != nil {
		if err := n.cg.remove(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if errs != nil {
		return fmt.Errorf("kubetest: node %s: %s", n.Name, strings.Join(errs, "; "))
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
