//go:build linux

package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// kernelDir holds the captured kernel messages (see testdata/kernel/README.md).
const kernelDir = "../testdata/kernel"

// Fixed content of the capture topology, so that recaptures give the same fields.
const (
	capBridgeMAC = "02:42:c6:33:64:01"
	capCtnMAC    = "02:42:c6:33:64:02" // eth0 in the container netns
	capFDBMAC    = "02:42:c6:33:64:03" // bridge fdb add ... (fdb_echo)
	capProbeMAC  = "02:42:c6:33:64:06" // stale entry on br0 (app_solicit_probe)
	capL2MissMAC = "02:42:c6:33:64:07" // neighbour of the container without FDB entry (l2miss)
	capVxlanMAC  = "02:42:c6:33:64:0a"
	capVethMAC   = "02:42:c6:33:64:0b" // veth1, the host end in the overlay netns
	capL3MissV6  = "fe80::42:c6ff:fe33:6409"
	capHostNSID  = 1 // nsid of the "host" netns as seen from the overlay netns
	capCtnNSID   = 2 // nsid of the container netns as seen from the overlay netns
)

var (
	capL3MissIP = netip.MustParseAddr("198.51.100.9")
	capL2MissIP = netip.MustParseAddr("198.51.100.7")
	capSolicit  = netip.MustParseAddr("198.51.100.8")
	capProbeIP  = netip.MustParseAddr("198.51.100.6")
	capBridgeIP = netip.MustParseAddr("198.51.100.1")
)

// rawSock is a bare NETLINK_ROUTE socket: the capture must see the kernel's
// bytes exactly, without going through the code under test.
type rawSock struct {
	fd  int
	seq uint32
}

// openRawSock opens a raw rtnetlink socket inside ns joined to groups.
func openRawSock(t *testing.T, ns *rtnl.NetNS, groups ...int) *rawSock {
	t.Helper()
	s := &rawSock{fd: -1, seq: 1000}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		for _, g := range groups {
			if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g); err != nil {
				return err
			}
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if s.fd >= 0 {
		t.Cleanup(func() { unix.Close(s.fd) })
	}
	if err != nil {
		t.Fatalf("raw netlink socket: %v", err)
	}
	return s
}

// waitFor reads until a message satisfies match and returns its full bytes
// (header included, exactly as received).
func (s *rawSock) waitFor(t *testing.T, what string, match func(h rtnl.Header, data []byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: recvfrom: %v", what, err)
		}
		b := buf[:n]
		for len(b) >= rtnl.HeaderLen {
			h, data, err := rtnl.ParseHeader(b)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if match(h, data) {
				return bytes.Clone(b[:h.Length])
			}
			next := rtnl.Align(int(h.Length))
			if next > len(b) {
				break
			}
			b = b[next:]
		}
	}
	t.Fatalf("%s: no matching message from the kernel within 8s", what)
	return nil
}

// request sends one request and returns the first reply to it that
// satisfies match.
func (s *rawSock) request(t *testing.T, what string, typ, flags uint16, body []byte, match func(h rtnl.Header, data []byte) bool) []byte {
	t.Helper()
	s.seq++
	seq := s.seq
	msg := rtnl.AppendHeader(nil, rtnl.Header{
		Length: uint32(rtnl.HeaderLen + len(body)), Type: typ,
		Flags: unix.NLM_F_REQUEST | flags, Sequence: seq,
	})
	msg = append(msg, body...)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatalf("%s: sendto: %v", what, err)
	}
	return s.waitFor(t, what, func(h rtnl.Header, data []byte) bool {
		if h.Sequence != seq {
			return false
		}
		if h.Type == unix.NLMSG_ERROR && len(data) >= 4 && binary.NativeEndian.Uint32(data) != 0 {
			t.Fatalf("%s: kernel error %v", what, unix.Errno(-int32(binary.NativeEndian.Uint32(data))))
		}
		return match(h, data)
	})
}

// requestAck sends one request with NLM_F_ACK and returns the kernel's
// NLMSG_ERROR answer (an error or a success ACK) as received.
func (s *rawSock) requestAck(t *testing.T, what string, typ, flags uint16, body []byte, match func(h rtnl.Header, data []byte) bool) []byte {
	t.Helper()
	s.seq++
	seq := s.seq
	msg := rtnl.AppendHeader(nil, rtnl.Header{
		Length: uint32(rtnl.HeaderLen + len(body)), Type: typ,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags, Sequence: seq,
	})
	msg = append(msg, body...)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatalf("%s: sendto: %v", what, err)
	}
	return s.waitFor(t, what, func(h rtnl.Header, data []byte) bool { return h.Sequence == seq && match(h, data) })
}

// rawAttrs indexes the top-level attributes after a fixed header of hdrLen
// bytes (the capture does not use the codecs it is meant to test).
func rawAttrs(data []byte, hdrLen int) map[uint16][]byte {
	if len(data) < hdrLen {
		return nil
	}
	m := map[uint16][]byte{}
	ad := rtnl.NewAttributeDecoder(data[hdrLen:])
	for ad.Next() {
		m[ad.Type()] = ad.Bytes()
	}
	return m
}

// neighIs matches a neighbour message of type typ and family fam whose
// attribute attr equals want.
func neighIs(typ uint16, fam uint8, attr uint16, want []byte) func(rtnl.Header, []byte) bool {
	return func(h rtnl.Header, data []byte) bool {
		if h.Type != typ || len(data) < unix.SizeofNdMsg || data[0] != fam {
			return false
		}
		v, ok := rawAttrs(data, unix.SizeofNdMsg)[attr]
		return ok && bytes.Equal(v, want)
	}
}

func macBytes(s string) []byte {
	m, err := ethaddr.Parse(s)
	if err != nil {
		panic(err)
	}
	return m[:]
}

func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

// getLinkByName is an RTM_GETLINK request body selecting name.
func getLinkByName(name string) []byte {
	ae := rtnl.NewAttributeEncoder(make([]byte, unix.SizeofIfInfomsg))
	ae.String(unix.IFLA_IFNAME, name)
	return ae.Bytes()
}

// TestGoldenCapture stores the kernel messages captureKernelMessages gets
// from the running kernel in testdata/kernel, with the machine's byte
// order. It runs only with -update (as root):
//
//	go test ./rtnl -run Golden -update
func TestGoldenCapture(t *testing.T) {
	if !*update {
		t.Skip("recapture kernel messages with -update (as root)")
	}
	captured := captureKernelMessages(t)
	if err := os.MkdirAll(kernelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range captured {
		if err := os.WriteFile(filepath.Join(kernelDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("captured %s: %d bytes", name, len(b))
	}
	if err := golden.WriteOrder(kernelDir); err != nil {
		t.Fatal(err)
	}
}

// captureKernelMessages builds an overlay node in throwaway namespaces,
// triggers every scenario of testdata/kernel/README.md and returns the
// first kernel message of each, by file name.
func captureKernelMessages(t *testing.T) map[string][]byte {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "bridge", "ping", "sysctl", "nsenter") // iproute2, iputils-ping, procps, util-linux
	_, hostNS := nstest.NetNS(t, "gh")
	over, overNS := nstest.NetNS(t, "go")
	ctn, ctnNS := nstest.NetNS(t, "gc")
	run := func(ns string, args ...string) { t.Helper(); nstest.Run(t, ns, args[0], args[1:]...) }
	try := func(ns string, args ...string) { nstest.Output(ns, args[0], args[1:]...) } // pings that get no answer fail

	// Fixed netns ids, so NDA_LINK_NETNSID / IFLA_LINK_NETNSID are stable.
	run(overNS, "ip", "netns", "set", hostNS, "1")
	run(overNS, "ip", "netns", "set", ctnNS, "2")
	run(overNS, "ip", "link", "add", "br0", "address", capBridgeMAC, "type", "bridge")
	run(overNS, "ip", "addr", "add", capBridgeIP.String()+"/24", "dev", "br0")
	// Created in the "host" netns and moved at creation, as overlayd does.
	run(hostNS, "ip", "link", "add", "dev", "vxlan1", "address", capVxlanMAC, "netns", overNS,
		"type", "vxlan", "id", "42", "dstport", "4789", "proxy", "nolearning", "l2miss", "l3miss")
	run(overNS, "ip", "link", "set", "vxlan1", "master", "br0")
	run(overNS, "ip", "link", "add", "dev", "veth1", "mtu", "1450", "address", capVethMAC, "type", "veth",
		"peer", "name", "eth0", "mtu", "1450", "address", capCtnMAC, "netns", ctnNS)
	run(overNS, "ip", "link", "set", "veth1", "master", "br0")
	run(ctnNS, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	run(ctnNS, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
	for _, dev := range []string{"br0", "vxlan1", "veth1"} {
		run(overNS, "ip", "link", "set", dev, "up")
	}
	run(ctnNS, "ip", "link", "set", "eth0", "up")
	run(ctnNS, "ip", "route", "add", "default", "via", capBridgeIP.String())

	mon := openRawSock(t, over, unix.RTNLGRP_NEIGH)
	req := openRawSock(t, over)
	ctnReq := openRawSock(t, ctn)
	captured := map[string][]byte{}

	// vxlan L3 miss: an ARP request from the container for an address
	// nobody has reaches the vxlan (proxy l3miss) through the bridge.
	try(ctnNS, "ping", "-c1", "-W1", capL3MissIP.String())
	captured["l3miss.bin"] = mon.waitFor(t, "l3miss", neighIs(unix.RTM_GETNEIGH, unix.AF_INET, unix.NDA_DST, addrBytes(capL3MissIP)))

	// The same with IPv6: a neighbour solicitation for a link-local address.
	try(ctnNS, "ping", "-6", "-c1", "-W1", capL3MissV6+"%eth0")
	captured["l3miss_v6.bin"] = mon.waitFor(t, "l3miss_v6", neighIs(unix.RTM_GETNEIGH, unix.AF_INET6, unix.NDA_DST, addrBytes(netip.MustParseAddr(capL3MissV6))))

	// vxlan L2 miss: the container knows the MAC, the vxlan has no FDB entry.
	run(ctnNS, "ip", "neigh", "add", capL2MissIP.String(), "lladdr", capL2MissMAC, "dev", "eth0", "nud", "permanent")
	try(ctnNS, "ping", "-c1", "-W1", capL2MissIP.String())
	captured["l2miss.bin"] = mon.waitFor(t, "l2miss", neighIs(unix.RTM_GETNEIGH, unix.AF_INET, unix.NDA_LLADDR, macBytes(capL2MissMAC)))

	// app_solicit: the overlay netns itself resolves an unknown address on
	// br0 with app_probes set: NUD_INCOMPLETE, no lladdr.
	run(overNS, "ip", "ntable", "change", "name", "arp_cache", "dev", "br0", "app_probes", "3")
	try(overNS, "ping", "-c1", "-W1", capSolicit.String())
	captured["app_solicit.bin"] = mon.waitFor(t, "app_solicit", neighIs(unix.RTM_GETNEIGH, unix.AF_INET, unix.NDA_DST, addrBytes(capSolicit)))

	// app_solicit from NUD_PROBE: a stale entry is used, goes DELAY, then
	// PROBE; with no unicast probes the kernel asks userspace, lladdr included.
	run(overNS, "ip", "ntable", "change", "name", "arp_cache", "dev", "br0", "ucast_probes", "0", "delay_probe", "10")
	run(overNS, "ip", "neigh", "add", capProbeIP.String(), "lladdr", capProbeMAC, "dev", "br0", "nud", "stale")
	try(overNS, "ping", "-c1", "-W1", capProbeIP.String())
	captured["app_solicit_probe.bin"] = mon.waitFor(t, "app_solicit_probe", func(h rtnl.Header, data []byte) bool {
		return neighIs(unix.RTM_GETNEIGH, unix.AF_INET, unix.NDA_DST, addrBytes(capProbeIP))(h, data) &&
			binary.NativeEndian.Uint16(data[8:10])&unix.NUD_PROBE != 0 // ndm_state
	})

	// FDB echo with a port and a VNI that differ from the device's own.
	run(overNS, "bridge", "fdb", "add", capFDBMAC, "dev", "vxlan1", "self", "dst", "192.0.2.3", "vni", "43", "port", "4790")
	captured["fdb_echo.bin"] = mon.waitFor(t, "fdb_echo", neighIs(unix.RTM_NEWNEIGH, unix.AF_BRIDGE, unix.NDA_LLADDR, macBytes(capFDBMAC)))

	isNewLink := func(h rtnl.Header, _ []byte) bool { return h.Type == unix.RTM_NEWLINK }
	captured["link_vxlan.bin"] = req.request(t, "link_vxlan", unix.RTM_GETLINK, 0, getLinkByName("vxlan1"), isNewLink)
	captured["link_veth.bin"] = req.request(t, "link_veth", unix.RTM_GETLINK, 0, getLinkByName("veth1"), isNewLink)

	captured["addr_v4.bin"] = req.request(t, "addr_v4", unix.RTM_GETADDR, unix.NLM_F_DUMP,
		[]byte{unix.AF_INET, 0, 0, 0, 0, 0, 0, 0}, func(h rtnl.Header, data []byte) bool {
			v, ok := rawAttrs(data, unix.SizeofIfAddrmsg)[unix.IFA_ADDRESS]
			return h.Type == unix.RTM_NEWADDR && ok && bytes.Equal(v, addrBytes(capBridgeIP))
		})
	rtmsg := make([]byte, unix.SizeofRtMsg)
	rtmsg[0] = unix.AF_INET
	captured["route_default.bin"] = ctnReq.request(t, "route_default", unix.RTM_GETROUTE, unix.NLM_F_DUMP,
		rtmsg, func(h rtnl.Header, data []byte) bool {
			if h.Type != unix.RTM_NEWROUTE || len(data) < unix.SizeofRtMsg {
				return false
			}
			_, gw := rawAttrs(data, unix.SizeofRtMsg)[unix.RTA_GATEWAY]
			return data[1] == 0 && data[4] == unix.RT_TABLE_MAIN && gw // rtm_dst_len, rtm_table
		})

	// ACKs, with extended ACKs enabled: an error carrying the kernel's text
	// (not capped: the request is echoed) and a success ACK (capped).
	ack := openRawSock(t, over)
	if err := unix.SetsockoptInt(ack.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1); err != nil {
		t.Fatal(err)
	}
	bad := rtnl.NewAttributeEncoder(make([]byte, unix.SizeofIfInfomsg))
	bad.String(unix.IFLA_IFNAME, "bad0")
	li := bad.Begin(unix.IFLA_LINKINFO)
	bad.String(unix.IFLA_INFO_KIND, "no-such-kind")
	bad.End(li)
	isAck := func(h rtnl.Header, _ []byte) bool { return h.Type == unix.NLMSG_ERROR }
	captured["ack_error.bin"] = ack.requestAck(t, "ack_error", unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bad.Bytes(), isAck)
	captured["ack_ok.bin"] = ack.requestAck(t, "ack_ok", unix.RTM_SETLINK, 0, getLinkByName("br0"), isAck)
	return captured
}
