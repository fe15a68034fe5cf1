package rtnl_test

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/rtnl"
)

// update regenerates golden files: it recaptures the kernel messages in
// testdata/kernel (as root) and rewrites the human-readable dumps.
var update = flag.Bool("update", false, "recapture golden kernel messages from the running kernel")

// goldenDir is where the captured kernel messages live (shared with the
// capture test and the benchmarks).
const goldenDir = "../testdata/kernel"

// readKernelMessage reads testdata/kernel/NAME.bin and checks that it holds
// exactly one netlink message.
func readKernelMessage(t testing.TB, name string) (rtnl.Header, []byte, []byte) {
	t.Helper()
	raw, err := golden.Read(goldenDir, name)
	if err != nil {
		t.Fatalf("read %s (regenerate with `go test ./rtnl -run Golden -update` as root): %v", name, err)
	}
	h, body, err := rtnl.ParseHeader(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if int(h.Length) != len(raw) {
		t.Fatalf("%s: header length %d, file %d bytes: want exactly one message", name, h.Length, len(raw))
	}
	return h, body, raw
}

// dump accumulates the key=value lines of a golden .txt file.
type goldenDump struct{ strings.Builder }

func (d *goldenDump) kv(k string, v any) { fmt.Fprintf(&d.Builder, "%s=%v\n", k, v) }

// fieldChecker compares decoded fields with the scenario's expectations, one
// error per differing field.
type fieldChecker struct {
	t    *testing.T
	what string
}

func (c fieldChecker) eq(field string, got, want any) {
	c.t.Helper()
	if !reflect.DeepEqual(got, want) {
		c.t.Errorf("%s: %s = %v, want %v", c.what, field, got, want)
	}
}

// Interface indexes and ids of the capture topology (testdata/kernel/README.md).
const (
	gIdxBridge = 2 // br0 in the overlay netns
	gIdxVxlan  = 3 // vxlan1 in the overlay netns
	gIdxVeth   = 4 // veth1 in the overlay netns
	gIdxCtnEth = 2 // eth0 in the container netns
)

func goldenMAC(s string) ethaddr.MAC {
	m, err := ethaddr.Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

func neighAttrSet(as ...rtnl.NeighAttr) rtnl.NeighAttrSet {
	var s rtnl.NeighAttrSet
	for _, a := range as {
		s.Set(a)
	}
	return s
}

// neighWant is what a captured neighbour message must decode to. CacheInfo
// is never compared: its timestamps change with every capture (and the
// kernel fills it with garbage for vxlan misses).
type neighWant struct {
	msgType, msgFlags uint16
	m                 rtnl.NeighMessage
}

func checkNeigh(t *testing.T, name string, h rtnl.Header, body []byte, w neighWant) string {
	var m rtnl.NeighMessage
	if err := m.UnmarshalBinary(body); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	c := fieldChecker{t, name}
	c.eq("nlmsg_type", rtnl.MessageTypeName(h.Type), rtnl.MessageTypeName(w.msgType))
	c.eq("nlmsg_flags", h.Flags, w.msgFlags)
	c.eq("nlmsg_seq", h.Sequence, uint32(0))
	c.eq("nlmsg_pid", h.PID, uint32(0))
	c.eq("family", m.Family, w.m.Family)
	c.eq("ifindex", m.Ifindex, w.m.Ifindex)
	c.eq("state", m.State.String(), w.m.State.String())
	c.eq("flags", m.Flags.String(), w.m.Flags.String())
	c.eq("type", m.Type, w.m.Type)
	c.eq("attributes", m.Present.String(), w.m.Present.String())
	c.eq("dst", m.Dst, w.m.Dst)
	c.eq("lladdr", m.LLAddr.String(), w.m.LLAddr.String())
	c.eq("probes", m.Probes, w.m.Probes)
	c.eq("vlan", m.VLAN, w.m.VLAN)
	c.eq("port", m.Port, w.m.Port)
	c.eq("vni", m.VNI, w.m.VNI)
	c.eq("ifindex attr", m.Via, w.m.Via)
	c.eq("master", m.Master, w.m.Master)
	c.eq("link_netnsid", m.LinkNetnsID, w.m.LinkNetnsID)
	c.eq("src_vni", m.SrcVNI, w.m.SrcVNI)
	c.eq("protocol", m.Protocol, w.m.Protocol)
	c.eq("nh_id", m.NHID, w.m.NHID)
	c.eq("flags_ext", m.FlagsExt, w.m.FlagsExt)

	return dumpNeigh(h, &m)
}

// dumpNeigh is the golden dump (testdata/kernel/NAME.txt) of a decoded message.
func dumpNeigh(h rtnl.Header, m *rtnl.NeighMessage) string {
	var d goldenDump
	d.kv("nlmsg_type", rtnl.MessageTypeName(h.Type))
	d.kv("nlmsg_flags", fmt.Sprintf("%#x", h.Flags))
	d.kv("family", goldenFamily(m.Family))
	d.kv("ifindex", m.Ifindex)
	d.kv("state", m.State)
	d.kv("flags", m.Flags)
	d.kv("type", m.Type)
	d.kv("attributes", m.Present)
	if m.Dst.IsValid() {
		d.kv("dst", m.Dst)
	}
	if m.Present.Has(rtnl.NeighAttrLLAddr) {
		d.kv("lladdr", m.LLAddr)
	}
	for _, f := range []struct {
		a rtnl.NeighAttr
		k string
		v any
	}{
		{rtnl.NeighAttrProbes, "probes", m.Probes},
		{rtnl.NeighAttrVLAN, "vlan", m.VLAN},
		{rtnl.NeighAttrPort, "port", m.Port},
		{rtnl.NeighAttrVNI, "vni", m.VNI},
		{rtnl.NeighAttrIfindex, "ifindex_attr", m.Via},
		{rtnl.NeighAttrMaster, "master", m.Master},
		{rtnl.NeighAttrLinkNetnsID, "link_netnsid", m.LinkNetnsID},
		{rtnl.NeighAttrSrcVNI, "src_vni", m.SrcVNI},
		{rtnl.NeighAttrProtocol, "protocol", m.Protocol},
		{rtnl.NeighAttrNHID, "nh_id", m.NHID},
		{rtnl.NeighAttrFlagsExt, "flags_ext", m.FlagsExt},
	} {
		if m.Present.Has(f.a) {
			d.kv(f.k, f.v)
		}
	}
	return d.String()
}

func goldenFamily(f uint8) string {
	switch f {
	case rtnl.FamilyUnspec:
		return "AF_UNSPEC"
	case rtnl.FamilyInet:
		return "AF_INET"
	case rtnl.FamilyInet6:
		return "AF_INET6"
	case rtnl.FamilyBridge:
		return "AF_BRIDGE"
	}
	return fmt.Sprint(f)
}

// linkWant is what a captured link message must decode to. Statistics and
// other attributes the type does not model are not compared.
type linkWant struct {
	m     rtnl.LinkMessage
	flags rtnl.LinkFlags // bits that must be set
}

func checkLink(t *testing.T, name string, h rtnl.Header, body []byte, w linkWant) string {
	var m rtnl.LinkMessage
	if err := m.UnmarshalBinary(body); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	c := fieldChecker{t, name}
	c.eq("nlmsg_type", rtnl.MessageTypeName(h.Type), "RTM_NEWLINK")
	c.eq("family", m.Family, w.m.Family)
	c.eq("ifi_type", m.Type, w.m.Type)
	c.eq("index", m.Index, w.m.Index)
	if m.Flags&w.flags != w.flags {
		t.Errorf("%s: flags = %v, want at least %v", name, m.Flags, w.flags)
	}
	c.eq("name", m.Name, w.m.Name)
	c.eq("address", m.Address, w.m.Address)
	c.eq("broadcast", m.Broadcast, w.m.Broadcast)
	c.eq("mtu", m.MTU, w.m.MTU)
	c.eq("master", m.Master, w.m.Master)
	c.eq("link", m.Link, w.m.Link)
	c.eq("link_netnsid", m.LinkNetNSID, w.m.LinkNetNSID)
	for _, bit := range []struct {
		b rtnl.LinkHas
		n string
	}{{rtnl.LinkHasMaster, "IFLA_MASTER"}, {rtnl.LinkHasLink, "IFLA_LINK"}, {rtnl.LinkHasLinkNetNSID, "IFLA_LINK_NETNSID"}} {
		c.eq("has "+bit.n, m.Present&bit.b != 0, w.m.Present&bit.b != 0)
	}
	if m.Info == nil {
		t.Fatalf("%s: no IFLA_LINKINFO", name)
	}
	c.eq("kind", m.Info.Kind, w.m.Info.Kind)
	c.eq("slave kind", m.Info.SlaveKind, w.m.Info.SlaveKind)
	if w.m.Info.Vxlan != nil {
		if m.Info.Vxlan == nil {
			t.Fatalf("%s: no vxlan data", name)
		}
		c.eq("vxlan", *m.Info.Vxlan, *w.m.Info.Vxlan)
	}

	return dumpLink(h, &m)
}

// dumpLink is the golden dump (testdata/kernel/NAME.txt) of a decoded message.
func dumpLink(h rtnl.Header, m *rtnl.LinkMessage) string {
	var d goldenDump
	d.kv("nlmsg_type", rtnl.MessageTypeName(h.Type))
	d.kv("family", goldenFamily(m.Family))
	d.kv("ifi_type", m.Type)
	d.kv("index", m.Index)
	d.kv("flags", m.Flags)
	d.kv("name", m.Name)
	d.kv("address", rtnl.HardwareAddr(m.Address[:]))
	d.kv("broadcast", rtnl.HardwareAddr(m.Broadcast[:]))
	d.kv("mtu", m.MTU)
	d.kv("min_mtu", m.MinMTU)
	d.kv("max_mtu", m.MaxMTU)
	d.kv("txqlen", m.TxQLen)
	d.kv("operstate", m.OperState)
	if m.Present&rtnl.LinkHasMaster != 0 {
		d.kv("master", m.Master)
	}
	if m.Present&rtnl.LinkHasLink != 0 {
		d.kv("link", m.Link)
	}
	if m.Present&rtnl.LinkHasLinkNetNSID != 0 {
		d.kv("link_netnsid", m.LinkNetNSID)
	}
	d.kv("kind", m.Info.Kind)
	d.kv("slave_kind", m.Info.SlaveKind)
	if v := m.Info.Vxlan; v != nil {
		d.kv("vxlan", fmt.Sprintf("%+v", *v))
	}
	return d.String()
}

func checkAddress(t *testing.T, name string, h rtnl.Header, body []byte, w rtnl.AddressMessage) string {
	var m rtnl.AddressMessage
	if err := m.UnmarshalBinary(body); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	c := fieldChecker{t, name}
	c.eq("nlmsg_type", rtnl.MessageTypeName(h.Type), "RTM_NEWADDR")
	c.eq("nlmsg_flags has NLM_F_MULTI", h.Flags&rtnl.FlagMulti != 0, true)
	c.eq("family", m.Family, w.Family)
	c.eq("prefixlen", m.PrefixLen, w.PrefixLen)
	c.eq("flags", m.Flags.String(), w.Flags.String())
	c.eq("scope", m.Scope, w.Scope)
	c.eq("index", m.Index, w.Index)
	c.eq("address", m.Address, w.Address)
	c.eq("local", m.Local, w.Local)
	c.eq("broadcast", m.Broadcast, w.Broadcast)
	c.eq("label", m.Label, w.Label)
	c.eq("prefix", m.Prefix(), w.Prefix())
	// Lifetimes of a permanent address are "forever"; the time stamps vary.
	c.eq("preferred", m.CacheInfo.Preferred, w.CacheInfo.Preferred)
	c.eq("valid", m.CacheInfo.Valid, w.CacheInfo.Valid)

	return dumpAddress(h, &m)
}

// dumpAddress is the golden dump (testdata/kernel/NAME.txt) of a decoded message.
func dumpAddress(h rtnl.Header, m *rtnl.AddressMessage) string {
	var d goldenDump
	d.kv("nlmsg_type", rtnl.MessageTypeName(h.Type))
	d.kv("family", goldenFamily(m.Family))
	d.kv("prefixlen", m.PrefixLen)
	d.kv("flags", m.Flags)
	d.kv("scope", m.Scope)
	d.kv("index", m.Index)
	d.kv("address", m.Address)
	d.kv("local", m.Local)
	d.kv("broadcast", m.Broadcast)
	d.kv("label", m.Label)
	d.kv("preferred", m.CacheInfo.Preferred)
	d.kv("valid", m.CacheInfo.Valid)
	return d.String()
}

func checkRoute(t *testing.T, name string, h rtnl.Header, body []byte, w rtnl.RouteMessage) string {
	var m rtnl.RouteMessage
	if err := m.UnmarshalBinary(body); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	c := fieldChecker{t, name}
	c.eq("nlmsg_type", rtnl.MessageTypeName(h.Type), "RTM_NEWROUTE")
	c.eq("route", m, w)
	c.eq("destination", m.Destination(), w.Destination())

	return dumpRoute(h, &m)
}

// dumpRoute is the golden dump (testdata/kernel/NAME.txt) of a decoded message.
func dumpRoute(h rtnl.Header, m *rtnl.RouteMessage) string {
	var d goldenDump
	d.kv("nlmsg_type", rtnl.MessageTypeName(h.Type))
	d.kv("family", goldenFamily(m.Family))
	d.kv("destination", m.Destination())
	d.kv("src_len", m.SrcLen)
	d.kv("tos", m.TOS)
	d.kv("table", m.Table)
	d.kv("protocol", m.Protocol)
	d.kv("scope", m.Scope)
	d.kv("type", m.Type)
	d.kv("flags", m.Flags)
	d.kv("gateway", m.Gateway)
	d.kv("prefsrc", m.PrefSrc)
	d.kv("oif", m.OIF)
	d.kv("iif", m.IIF)
	d.kv("priority", m.Priority)
	return d.String()
}

// dumpKernelMessage decodes one message with the codec of its type and
// returns its golden dump.
func dumpKernelMessage(h rtnl.Header, body []byte) (string, error) {
	var (
		m interface{ UnmarshalBinary([]byte) error }
		d func() string
	)
	switch h.Type {
	case rtnl.MsgNewNeigh, rtnl.MsgDelNeigh, rtnl.MsgGetNeigh:
		var n rtnl.NeighMessage
		m, d = &n, func() string { return dumpNeigh(h, &n) }
	case rtnl.MsgNewLink:
		var l rtnl.LinkMessage
		m, d = &l, func() string { return dumpLink(h, &l) }
	case rtnl.MsgNewAddr:
		var a rtnl.AddressMessage
		m, d = &a, func() string { return dumpAddress(h, &a) }
	case rtnl.MsgNewRoute:
		var r rtnl.RouteMessage
		m, d = &r, func() string { return dumpRoute(h, &r) }
	default:
		return "", fmt.Errorf("no golden dump for %s", rtnl.MessageTypeName(h.Type))
	}
	if err := m.UnmarshalBinary(body); err != nil {
		return "", err
	}
	return d(), nil
}

// goldenCases lists every captured file with the check of its fields.
var goldenCases = []struct {
	name  string
	check func(t *testing.T, name string, h rtnl.Header, body []byte) string
}{
	{"l3miss", neighCase(neighWant{rtnl.MsgGetNeigh, 0, rtnl.NeighMessage{
		Family: rtnl.FamilyInet, Ifindex: gIdxVxlan, State: rtnl.NeighStale, Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrDst, rtnl.NeighAttrVNI, rtnl.NeighAttrCacheInfo),
		Dst:     netip.MustParseAddr("198.51.100.9"), VNI: 1 << 24, LinkNetnsID: 1,
	}})},
	{"l3miss_v6", neighCase(neighWant{rtnl.MsgGetNeigh, 0, rtnl.NeighMessage{
		Family: rtnl.FamilyInet6, Ifindex: gIdxVxlan, State: rtnl.NeighStale, Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrDst, rtnl.NeighAttrVNI, rtnl.NeighAttrCacheInfo),
		Dst:     netip.MustParseAddr("fe80::42:c6ff:fe33:6409"), VNI: 1 << 24, LinkNetnsID: 1,
	}})},
	{"l2miss", neighCase(neighWant{rtnl.MsgGetNeigh, 0, rtnl.NeighMessage{
		Family: rtnl.FamilyInet, Ifindex: gIdxVxlan, State: rtnl.NeighStale, Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrLLAddr, rtnl.NeighAttrVNI, rtnl.NeighAttrCacheInfo),
		LLAddr:  goldenMAC("02:42:c6:33:64:07").Bytes(), VNI: 0, LinkNetnsID: 1,
	}})},
	{"app_solicit", neighCase(neighWant{rtnl.MsgGetNeigh, rtnl.FlagRequest, rtnl.NeighMessage{
		Family: rtnl.FamilyInet, Ifindex: gIdxBridge, State: rtnl.NeighIncomplete, Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrDst, rtnl.NeighAttrProbes, rtnl.NeighAttrCacheInfo),
		Dst:     netip.MustParseAddr("198.51.100.8"), Probes: 3, // ucast_probes 3 already counted
	}})},
	{"app_solicit_probe", neighCase(neighWant{rtnl.MsgGetNeigh, rtnl.FlagRequest, rtnl.NeighMessage{
		Family: rtnl.FamilyInet, Ifindex: gIdxBridge, State: rtnl.NeighProbe, Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrDst, rtnl.NeighAttrLLAddr, rtnl.NeighAttrProbes, rtnl.NeighAttrCacheInfo),
		Dst:     netip.MustParseAddr("198.51.100.6"), LLAddr: goldenMAC("02:42:c6:33:64:06").Bytes(), Probes: 0,
	}})},
	{"fdb_echo", neighCase(neighWant{rtnl.MsgNewNeigh, 0, rtnl.NeighMessage{
		// `bridge fdb add` asks for NOARP|PERMANENT (iproute2's default state).
		Family: rtnl.FamilyBridge, Ifindex: gIdxVxlan, State: rtnl.NeighNoARP | rtnl.NeighPermanent, Flags: rtnl.NeighFlagSelf,
		Type: rtnl.RTN_UNICAST,
		Present: neighAttrSet(rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrLLAddr, rtnl.NeighAttrDst,
			rtnl.NeighAttrPort, rtnl.NeighAttrVNI, rtnl.NeighAttrCacheInfo),
		LLAddr: goldenMAC("02:42:c6:33:64:03").Bytes(), Dst: netip.MustParseAddr("192.0.2.3"),
		Port: 4790, VNI: 43, LinkNetnsID: 1,
	}})},
	{"link_vxlan", linkCase(linkWant{flags: rtnl.LinkUp | rtnl.LinkBroadcast | rtnl.LinkMulticast, m: rtnl.LinkMessage{
		Type: rtnl.ARPHRD_ETHER, Index: gIdxVxlan, Name: "vxlan1", MTU: 1500,
		Address: goldenMAC("02:42:c6:33:64:0a"), Broadcast: goldenMAC("ff:ff:ff:ff:ff:ff"),
		// A device whose link netns differs from its own reports IFLA_LINK
		// (its own index, `vxlan1@if3` in ip link) with IFLA_LINK_NETNSID.
		Master: gIdxBridge, Link: gIdxVxlan, LinkNetNSID: 1,
		Present: rtnl.LinkHasMaster | rtnl.LinkHasLink | rtnl.LinkHasLinkNetNSID,
		Info: &rtnl.LinkInfo{Kind: rtnl.KindVxlan, SlaveKind: "bridge", Vxlan: &rtnl.VxlanInfo{
			ID: 42, Port: 4789, Learning: false, Proxy: true, L2Miss: true, L3Miss: true, Ageing: 300,
			TTL: 0, PortLow: 0, PortHigh: 0, // no explicit source port range: the kernel reports 0-0
		}},
	}})},
	{"link_veth", linkCase(linkWant{flags: rtnl.LinkUp | rtnl.LinkBroadcast | rtnl.LinkMulticast | rtnl.LinkLowerUp, m: rtnl.LinkMessage{
		Type: rtnl.ARPHRD_ETHER, Index: gIdxVeth, Name: "veth1", MTU: 1450,
		Address: goldenMAC("02:42:c6:33:64:0b"), Broadcast: goldenMAC("ff:ff:ff:ff:ff:ff"),
		Master: gIdxBridge, Link: gIdxCtnEth, LinkNetNSID: 2,
		Present: rtnl.LinkHasMaster | rtnl.LinkHasLink | rtnl.LinkHasLinkNetNSID,
		Info:    &rtnl.LinkInfo{Kind: rtnl.KindVeth, SlaveKind: "bridge"},
	}})},
	{"addr_v4", func(t *testing.T, name string, h rtnl.Header, body []byte) string {
		a := netip.MustParseAddr("198.51.100.1")
		return checkAddress(t, name, h, body, rtnl.AddressMessage{
			Family: rtnl.FamilyInet, PrefixLen: 24, Flags: rtnl.AddrPermanent, Scope: rtnl.ScopeUniverse,
			Index: gIdxBridge, Address: a, Local: a, Label: "br0",
			CacheInfo: rtnl.AddrCacheInfo{Preferred: 0xffffffff, Valid: 0xffffffff},
		})
	}},
	{"route_default", func(t *testing.T, name string, h rtnl.Header, body []byte) string {
		return checkRoute(t, name, h, body, rtnl.RouteMessage{
			Family: rtnl.FamilyInet, Table: rtnl.RouteTableMain, Protocol: rtnl.ProtoBoot,
			Scope: rtnl.ScopeUniverse, Type: rtnl.RouteUnicast,
			Gateway: netip.MustParseAddr("198.51.100.1"), OIF: gIdxCtnEth,
		})
	}},
}

func neighCase(w neighWant) func(*testing.T, string, rtnl.Header, []byte) string {
	return func(t *testing.T, name string, h rtnl.Header, body []byte) string {
		return checkNeigh(t, name, h, body, w)
	}
}

func linkCase(w linkWant) func(*testing.T, string, rtnl.Header, []byte) string {
	return func(t *testing.T, name string, h rtnl.Header, body []byte) string {
		return checkLink(t, name, h, body, w)
	}
}

// TestGoldenDecode decodes every captured kernel message field by field and
// compares its dump with testdata/kernel/NAME.txt (rewritten with -update).
func TestGoldenDecode(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			h, body, _ := readKernelMessage(t, tc.name)
			got := tc.check(t, tc.name, h, body)
			path := filepath.Join(goldenDir, tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden dump (regenerate with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("%s: dump differs from %s (regenerate with -update if the change is intended)\ngot:\n%s\nwant:\n%s",
					tc.name, path, got, want)
			}
		})
	}
}

// TestGoldenFilesAreSingleMessages checks that every .bin holds exactly one
// netlink message, as the benchmarks and fuzz seeds assume.
func TestGoldenFilesAreSingleMessages(t *testing.T) {
	bins, err := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) < len(goldenCases) {
		t.Fatalf("%d .bin files in %s, want at least %d", len(bins), goldenDir, len(goldenCases))
	}
	for _, p := range bins {
		raw, err := golden.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		it := rtnl.NewMessageIter(raw)
		n := 0
		for it.Next() {
			n++
		}
		if err := it.Err(); err != nil || n != 1 {
			t.Errorf("%s: %d messages, err %v; want exactly 1", p, n, err)
		}
	}
}
