package bench

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// programChunk is how many requests one batch holds: the resolver's
// BatchMax.
const programChunk = 512

// programEntry is the i-th resolution as the resolver programs it: its
// PERMANENT neighbour entry marked with the resolver's protocol, and its
// PERMANENT extern_learn FDB entry carrying the VNI and port.
type programEntry struct {
	arp rtnl.ARPEntry
	fdb rtnl.FDBEntry
}

// programEntries returns the resolveN resolutions for vxlan.
func programEntries(vxlan int32) []programEntry {
	out := make([]programEntry, resolveN)
	for i := range out {
		mac := resolveMAC(i)
		out[i] = programEntry{
			arp: rtnl.ARPEntry{Ifindex: vxlan, IP: resolveIP(i), MAC: mac, Protocol: 214},
			fdb: rtnl.FDBEntry{Ifindex: vxlan, MAC: mac, Dst: resolveVTEP(i), VNI: 42, Port: 4789,
				HasVNI: true, HasPort: true, Flags: rtnl.NeighFlagExtLearned},
		}
	}
	return out
}

// programRequests encodes the resolveN resolutions for vxlan as rtnl
// messages: for the i-th IP its neighbour entry, then its FDB entry, as the
// resolver sends them.
func programRequests(vxlan int32) []*rtnl.NeighMessage {
	out := make([]*rtnl.NeighMessage, 0, 2*resolveN)
	for _, e := range programEntries(vxlan) {
		out = append(out, e.arp.Message(), e.fdb.Message())
	}
	return out
}

// programImpls are ways to put the requests in the kernel.
var programImpls = []struct {
	name string
	run  func(tb testing.TB, lab *missgen.Lab, reqs []*rtnl.NeighMessage) func()
}{
	// rtnl.Conn.ExecuteBatch per 512 requests, encoded from the entries in
	// place as the resolver does (Batch.NeighReplaceARP/FDB): one sendmsg,
	// an ACK for the last request only (the kernel reports failures on its
	// own).
	{"rtnl-batch", func(tb testing.TB, lab *missgen.Lab, _ []*rtnl.NeighMessage) func() {
		c := nstest.Dial(tb, lab.Overlay)
		entries := programEntries(lab.VxlanIndex)
		var b rtnl.Batch
		return func() {
			for i := 0; i < len(entries); i += programChunk / 2 {
				b.Reset()
				for _, e := range entries[i:min(i+programChunk/2, len(entries))] {
					if err := b.NeighReplaceARP(e.arp); err != nil {
						tb.Fatal(err)
					}
					if err := b.NeighReplaceFDB(e.fdb); err != nil {
						tb.Fatal(err)
					}
				}
				if err := c.ExecuteBatch(&b); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}},
	// mdlayher/netlink's SendMessages per 512 requests, each asking for an
	// ACK, then one Receive per ACK: batching as it is usually done.
	{"mdlayher-batch-ack-each", func(tb testing.TB, lab *missgen.Lab, reqs []*rtnl.NeighMessage) func() {
		nsh, err := netns.GetFromPath(lab.Overlay.Path())
		if err != nil {
			tb.Fatal(err)
		}
		c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(nsh)})
		nsh.Close()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		// The same forced receive buffer (SO_RCVBUFFORCE, as root) as an
		// rtnl.Conn: room for the ACKs of a chunk (the kernel's default
		// holds about 270).
		rc, err := c.SyscallConn()
		if err != nil {
			tb.Fatal(err)
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rtnl.DefaultReceiveBuffer)
		}); err != nil || serr != nil {
			tb.Fatal(err, serr)
		}
		msgs := make([]netlink.Message, len(reqs))
		for i, m := range reqs {
			body, err := m.MarshalBinary()
			if err != nil {
				tb.Fatal(err)
			}
			msgs[i] = netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWNEIGH,
				Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace}, Data: body}
		}
		return func() {
			for i := 0; i < len(msgs); i += programChunk {
				chunk := msgs[i:min(i+programChunk, len(msgs))]
				if _, err := c.SendMessages(chunk); err != nil {
					tb.Fatal(err)
				}
				for acked := 0; acked < len(chunk); {
					got, err := c.Receive()
					if err != nil {
						tb.Fatal(err)
					}
					acked += len(got)
				}
			}
		}
	}},
	// rtnl.Conn.NeighReplace per request: a sendmsg and an ACK each.
	{"rtnl-one-at-a-time", func(tb testing.TB, lab *missgen.Lab, reqs []*rtnl.NeighMessage) func() {
		c := nstest.Dial(tb, lab.Overlay)
		return func() {
			for _, m := range reqs {
				if err := c.NeighReplace(m); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}},
	// vishvananda/netlink's NeighSet per request, as libnetwork did.
	{"vishvananda-one-at-a-time", func(tb testing.TB, lab *missgen.Lab, reqs []*rtnl.NeighMessage) func() {
		nsh, err := netns.GetFromPath(lab.Overlay.Path())
		if err != nil {
			tb.Fatal(err)
		}
		h, err := vnl.NewHandleAt(nsh)
		nsh.Close()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(h.Close)
		neighs := make([]*vnl.Neigh, len(reqs))
		for i, m := range reqs {
			n := &vnl.Neigh{LinkIndex: int(m.Ifindex), Family: int(m.Family), State: vnl.NUD_PERMANENT,
				IP: net.IP(m.Dst.AsSlice()), HardwareAddr: net.HardwareAddr(m.LLAddr)}
			if m.Family == unix.AF_BRIDGE {
				n.Flags = vnl.NTF_SELF
			}
			neighs[i] = n
		}
		return func() {
			for _, n := range neighs {
				if err := h.NeighSet(n); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}},
}

// BenchmarkProgram measures putting resolutions in the kernel, the part of
// a resolver's work that is neither receiving misses nor looking them up:
// one op programs the neighbour entry and the FDB entry of 10,000 IPs
// (20,000 RTM_NEWNEIGH requests) into a fresh lab's vxlan1, with nobody
// listening to RTNLGRP_NEIGH. Reported per IP: wall time (ns/ip) and the
// process's CPU time, user and kernel (cpu-us/ip). Every entry is checked
// by a dump after each op, outside the timer.
func BenchmarkProgram(b *testing.B) {
	nstest.RequireRoot(b)
	for _, impl := range programImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			var wall, cpu time.Duration
			for range b.N {
				b.StopTimer()
				lab := missgen.NewLab(b)
				reqs := programRequests(lab.VxlanIndex)
				program := impl.run(b, lab, reqs)
				cpu0 := processCPU(b)
				b.StartTimer()
				t0 := time.Now()
				program()
				wall += time.Since(t0)
				b.StopTimer()
				cpu += processCPU(b) - cpu0
				if err := checkProgrammed(b, lab); err != nil {
					b.Fatalf("%s: %v", impl.name, err)
				}
			}
			n := float64(b.N * resolveN)
			b.ReportMetric(float64(wall.Nanoseconds())/n, "ns/ip")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/n, "cpu-us/ip")
		})
	}
}

// checkProgrammed dumps lab's vxlan1 and checks that every IP has its
// neighbour and FDB entries with the registry's values.
func checkProgrammed(tb testing.TB, lab *missgen.Lab) error {
	c := nstest.Dial(tb, lab.Overlay)
	neigh, fdb := make([]bool, registryN), make([]bool, registryN)
	err := c.NeighDump(rtnl.NeighFilter{Family: unix.AF_INET, Ifindex: lab.VxlanIndex}, func(m *rtnl.NeighMessage) error {
		if i, ok := ipIndex(m.Dst); ok {
			mac, _ := m.MAC()
			neigh[i] = mac == resolveMAC(i) && m.State&rtnl.NeighPermanent != 0
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: lab.VxlanIndex}, func(m *rtnl.NeighMessage) error {
		mac, _ := m.MAC()
		if i, ok := macIndex(mac); ok && m.Flags&rtnl.NeighFlagSelf != 0 {
			fdb[i] = m.Dst == resolveVTEP(i)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range resolveN {
		if !neigh[i] || !fdb[i] {
			return fmt.Errorf("IP #%d (%s): neighbour entry %v, FDB entry %v", i, resolveIP(i), neigh[i], fdb[i])
		}
	}
	return nil
}
