//go:build !noetcd

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
)

// tunnelSubnet is the encrypted labs' tunnel subnet (the default,
// 169.254.32.0/19, is outside the tests' address ranges).
const tunnelSubnet = "10.99.0.0/16"

// encryptFlags are the labs' create flags.
var encryptFlags = []string{"--encrypt", "--tunnel-subnet", tunnelSubnet}

// encLab is simulated nodes 192.0.2.2, .3, ... with `overlayd create
// --encrypt`, on an underlay switch: a bridge "ul" in a netns of its own
// (192.0.2.1), where captures run and, with etcd, etcd does.
type encLab struct {
	t     *testing.T
	ctl   string // the underlay switch's netns
	store string
	srv   *etcdtest.Server // nil for the directory store
	nodes []*simNode
	ds    []*daemon
}

// newEncLab makes an encrypted lab of n nodes on store "dir" or "etcd"
// (leases of 3 s), each with one container c<i> at 198.51.100.<10+i>.
func newEncLab(t *testing.T, n int, store string) *encLab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "tcpdump", "ping")
	l := &encLab{t: t}
	_, l.ctl = nstest.NetNS(t, "ws")
	nstest.Run(t, l.ctl, "ip", "link", "add", "ul", "address", "02:00:c0:00:02:01", "type", "bridge")
	nstest.Run(t, l.ctl, "ip", "addr", "add", "192.0.2.1/24", "dev", "ul")
	nstest.Run(t, l.ctl, "ip", "link", "set", "ul", "up")
	switch store {
	case "dir":
		l.store = "dir:" + t.TempDir()
	case "etcd":
		etcdtest.Require(t)
		l.srv = etcdtest.Start(t, etcdtest.Options{NetNS: filepath.Join(rtnl.DefaultNetNSDir, l.ctl), Host: "192.0.2.1"})
		l.store = l.srv.URL("ovt", "ttl=3s")
	}
	for i := range n {
		l.addNode(i)
	}
	return l
}

// addNode makes node i (192.0.2.<i+2>) with its container, created but
// no daemon yet.
func (l *encLab) addNode(i int) *simNode {
	nd := l.createNode(i)
	nd.ok("attach", l.ctrName(i), "--ip", l.ctrIP(i)+"/24")
	return nd
}

// createNode makes node i on the switch and runs create --encrypt on it.
func (l *encLab) createNode(i int) *simNode {
	nd := l.plugNode(i)
	nd.ok(append([]string{"create", "--local", l.underlay(i), "--no-egress"}, encryptFlags...)...)
	return nd
}

// plugNode makes node i on the switch, with nothing created.
func (l *encLab) plugNode(i int) *simNode {
	t := l.t
	nd := newSimNode(t, fmt.Sprintf("w%d", i+1), l.store)
	port := fmt.Sprintf("p%d", i+1)
	nd.ip("link", "add", "u0", "type", "veth", "peer", "name", port, "netns", l.ctl)
	nstest.Run(t, l.ctl, "ip", "link", "set", port, "master", "ul", "up")
	nd.ip("addr", "add", l.underlay(i)+"/24", "dev", "u0")
	nd.ip("link", "set", "u0", "up")
	l.nodes = append(l.nodes, nd)
	l.ds = append(l.ds, nil)
	return nd
}

func (l *encLab) underlay(i int) string { return fmt.Sprintf("192.0.2.%d", i+2) }
func (l *encLab) ctrName(i int) string  { return fmt.Sprintf("c%d", i+1) }
func (l *encLab) ctrIP(i int) string    { return fmt.Sprintf("198.51.100.%d", 10+i) }

// start starts node i's daemon.
func (l *encLab) start(i int, args ...string) *daemon {
	l.ds[i] = l.nodes[i].startDaemon(append([]string{"--reconcile", "2s"}, args...)...)
	return l.ds[i]
}

// ping pings container j's address from container i once, waiting wait.
func (l *encLab) ping(i, j int, wait string) error {
	_, err := l.nodes[i].in(l.ctrName(i), "ping", "-n", "-q", "-c1", "-W"+wait, l.ctrIP(j))
	return err
}

// reachAll has every container ping every other (at most 3 tries of 2 s
// each, all pairs at once) and fails the test for a pair that never got an
// answer.
func (l *encLab) reachAll() {
	l.t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for i := range l.nodes {
		for j := range l.nodes {
			if i == j {
				continue
			}
			wg.Go(func() {
				for range 3 {
					if l.ping(i, j, "2") == nil {
						return
					}
				}
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s -> %s", l.ctrIP(i), l.ctrIP(j)))
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		var b strings.Builder
		for i, n := range l.nodes {
			fmt.Fprintf(&b, "node %d status:\n%s\n", i+1, n.ok("status"))
			if l.ds[i] != nil {
				fmt.Fprintf(&b, "node %d daemon:\n%s\n", i+1, l.ds[i])
			}
			dl, _ := os.ReadFile(filepath.Join(n.state, "wireguard", wireguard.ProcessLogFile))
			fmt.Fprintf(&b, "node %d device log:\n%s\n", i+1, dl)
		}
		l.t.Fatalf("pairs that never reached each other: %v\n%s", failed, b.String())
	}
}

// status returns node i's status.
func (l *encLab) status(i int) *overlay.Status {
	l.t.Helper()
	var st overlay.Status
	out := l.nodes[i].ok("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		l.t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Tunnel == nil {
		l.t.Fatalf("node %d status has no tunnel:\n%s", i+1, out)
	}
	return &st
}

// peerKeys returns the public keys of node i's WireGuard peers.
func (l *encLab) peerKeys(i int) map[string]bool {
	out := map[string]bool{}
	for _, p := range l.status(i).Tunnel.Peers {
		out[p.PublicKey.String()] = true
	}
	return out
}

// capture is a tcpdump running on the underlay switch's bridge.
type capture struct {
	cmd  *exec.Cmd
	file string
	done chan error
}

// startCapture captures every frame on the underlay switch to a file.
func (l *encLab) startCapture() *capture {
	l.t.Helper()
	c := &capture{file: filepath.Join(l.t.TempDir(), "underlay.pcap"), done: make(chan error, 1)}
	c.cmd = exec.Command("nsenter", "--net="+filepath.Join(rtnl.DefaultNetNSDir, l.ctl), "tcpdump", "-i", "any", "--immediate-mode", "-U", "-n", "-s", "0", "-w", c.file)
	var stderr bytes.Buffer
	c.cmd.Stderr = &stderr
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	l.t.Cleanup(func() { c.stop() })
	if !waitFor(5*time.Second, func() bool { return strings.Contains(stderr.String(), "listening on") }) {
		l.t.Fatalf("tcpdump did not start: %s", stderr.String())
	}
	return c
}

// stop ends the capture (SIGINT, so it flushes) and returns the file's
// bytes.
func (c *capture) stop() []byte {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	b, _ := os.ReadFile(c.file)
	return b
}

// decoded is tcpdump's reading of the capture, one line per packet.
func (c *capture) decoded(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", c.file, "-n", "-nn", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "reading from") || strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// checkCapture checks that what crossed the underlay between the nodes
// was WireGuard only: every IPv4 packet between two node addresses is UDP
// from and to the WireGuard port; no VXLAN (UDP 4789) at all; no container
// address or MAC anywhere in the raw capture (in clear they would be in
// an inner header). It returns the count of WireGuard packets.
func (l *encLab) checkCapture(c *capture) int {
	t := l.t
	raw := c.stop()
	lines := c.decoded(t)
	nodeIP := regexp.MustCompile(`^192\.0\.2\.([2-9]|[1-9][0-9])$`)
	ipPair := regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: `)
	wg := 0
	for _, line := range lines {
		if strings.Contains(line, "198.51.100.") || strings.Contains(line, ".4789") || strings.Contains(line, "VXLAN") {
			t.Errorf("the underlay carried a container address or VXLAN in clear: %s", line)
		}
		m := ipPair.FindStringSubmatch(line)
		if m == nil || !nodeIP.MatchString(m[1]) || !nodeIP.MatchString(m[3]) {
			continue // ARP, IPv6 neighbour discovery, etcd (192.0.2.1), continuation lines
		}
		if m[2] != "51820" || m[4] != "51820" || !strings.Contains(line, "UDP") {
			t.Errorf("a packet between two nodes that is not WireGuard: %s", line)
			continue
		}
		wg++
	}
	for i := range l.nodes {
		a := netip.MustParseAddr(l.ctrIP(i)).As4()
		mac := overlay.DeriveMAC(netip.MustParseAddr(l.ctrIP(i)))
		if bytes.Contains(raw, a[:]) || bytes.Contains(raw, mac[:]) {
			t.Errorf("the raw capture holds container %s's address or MAC", l.ctrIP(i))
		}
	}
	if wg == 0 {
		t.Errorf("no WireGuard packet crossed the underlay: %d lines captured:\n%s", len(lines), strings.Join(lines[:min(len(lines), 12)], "\n"))
	}
	return wg
}

// devicePid returns node i's WireGuard device process.
func (l *encLab) devicePid(i int) int {
	l.t.Helper()
	pid, running, err := wireguard.ProcessRunning(filepath.Join(l.nodes[i].state, "wireguard"))
	if err != nil || !running {
		l.t.Fatalf("node %d: no WireGuard device process: %v", i+1, err)
	}
	return pid
}
