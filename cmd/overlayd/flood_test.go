package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// metricValue returns the value of the sample line that starts with
// name+" " in a /metrics response (-1 if none).
func metricValue(metrics, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// countARPReplies counts the ARP replies eth0 receives in the namespace at
// path until stop is called, which returns the count.
func countARPReplies(t *testing.T, path string) (stop func() int) {
	t.Helper()
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var fd int
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], unix.ETH_P_ARP)
		proto := binary.NativeEndian.Uint16(b[:]) // network order, as the socket calls take it
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	var replies atomic.Int64
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 256)
		for !stopped.Load() {
			n, _, err := unix.Recvfrom(fd, b, 0)
			if err == nil && n >= 22 && b[20] == 0 && b[21] == 2 { // ARP opcode 2
				replies.Add(1)
			}
		}
	}()
	return func() int {
		stopped.Store(true)
		<-done
		unix.Close(fd)
		return int(replies.Load())
	}
}

// TestUnknownAddressesGetNoReply: a container sends 65,536 ARP requests for
// addresses of the overlay subnet the store does not hold. It gets no reply
// (the daemon answers a request only once it programmed an entry from a
// store record), and the daemon's store lookups stay within the scan
// budget (2,000/s plus 256 at once): capturing the requests costs no
// lookup. Then one request for an address the store holds (a remote
// container) gets its reply, the one reply the container sees.
func TestUnknownAddressesGetNoReply(t *testing.T) {
	n := newUnderlayNode(t, "fl")
	n.ok("create", "--local", "192.0.2.2", "--gateway", "10.64.0.1/10")
	n.ok("attach", "c", "--ip", missgen.ContainerIP().String()+"/10", "--mac", missgen.ContainerMAC().String())
	known := missgen.AddrAt(missgen.FirstTarget(), 70_000) // beyond the flood
	reg, err := dirstore.New(strings.TrimPrefix(n.store, "dir:"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(t.Context(), registry.Record{IP: known, MAC: ethaddr.MAC{0x02, 0x42, 0x0b, 0, 0x9c, 0x40},
		VTEP: netip.MustParseAddr("192.0.2.9")}); err != nil {
		t.Fatal(err)
	}
	n.startDaemon("--metrics", "127.0.0.1:9477")
	before := n.scrape("127.0.0.1:9477")
	const lookups = "overlayd_registry_lookup_duration_seconds_count"

	ctrPath := filepath.Join(n.dir, "c")
	stop := countARPReplies(t, ctrPath)
	cns, err := rtnl.OpenNetNS(ctrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cns.Close()
	g, err := missgen.New(cns, "eth0", missgen.ContainerMAC(), missgen.ContainerIP())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	t0 := time.Now()
	if sent, err := g.ARP(missgen.FirstTarget(), 1<<16); err != nil || sent != 1<<16 {
		t.Fatalf("sent %d requests: %v", sent, err)
	}
	time.Sleep(time.Second) // the daemon works through the flood
	flooded := n.scrape("127.0.0.1:9477")
	elapsed := time.Since(t0)
	if _, err := g.ARP(known, 1); err != nil {
		t.Fatal(err)
	}
	var after string
	waitFor(2*time.Second, func() bool {
		after = n.scrape("127.0.0.1:9477")
		return metricValue(after, "overlayd_requests_answered_total") >= 1
	})
	time.Sleep(100 * time.Millisecond) // the reply on its way
	replies := stop()

	used := metricValue(flooded, lookups) - metricValue(before, lookups)
	budget := 256 + 2000*elapsed.Seconds()
	t.Logf("flood of 65,536 in %v: %.0f lookups (budget %.0f), %.0f requests captured, %.0f answered, %d ARP replies",
		elapsed.Round(time.Millisecond), used, budget, metricValue(after, "overlayd_requests_captured_total"),
		metricValue(after, "overlayd_requests_answered_total"), replies)
	if v := metricValue(flooded, "overlayd_requests_answered_total"); v != 0 {
		t.Errorf("the daemon answered %v requests of the flood", v)
	}
	if replies != 1 {
		t.Errorf("the container received %d ARP replies, want 1 (for %s, the one address the store holds)", replies, known)
	}
	if v := metricValue(after, "overlayd_requests_answered_total"); v != 1 {
		t.Errorf("the daemon answered %v requests, want 1", v)
	}
	if used < 1 || used > budget {
		t.Errorf("the flood cost %.0f store lookups, want between 1 and the budget %.0f", used, budget)
	}
	if v := metricValue(after, "overlayd_requests_captured_total"); v < 1 {
		t.Errorf("no request captured (%v): the capture was not running, so the test proves nothing", v)
	}
}
