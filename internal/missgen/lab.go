package missgen

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Addresses of a Lab. Targets come from 10.64.0.0/10 and the lab's MACs from
// the locally administered 02:42:... range.

// ContainerMAC is the container's eth0 address, the source of every frame.
func ContainerMAC() ethaddr.MAC { return ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02} }

// ContainerIP is the container's address, the ARP sender.
func ContainerIP() netip.Addr { return netip.AddrFrom4([4]byte{10, 64, 0, 2}) }

// FirstTarget is the first IP address ARP requests ask for.
func FirstTarget() netip.Addr { return netip.AddrFrom4([4]byte{10, 65, 0, 1}) }

// FirstMAC is the first destination of unicast frames.
func FirstMAC() ethaddr.MAC { return ethaddr.MAC{0x02, 0x42, 0x0a, 0x41, 0x00, 0x01} }

// Prefix6 is the IPv6 prefix of a dual-stack Lab (NewDualLab).
func Prefix6() netip.Prefix { return netip.MustParsePrefix("2001:db8:40::/64") }

// ContainerIP6 is the container's IPv6 address in a dual-stack Lab, the
// Neighbor Solicitations' source.
func ContainerIP6() netip.Addr { return netip.MustParseAddr("2001:db8:40::2") }

// FirstTarget6 is the first IPv6 address Neighbor Solicitations ask for.
func FirstTarget6() netip.Addr { return netip.MustParseAddr("2001:db8:40::1:1") }

// Lab is a node's overlay in miniature: an overlay namespace with a bridge
// br0 and a proxy vxlan1 (VNI 42, l2miss, l3miss, no learning) enslaved to
// it, and a container namespace whose eth0 is wired to the bridge by a veth
// (veth1 on the bridge side). IPv6 is off in both (NewLab), so no DAD or
// router solicitation raises stray misses; or on, as a dual-stack overlay
// has it (NewDualLab): every device addrgenmode none (no link-local
// address, no DAD), the container's eth0 with ContainerIP6 too (nodad).
type Lab struct {
	Overlay     *rtnl.NetNS
	OverlayName string
	Container   *rtnl.NetNS
	// ContainerName is the container namespace's name.
	ContainerName string
	VxlanIndex    int32 // ifindex of vxlan1 in the overlay namespace
	BridgeIndex   int32 // ifindex of br0
	VethIndex     int32 // ifindex of veth1 (the bridge port facing the container)
	// IPv6 says the lab is dual-stack (NewDualLab).
	IPv6 bool
}

// NewLab builds a Lab in two throwaway namespaces deleted when t ends.
func NewLab(t testing.TB) *Lab { return newLab(t, false) }

// NewDualLab builds a dual-stack Lab: IPv6 on, no link-local addresses,
// the container at ContainerIP6 (in Prefix6) beside ContainerIP.
func NewDualLab(t testing.TB) *Lab { return newLab(t, true) }

func newLab(t testing.TB, ipv6 bool) *Lab {
	t.Helper()
	l := &Lab{IPv6: ipv6}
	l.Overlay, l.OverlayName = nstest.NetNS(t, "mo")
	l.Container, l.ContainerName = nstest.NetNS(t, "mc")
	if !ipv6 {
		for _, ns := range []string{l.OverlayName, l.ContainerName} {
			nstest.Run(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		}
	}
	// Where br_netfilter is loaded (Docker loads it), every new namespace
	// starts with bridge-nf-call-{arp,ip,ip6}tables=1 and bridged frames
	// pass the netfilter hooks: a cost of the host's configuration, not of
	// what a Lab measures, and absent on hosts without the module. Off, so
	// that runs compare across hosts. -e: no such keys without the module.
	nstest.Run(t, l.OverlayName, "sysctl", "-q", "-e", "-w", "net.bridge.bridge-nf-call-arptables=0",
		"net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0")
	o := l.OverlayName
	nstest.Run(t, o, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	nstest.Run(t, o, "ip", "link", "add", "vxlan1", "type", "vxlan", "id", "42", "dstport", "4789",
		"proxy", "l2miss", "l3miss", "nolearning")
	nstest.Run(t, o, "ip", "link", "add", "veth1", "type", "veth", "peer", "name", "eth0", "netns", l.ContainerName)
	nstest.Run(t, o, "ip", "link", "set", "vxlan1", "master", "br0")
	nstest.Run(t, o, "ip", "link", "set", "veth1", "master", "br0")
	for _, dev := range []string{"br0", "vxlan1", "veth1"} {
		if ipv6 {
			nstest.Run(t, o, "ip", "link", "set", dev, "addrgenmode", "none")
		}
		nstest.Run(t, o, "ip", "link", "set", dev, "up")
	}
	c := l.ContainerName
	nstest.Run(t, c, "ip", "link", "set", "eth0", "address", ContainerMAC().String())
	nstest.Run(t, c, "ip", "addr", "add", ContainerIP().String()+"/10", "dev", "eth0")
	if ipv6 {
		nstest.Run(t, c, "ip", "link", "set", "eth0", "addrgenmode", "none")
		nstest.Run(t, c, "ip", "addr", "add", netip.PrefixFrom(ContainerIP6(), 64).String(), "dev", "eth0", "nodad")
	}
	nstest.Run(t, c, "ip", "link", "set", "eth0", "up")
	l.VxlanIndex = Ifindex(t, o, "vxlan1")
	l.BridgeIndex = Ifindex(t, o, "br0")
	l.VethIndex = Ifindex(t, o, "veth1")
	return l
}

// Generator opens a Generator on the container's eth0, closed when t ends.
func (l *Lab) Generator(t testing.TB) *Generator {
	t.Helper()
	g, err := New(l.Container, "eth0", ContainerMAC(), ContainerIP())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// Generator6 opens a Generator on the container's eth0 sending Neighbor
// Solicitations from ContainerIP6 (a dual-stack Lab), closed when t ends.
func (l *Lab) Generator6(t testing.TB) *Generator {
	t.Helper()
	if !l.IPv6 {
		t.Fatal("missgen: Generator6 of a Lab without IPv6 (use NewDualLab)")
	}
	g, err := New(l.Container, "eth0", ContainerMAC(), ContainerIP6())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// AddContainer wires one more container namespace to the lab's bridge (a
// veth pair, eth0 with mac and ip/10 inside) and returns a Generator on its
// eth0 sending as mac and ip. Everything goes when t ends.
func (l *Lab) AddContainer(t testing.TB, mac ethaddr.MAC, ip netip.Addr) *Generator {
	t.Helper()
	ns, name := nstest.NetNS(t, "mc")
	nstest.Run(t, name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	port := nstest.UniqueName("v")
	o := l.OverlayName
	nstest.Run(t, o, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
	nstest.Run(t, o, "ip", "link", "set", port, "master", "br0")
	nstest.Run(t, o, "ip", "link", "set", port, "up")
	nstest.Run(t, name, "ip", "link", "set", "eth0", "address", mac.String())
	nstest.Run(t, name, "ip", "addr", "add", ip.String()+"/10", "dev", "eth0")
	nstest.Run(t, name, "ip", "link", "set", "eth0", "up")
	g, err := New(ns, "eth0", mac, ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// Ifindex returns the ifindex of dev in the named namespace. (It asks ip,
// not /sys: nsenter --net keeps the host's sysfs mount.)
func Ifindex(t testing.TB, netns, dev string) int32 {
	t.Helper()
	return int32(linkJSON(t, netns, dev).Ifindex)
}

// LinkStats are a device's packet counters.
type LinkStats struct {
	RxPackets, RxDropped, TxPackets, TxDropped uint64
}

type linkInfo struct {
	Ifindex int `json:"ifindex"`
	Stats   struct {
		Rx struct {
			Packets uint64 `json:"packets"`
			Dropped uint64 `json:"dropped"`
		} `json:"rx"`
		Tx struct {
			Packets uint64 `json:"packets"`
			Dropped uint64 `json:"dropped"`
		} `json:"tx"`
	} `json:"stats64"`
}

func linkJSON(t testing.TB, netns, dev string) linkInfo {
	t.Helper()
	out := nstest.Run(t, netns, "ip", "-j", "-s", "link", "show", "dev", dev)
	var l []linkInfo
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) != 1 {
		t.Fatalf("ip -j link show dev %s: %q: %v", dev, out, err)
	}
	return l[0]
}

// Stats reads dev's counters in the named namespace.
func Stats(t testing.TB, netns, dev string) LinkStats {
	t.Helper()
	l := linkJSON(t, netns, dev)
	return LinkStats{
		RxPackets: l.Stats.Rx.Packets, RxDropped: l.Stats.Rx.Dropped,
		TxPackets: l.Stats.Tx.Packets, TxDropped: l.Stats.Tx.Dropped,
	}
}
