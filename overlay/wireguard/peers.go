package wireguard

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Want is a peer a node wants on its device: one member of the overlay.
type Want struct {
	// Key is the member's public key; its tunnel address is routed to it.
	Key Key
	// Next, during the member's rekey, is the key it will switch to: a
	// peer with no allowed IP, so that its handshakes are answered.
	Next Key
	// Endpoint is where the member is reached.
	Endpoint netip.AddrPort
	// VTEP is the member's tunnel address (its only allowed IP).
	VTEP netip.Addr
}

// WantOf is the peer a member record asks for.
func WantOf(m registry.Member) (Want, error) {
	k, err := ParseKey(m.PublicKey)
	if err != nil {
		return Want{}, fmt.Errorf("wireguard: member %s: %w", m.VTEP, err)
	}
	w := Want{Key: k, Endpoint: m.Endpoint, VTEP: m.VTEP}
	if m.NextKey != "" {
		if w.Next, err = ParseKey(m.NextKey); err != nil {
			return Want{}, fmt.Errorf("wireguard: member %s next key: %w", m.VTEP, err)
		}
	}
	return w, nil
}

// Keepalive is the persistent keepalive Plan gives every peer: set on a
// new peer it sends a keepalive at once, so the handshake is made when the
// peer is added, before any container needs it (and again by a device
// made anew, whose peers still hold sessions it forgot); afterwards it
// keeps the sessions up (a 32-byte packet per peer per 25 s when idle).
const Keepalive = 25 * time.Second

// Switched returns wants with each member whose next key has made a
// handshake on dev already counted as switched to it (its next key as its
// key): a member that rekeys starts using the new key before the store
// says so, and this node moves its tunnel address as soon as the first
// handshake shows it, not after the store's change reaches it.
func Switched(dev *Device, wants []Want) []Want {
	out := slices.Clone(wants)
	for i, w := range out {
		if w.Next.IsZero() {
			continue
		}
		if p := dev.Peer(w.Next); p != nil && !p.LastHandshake.IsZero() {
			out[i].Key, out[i].Next = w.Next, Key{}
		}
	}
	return out
}

// Changes counts what a Plan changes.
type Changes struct {
	Added, Updated, Removed int
}

// Plan returns the change that makes dev's peers the wanted ones: each
// wanted key a peer whose allowed IPs are exactly its tunnel address, each
// next key a peer with none, and, when complete (want is every peer the
// node should have), every other peer removed; from an incomplete view
// nothing is removed. A new peer gets its endpoint; an existing one keeps
// the one it has (WireGuard roams to where its authenticated packets come
// from) unless the member's endpoint changed since applied last recorded
// it. applied is updated to the endpoints of want.
func Plan(dev *Device, want []Want, complete bool, applied map[Key]netip.AddrPort) (Config, Changes) {
	var c Config
	var ch Changes
	keep := map[Key]bool{}
	for _, w := range want {
		keep[w.Key] = true
		ips := []netip.Prefix{netip.PrefixFrom(w.VTEP, w.VTEP.BitLen())}
		ch.add(&c, dev.Peer(w.Key), w.Key, w.Endpoint, ips, Keepalive, applied)
		if !w.Next.IsZero() {
			// No keepalive yet: a handshake with the next key before the
			// member switches to it fails, and its retry would come 5 s
			// later; the keepalive set when the member's address moves to
			// it starts the handshake then.
			keep[w.Next] = true
			ch.add(&c, dev.Peer(w.Next), w.Next, w.Endpoint, nil, 0, applied)
		}
	}
	for k := range applied {
		if !keep[k] {
			delete(applied, k)
		}
	}
	if !complete {
		return c, ch
	}
	for _, p := range dev.Peers {
		if !keep[p.PublicKey] {
			c.Peers = append(c.Peers, PeerConfig{PublicKey: p.PublicKey, Remove: true})
			ch.Removed++
		}
	}
	return c, ch
}

// add plans peer k (have: as the device holds it, nil if it does not),
// with the persistent keepalive ka (0: none set).
func (ch *Changes) add(c *Config, have *Peer, k Key, ep netip.AddrPort, ips []netip.Prefix, ka time.Duration, applied map[Key]netip.AddrPort) {
	last, known := applied[k]
	applied[k] = ep
	if have == nil {
		c.Peers = append(c.Peers, PeerConfig{PublicKey: k, Endpoint: ep, ReplaceAllowedIPs: true, AllowedIPs: ips, Keepalive: ka})
		ch.Added++
		return
	}
	pc := PeerConfig{PublicKey: k, UpdateOnly: true}
	if known && last != ep && have.Endpoint != ep {
		pc.Endpoint = ep
	}
	if !samePrefixes(have.AllowedIPs, ips) {
		pc.ReplaceAllowedIPs, pc.AllowedIPs = true, ips
	}
	if ka > 0 && have.Keepalive != ka {
		pc.Keepalive = ka
	}
	if pc.Endpoint.IsValid() || pc.ReplaceAllowedIPs || pc.Keepalive > 0 {
		c.Peers = append(c.Peers, pc)
		ch.Updated++
	}
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	}
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}
