package guard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/overlay/nft"
)

// Feature is the guard's feature name: its tables are "overlaynet-guard".
const Feature = "guard"

// Names in the allowlist table.
const (
	vtepSet       = "vteps"
	vtepChain     = "vxlan-in"
	vtepDropTag   = "vtep-not-allowed"
	peerSet       = "wireguard-peers"
	outsideTag    = "vxlan-outside-tunnel"
	wgDropTag     = "wireguard-not-allowed"
	reasonTagsLen = 3
)

// AllowlistTable is the VTEP allowlist's table, in the node's namespace.
func AllowlistTable() nft.Table { return nft.FeatureTable(nft.FamilyINet, Feature) }

// Allowlist is the VTEP allowlist of one node: VXLAN to Port is accepted
// only from the addresses in its set.
type Allowlist struct {
	c    *nft.Conn
	set  nft.Set
	ch   nft.Chain
	port uint16
	v6   bool
	// cur is what the set holds since the last transaction of this
	// Allowlist (nil: unknown, the next Sync replaces the whole set). Sync
	// works from it rather than from a dump of the set: a dump that meets a
	// resize of the kernel's hash table may repeat or skip elements.
	cur map[netip.Addr]bool
	// tun is the encrypted overlay's part (nil without encryption).
	tun *tunnelRules
}

// tunnelRules are an encrypted overlay's rules: VXLAN only from inside
// the WireGuard device, WireGuard only from the peers' endpoints.
type tunnelRules struct {
	dev    string  // the WireGuard device
	port   uint16  // its UDP port
	v6     bool    // the underlay is IPv6
	set    nft.Set // the peers' endpoint addresses
	cur    map[netip.Addr]bool
	synced bool // cur is what the set holds
}

// Tunnel makes the allowlist an encrypted overlay's: VXLAN to its port is
// also dropped unless it comes in through the WireGuard device dev (the
// VTEPs are tunnel addresses), and WireGuard to wgPort is dropped unless
// its source is one of the peers' endpoint addresses (SyncPeers), of
// underlay's family.
func (a *Allowlist) Tunnel(dev string, wgPort uint16, underlay netip.Addr) error {
	if dev == "" || wgPort == 0 || !underlay.IsValid() {
		return errors.New("guard: allowlist: a tunnel needs its device, its port and the underlay address")
	}
	t := &tunnelRules{dev: dev, port: wgPort, v6: !underlay.Unmap().Is4()}
	key := nft.KeyIPv4
	if t.v6 {
		key = nft.KeyIPv6
	}
	t.set = nft.Set{Table: a.set.Table, Name: peerSet, Key: key}
	a.tun = t
	return nil
}

// OpenAllowlist returns the allowlist for the overlay's UDP port and the
// VTEP address family of local (its own VTEP), without changing anything.
func OpenAllowlist(c *nft.Conn, port uint16, local netip.Addr) (*Allowlist, error) {
	if port == 0 {
		return nil, errors.New("guard: allowlist: no UDP port")
	}
	if !local.IsValid() {
		return nil, errors.New("guard: allowlist: no local VTEP")
	}
	t := AllowlistTable()
	a := &Allowlist{c: c, port: port, v6: !local.Unmap().Is4()}
	key := nft.KeyIPv4
	if a.v6 {
		key = nft.KeyIPv6
	}
	a.set = nft.Set{Table: t, Name: vtepSet, Key: key}
	a.ch = nft.Chain{Table: t, Name: vtepChain, Base: &nft.Base{
		Type: nft.ChainFilter, Hook: nft.HookInput, Priority: nft.PriorityFilter - 10, Policy: nft.PolicyAccept}}
	return a, nil
}

// rules are the drop rules: `meta nfproto ipv4 meta l4proto udp udp dport
// PORT ip saddr != @vteps counter drop` (ip6 for an IPv6 underlay); with a
// tunnel, first `udp dport PORT iifname != DEV counter drop`, and `udp
// dport WGPORT ip saddr != @wireguard-peers counter drop` (of the
// underlay's family).
func (a *Allowlist) rules() []nft.Rule {
	vxlan := udpDport(a.port)
	out := []nft.Rule{}
	if a.tun != nil {
		out = append(out, nft.Rule{Tag: outsideTag, Exprs: nft.Concat(
			vxlan, nft.IIFName(a.tun.dev, true), nft.One(nft.Counter(), nft.Drop()))})
	}
	out = append(out, nft.Rule{Tag: vtepDropTag, Exprs: nft.Concat(
		familyMatch(a.v6), vxlan, srcOf(a.v6), nft.One(nft.InSet(a.set, true), nft.Counter(), nft.Drop()))})
	if t := a.tun; t != nil {
		out = append(out, nft.Rule{Tag: wgDropTag, Exprs: nft.Concat(
			familyMatch(t.v6), udpDport(t.port), srcOf(t.v6), nft.One(nft.InSet(t.set, true), nft.Counter(), nft.Drop()))})
	}
	return out
}

// familyMatch matches IPv4 packets (IPv6 with v6).
func familyMatch(v6 bool) []expr.Any {
	if !v6 {
		return nft.IPv4()
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

// udpDport matches UDP to port.
func udpDport(port uint16) []expr.Any {
	return nft.One(
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	)
}

// srcOf loads the source address (IPv6 with v6) into register 1.
func srcOf(v6 bool) []expr.Any {
	if !v6 {
		return []expr.Any{nft.LoadIPv4Src()}
	}
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}}
}

// Ensure makes the table, set, chain and rule exist (idempotent: an
// existing rule keeps its handle and counter) with the set holding exactly
// initial. The set is filled (replaced in place: flushed and refilled in one
// transaction, so the rule never sees it empty) before the rule is added:
// the rule never drops for want of a set filled later.
func (a *Allowlist) Ensure(initial []netip.Addr) error {
	b := a.c.Begin()
	b.AddTable(a.set.Table)
	b.AddSet(a.set, nil)
	if a.tun != nil {
		b.AddSet(a.tun.set, nil)
	}
	b.AddChain(a.ch)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("guard: allowlist table: %w", err)
	}
	a.cur = nil
	if _, _, err := a.Sync(initial); err != nil {
		return err
	}
	if _, err := a.c.EnsureRules(a.ch, a.rules()); err != nil {
		return fmt.Errorf("guard: allowlist rule: %w", err)
	}
	return nil
}

// PeerAddrs returns the addresses of the WireGuard peers' set, sorted
// (none without a tunnel).
func (a *Allowlist) PeerAddrs() ([]netip.Addr, error) {
	if a.tun == nil {
		return nil, nil
	}
	return setAddrs(a.c, a.tun.set)
}

// SyncPeers makes the WireGuard peers' set hold want (the peers'
// endpoint addresses), or, with complete false, want and what it holds
// (only additions are safe from an incomplete view), in one transaction.
// It returns how many addresses were added and removed.
func (a *Allowlist) SyncPeers(want []netip.Addr, complete bool) (added, removed int, err error) {
	t := a.tun
	if t == nil {
		return 0, 0, errors.New("guard: allowlist: no tunnel")
	}
	if !t.synced {
		have, err := setAddrs(a.c, t.set)
		if err != nil {
			return 0, 0, err
		}
		t.cur = map[netip.Addr]bool{}
		for _, x := range have {
			t.cur[x] = true
		}
		t.synced = true
	}
	wantSet := map[netip.Addr]bool{}
	for _, x := range want {
		if x = x.Unmap(); x.IsValid() && x.Is4() != t.v6 {
			wantSet[x] = true
		}
	}
	if !complete {
		for x := range t.cur {
			wantSet[x] = true
		}
	}
	var add, del [][]byte
	for x := range wantSet {
		if !t.cur[x] {
			add = append(add, nft.AddrKey(x))
		}
	}
	for x := range t.cur {
		if !wantSet[x] {
			del = append(del, nft.AddrKey(x))
		}
	}
	if len(add)+len(del) == 0 {
		return 0, 0, nil
	}
	b := a.c.Begin()
	if len(add) > 0 {
		b.AddElements(t.set, add)
	}
	if len(del) > 0 {
		b.DeleteElements(t.set, del)
	}
	if err := b.Commit(); err != nil {
		t.synced = false
		return 0, 0, fmt.Errorf("guard: WireGuard peers' set update: %w", err)
	}
	t.cur = wantSet
	return len(add), len(del), nil
}

func (a *Allowlist) keys(addrs []netip.Addr) ([][]byte, error) {
	out := make([][]byte, 0, len(addrs))
	for _, x := range addrs {
		x = x.Unmap()
		if !x.IsValid() || x.Is4() == a.v6 {
			return nil, fmt.Errorf("guard: allowlist: %s is not an address of the underlay's family", x)
		}
		out = append(out, nft.AddrKey(x))
	}
	return out, nil
}

// Addrs returns the allowed addresses, sorted.
func (a *Allowlist) Addrs() ([]netip.Addr, error) { return setAddrs(a.c, a.set) }

// setAddrs returns the addresses in set s, sorted and each once.
func setAddrs(c *nft.Conn, s nft.Set) ([]netip.Addr, error) {
	els, err := c.Elements(s)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(els))
	for _, e := range els {
		if x, ok := netip.AddrFromSlice(e.Key); ok {
			out = append(out, x)
		}
	}
	// A dump that meets a resize of the kernel's hash table may deliver an
	// element twice: deleting it twice in one transaction would fail it.
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// Sync makes the set hold exactly want, in place, in one transaction: the
// addresses missing are added and the others deleted (the whole set is
// replaced when what it holds is not known, after a failure); the rule is
// not touched. It returns how many addresses were added and removed.
func (a *Allowlist) Sync(want []netip.Addr) (added, removed int, err error) {
	wantSet := make(map[netip.Addr]bool, len(want))
	for _, x := range want {
		wantSet[x.Unmap()] = true
	}
	all := make([]netip.Addr, 0, len(wantSet))
	for x := range wantSet {
		all = append(all, x)
	}
	allKeys, err := a.keys(all)
	if err != nil {
		return 0, 0, err
	}
	b := a.c.Begin()
	if a.cur == nil {
		b.FlushSet(a.set)
		if len(allKeys) > 0 {
			b.AddElements(a.set, allKeys)
		}
		added = len(all)
	} else {
		var add, del []netip.Addr
		for x := range wantSet {
			if !a.cur[x] {
				add = append(add, x)
			}
		}
		for x := range a.cur {
			if !wantSet[x] {
				del = append(del, x)
			}
		}
		if len(add) == 0 && len(del) == 0 {
			return 0, 0, nil
		}
		addKeys, _ := a.keys(add)
		delKeys, _ := a.keys(del)
		if len(addKeys) > 0 {
			b.AddElements(a.set, addKeys)
		}
		if len(delKeys) > 0 {
			b.DeleteElements(a.set, delKeys)
		}
		added, removed = len(add), len(del)
	}
	if err := b.Commit(); err != nil {
		a.cur = nil
		return 0, 0, fmt.Errorf("guard: allowlist update: %w", err)
	}
	a.cur = wantSet
	return added, removed, nil
}

// Drops returns the packets and bytes the allowlist dropped from
// addresses that are no VTEP of the overlay.
func (a *Allowlist) Drops() (packets, bytes uint64, err error) {
	by, err := a.DropsBy()
	return by[ReasonVTEP].Packets, by[ReasonVTEP].Bytes, err
}

// Count is a rule's counter.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// DropsBy returns what the allowlist's rules dropped, by reason: VXLAN
// from an address that is no VTEP (ReasonVTEP), and in an encrypted
// overlay VXLAN from outside the tunnel (ReasonOutsideTunnel) and
// WireGuard from an address that is no peer's (ReasonWireGuard).
func (a *Allowlist) DropsBy() (map[Reason]Count, error) {
	rules, err := a.c.Rules(a.ch)
	if err != nil {
		return nil, err
	}
	tags := map[string]Reason{vtepDropTag: ReasonVTEP, outsideTag: ReasonOutsideTunnel, wgDropTag: ReasonWireGuard}
	out := make(map[Reason]Count, reasonTagsLen)
	for _, r := range rules {
		if why, ok := tags[r.Tag]; ok {
			c := out[why]
			c.Packets += r.Packets
			c.Bytes += r.Bytes
			out[why] = c
		}
	}
	return out, nil
}

// Installed reports whether the allowlist's table exists.
func (a *Allowlist) Installed() (bool, error) { return a.c.TableExists(a.set.Table) }

// RemoveAllowlist deletes the allowlist's table (nothing else); a missing
// table is not an error.
func RemoveAllowlist(c *nft.Conn) error { return c.DeleteTable(AllowlistTable()) }
