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
	vtepSet     = "vteps"
	vtepChain   = "vxlan-in"
	vtepDropTag = "vtep-not-allowed"
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

// rule is the drop rule: `meta nfproto ipv4 meta l4proto udp udp dport
// PORT ip saddr != @vteps counter drop` (ip6 for an IPv6 underlay).
func (a *Allowlist) rule() nft.Rule {
	proto, src := nft.IPv4(), []expr.Any{nft.LoadIPv4Src()}
	if a.v6 {
		proto = []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		}
		src = []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}}
	}
	port := binary.BigEndian.AppendUint16(nil, a.port)
	return nft.Rule{Tag: vtepDropTag, Exprs: nft.Concat(
		proto,
		nft.One(
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		),
		src,
		nft.One(nft.InSet(a.set, true), nft.Counter(), nft.Drop()),
	)}
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
	b.AddChain(a.ch)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("guard: allowlist table: %w", err)
	}
	a.cur = nil
	if _, _, err := a.Sync(initial); err != nil {
		return err
	}
	if _, err := a.c.EnsureRules(a.ch, []nft.Rule{a.rule()}); err != nil {
		return fmt.Errorf("guard: allowlist rule: %w", err)
	}
	return nil
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
func (a *Allowlist) Addrs() ([]netip.Addr, error) {
	els, err := a.c.Elements(a.set)
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

// Drops returns the packets and bytes the allowlist dropped.
func (a *Allowlist) Drops() (packets, bytes uint64, err error) {
	rules, err := a.c.Tagged(a.ch, nft.TagIs(vtepDropTag))
	if err != nil {
		return 0, 0, err
	}
	for _, r := range rules {
		packets += r.Packets
		bytes += r.Bytes
	}
	return packets, bytes, nil
}

// Installed reports whether the allowlist's table exists.
func (a *Allowlist) Installed() (bool, error) { return a.c.TableExists(a.set.Table) }

// RemoveAllowlist deletes the allowlist's table (nothing else); a missing
// table is not an error.
func RemoveAllowlist(c *nft.Conn) error { return c.DeleteTable(AllowlistTable()) }
