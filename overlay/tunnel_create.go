package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Create steps of an encrypted overlay, after the gateway and before the
// vxlan (whose local address is the tunnel address).
const (
	stepTunnelIdentity = "tunnel-identity" // the node's owner and private key, made once
	stepTunnelClaim    = "tunnel-claim"    // its member record: tunnel address claimed, key and endpoint published
	stepTunnelDevice   = "tunnel-device"   // the WireGuard device up with key, port and address
)

// maxClaimTries bounds the tunnel addresses a create tries to claim.
const maxClaimTries = 64

// planTunnel checks an encrypted overlay's settings before anything is
// made: a store that keeps members, the MTU both layers leave, no route of
// the node's into the tunnel subnet but the device's own. It prepares the
// tunnel from what an earlier create recorded (its address, provider).
func (c *creation) planTunnel() error {
	e := c.cfg.Encrypt
	if _, ok := c.n.reg.(registry.MemberStore); !ok {
		return errors.New("overlay: encrypt needs a store that keeps member records (dir: or etcd://)")
	}
	c.ov.UnderlayAddr = c.ov.VTEP
	c.ov.VTEP = netip.Addr{}
	wgMTU, maxMTU := tunnelMTUs(c.ov.UnderlayMTU, c.ov.UnderlayAddr, e.Tunnel)
	if maxMTU == 0 || c.cfg.MTU > maxMTU {
		return fmt.Errorf("overlay: MTU %d is above what underlay %s (MTU %d, chosen by %s) allows with encryption: at most %d (WireGuard %d and VXLAN %d bytes of headers)",
			c.cfg.MTU, c.ov.UnderlayDev, c.ov.UnderlayMTU, c.ov.VTEPSource, maxMTU, c.ov.UnderlayMTU-wgMTU, wgMTU-maxMTU)
	}
	t := &Tunnel{Device: e.device(c.n.stateDir), MTU: wgMTU, Endpoint: netip.AddrPortFrom(c.ov.UnderlayAddr, e.Port)}
	prev, err := c.n.loadTunnel()
	if err != nil {
		return err
	}
	if prev != nil && prev.Device == t.Device {
		t.Provider, t.Address, t.Owner, t.PublicKey, t.LinkCreated = prev.Provider, prev.Address, prev.Owner, prev.PublicKey, prev.LinkCreated
		if t.Address.IsValid() {
			c.ov.VTEP = t.Address.Addr()
		}
	}
	if err := checkTunnelRoutes(c.host, e.Tunnel, t.Device); err != nil {
		return err
	}
	c.tun = t
	return nil
}

// checkTunnelRoutes refuses a tunnel subnet that a route of the node's
// main table overlaps, unless the route is dev's own.
func checkTunnelRoutes(host *rtnl.Conn, tunnel netip.Prefix, dev string) error {
	family := uint8(unix.AF_INET)
	if tunnel.Addr().Is6() {
		family = unix.AF_INET6
	}
	routes, err := host.RouteList(family, rtnl.RouteFilter{Table: unix.RT_TABLE_MAIN})
	if err != nil {
		return fmt.Errorf("overlay: list host routes: %w", err)
	}
	for _, r := range routes {
		if r.DstLen == 0 || !r.Dst.IsValid() {
			continue // the default route overlaps everything and says nothing
		}
		p := netip.PrefixFrom(r.Dst, int(r.DstLen))
		if !p.Overlaps(tunnel) {
			continue
		}
		l, err := host.LinkGet(r.OIF)
		if err == nil && l.Name == dev {
			continue
		}
		name := fmt.Sprintf("ifindex %d", r.OIF)
		if err == nil {
			name = l.Name
		}
		return fmt.Errorf("overlay: encrypt: the node routes %s via %s, which overlaps the tunnel subnet %s: give another tunnel subnet", p, name, tunnel)
	}
	return nil
}

// tunnel makes the node's WireGuard side: its identity, its member record
// (a tunnel address claimed), its device. Each step is recorded in
// STATE_DIR/wireguard/tunnel.json as it is made, so that a create killed
// half-way is finished by the next create and undone by reset.
func (c *creation) tunnel(r *steps.Runner) error {
	if c.cfg.Encrypt == nil {
		return nil
	}
	if err := c.tunnelIdentity(r); err != nil {
		return err
	}
	if err := c.tunnelClaim(r); err != nil {
		return err
	}
	if err := c.tunnelDevice(r); err != nil {
		return err
	}
	c.ov.Tunnel = c.tun
	return nil
}

func (c *creation) tunnelIdentity(r *steps.Runner) error {
	var ownerMade, keyMade bool
	return r.Do(stepTunnelIdentity, func() error {
		owner, made, err := c.n.nodeOwner()
		if err != nil {
			return err
		}
		ownerMade = made
		if c.tun.Owner != "" && c.tun.Owner != owner {
			return fmt.Errorf("overlay: %s names owner %s, %s another", tunnelFile, c.tun.Owner, ownerFile)
		}
		c.tun.Owner = owner
		if c.key, keyMade, err = c.n.nodeKey(); err != nil {
			return err
		}
		c.tun.PublicKey = c.key.PublicKey()
		return c.n.saveTunnel(c.tun)
	}, func() error {
		if keyMade {
			os.Remove(c.n.wgPath(privateKeyFile))
		}
		if ownerMade {
			os.Remove(c.n.wgPath(ownerFile))
			os.Remove(c.n.wgPath(tunnelFile))
			os.Remove(c.n.wireguardDir()) // only if empty
		}
		return nil
	})
}

func (c *creation) tunnelClaim(r *steps.Runner) error {
	ms := c.n.reg.(registry.MemberStore)
	var claimed bool
	return r.Do(stepTunnelClaim, func() error {
		addr, newly, err := c.claimAddress(ms)
		if err != nil {
			return err
		}
		claimed = newly
		c.tun.Address = netip.PrefixFrom(addr, c.cfg.Encrypt.Tunnel.Bits())
		c.ov.VTEP = addr
		c.n.log.Info("tunnel address claimed", "address", addr, "public_key", c.tun.PublicKey, "endpoint", c.tun.Endpoint)
		return c.n.saveTunnel(c.tun)
	}, func() error {
		if !claimed {
			return nil
		}
		return ms.RemoveMember(c.ctx, c.tun.Address.Addr(), c.tun.Owner)
	})
}

// member is the node's member record at addr.
func (c *creation) member(addr netip.Addr) registry.Member {
	t := *c.tun
	t.Address = netip.PrefixFrom(addr, c.cfg.Encrypt.Tunnel.Bits())
	return t.member(wireguard.Key{})
}

// member is t's member record, with next as its next key (zero: none).
func (t *Tunnel) member(next wireguard.Key) registry.Member {
	host, _ := os.Hostname()
	m := registry.Member{VTEP: t.Address.Addr(), Owner: t.Owner, Endpoint: t.Endpoint, PublicKey: t.PublicKey.String(), Hostname: host}
	if !next.IsZero() {
		m.NextKey = next.String()
	}
	return m
}

// claimAddress claims the node's tunnel address: the one it holds already
// (recorded, or found by its owner in the store), else the first free one
// from the address its underlay address suggests (the same host bits), in
// the store, atomically. It reports whether the claim is new.
func (c *creation) claimAddress(ms registry.MemberStore) (netip.Addr, bool, error) {
	if a := c.tun.Address; a.IsValid() {
		return a.Addr(), false, c.claimOwn(ms, a.Addr())
	}
	members, _, err := ms.Members(c.ctx)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("overlay: list the overlay's members: %w", err)
	}
	taken := map[netip.Addr]bool{}
	for _, m := range members {
		if m.Owner == c.tun.Owner && c.cfg.Encrypt.Tunnel.Contains(m.VTEP) {
			return m.VTEP, false, c.claimOwn(ms, m.VTEP)
		}
		taken[m.VTEP] = true
	}
	tried := 0
	for a := range tunnelCandidates(c.cfg.Encrypt.Tunnel, c.ov.UnderlayAddr) {
		if taken[a] {
			continue
		}
		if tried++; tried > maxClaimTries {
			break
		}
		err := ms.ClaimMember(c.ctx, c.member(a))
		if errors.Is(err, registry.ErrConflict) {
			continue // claimed by another node since the listing
		}
		return a, err == nil, err
	}
	return netip.Addr{}, false, fmt.Errorf("overlay: no free tunnel address in %s after %d tries (%d members)", c.cfg.Encrypt.Tunnel, tried, len(members))
}

// claimOwn claims addr again, with the node's current key and endpoint.
func (c *creation) claimOwn(ms registry.MemberStore, addr netip.Addr) error {
	if err := ms.ClaimMember(c.ctx, c.member(addr)); err != nil {
		return fmt.Errorf("overlay: claim tunnel address %s: %w", addr, err)
	}
	return nil
}

// tunnelCandidates yields the tunnel subnet's usable addresses, starting
// at the one with underlay's host bits and wrapping around.
func tunnelCandidates(tunnel netip.Prefix, underlay netip.Addr) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		hostBits := min(tunnel.Addr().BitLen()-tunnel.Bits(), 24) // at most 16M candidates
		size := uint64(1) << hostBits
		u := underlay.Unmap().AsSlice()
		start := uint64(binary.BigEndian.Uint32(u[len(u)-4:])) % size
		base := tunnel.Masked().Addr()
		for i := range size {
			off := (start + i) % size
			if off == 0 || (tunnel.Addr().Is4() && off == size-1) {
				continue // the network and broadcast addresses
			}
			if !yield(addOffset(base, off)) {
				return
			}
		}
	}
}

// addOffset returns a + off.
func addOffset(a netip.Addr, off uint64) netip.Addr {
	b := a.As16()
	lo := binary.BigEndian.Uint64(b[8:]) + off
	binary.BigEndian.PutUint64(b[8:], lo)
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}

func (c *creation) tunnelDevice(r *steps.Runner) error {
	e := c.cfg.Encrypt
	var ds deviceState
	created := false
	return r.Do(stepTunnelDevice, func() error {
		if c.tun.Provider == 0 {
			p, err := wireguard.Choose(c.host, c.tun.Device, c.tun.MTU, e.Provider)
			if err != nil {
				return err
			}
			c.tun.Provider, c.tun.LinkCreated = p, p == wireguard.ProviderKernel
			created = c.tun.LinkCreated
			if err := c.n.saveTunnel(c.tun); err != nil {
				return err
			}
			c.n.log.Info("WireGuard provider", "provider", p, "device", c.tun.Device)
		}
		var err error
		ds, err = c.n.ensureDevice(c.host, c.tun, c.key, e.Port)
		return err
	}, func() error {
		if ds.made || created {
			return c.n.stopDevice(c.host, c.tun)
		}
		return nil
	})
}
