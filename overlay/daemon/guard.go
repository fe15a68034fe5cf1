package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// startGuard puts the overlay's protections in place before the daemon
// serves: the anti-spoofing rules of every local endpoint (again, if they
// were lost), and the VTEP allowlist in the daemon's own ("host")
// namespace, where the vxlan's socket receives, filled from the registry
// before its drop rule is added, then kept in line with the registry until
// ctx ends. Both stay when the daemon stops (a restart finds them
// unchanged); reset removes them. Their drops are exported by reason.
func (d *Daemon) startGuard(ctx context.Context) error {
	cfg := d.ov.Config
	log := d.log
	var ports func() ([]guard.PortRules, error)
	if cfg.NoAntispoof {
		log.Warn("anti-spoofing is off (create --no-antispoof): containers can forge MAC, IP and ARP")
	} else {
		k, err := d.node.RestoreAntispoof()
		if err != nil {
			return err
		}
		ports = func() ([]guard.PortRules, error) { return d.node.GuardPorts(cfg.OverlayNetNS) }
		log.Info("anti-spoofing rules in place", "ports", k)
	}
	var al *guard.Allowlist
	var st *guard.FollowStats
	if cfg.NoVTEPFilter {
		log.Warn("the VTEP allowlist is off (create --no-vtep-filter): any host reaching the UDP port can inject frames", "port", d.topo.Port)
	} else {
		host, err := nft.Dial(-1)
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, func() { host.Close() })
		if al, err = guard.OpenAllowlist(host, d.topo.Port, d.ov.VTEP); err != nil {
			return err
		}
		feed, _ := d.store.(registry.ChangeFeed) // nil without one
		fc := guard.FollowConfig{Allowlist: al, Registry: d.store, Local: d.ov.VTEP,
			Resync: d.reconcile, Logger: log, Stats: &guard.FollowStats{}, Checker: d.check}
		if d.tun != nil {
			if err := d.followMembers(al, &fc); err != nil {
				return err
			}
		}
		var want []netip.Addr
		if feed == nil {
			var werr error
			if want, _, werr = guard.Wanted(ctx, d.store, d.check, d.ov.VTEP); werr != nil {
				log.Warn("VTEP allowlist: registry incomplete at start", "err", werr)
			}
		} else {
			// The records' VTEPs come from the change feed as it delivers
			// them (the resolver's when it watches one; the registry is not
			// listed): until then the set keeps what it held and gets the
			// live nodes.
			if d.vteps != nil && d.res.Mode() != resolver.ModeReactive {
				fc.VTEPs = d.vteps
			} else {
				fc.Feed = feed
			}
			want = initialFromFeedStore(ctx, al, d.store, d.check, d.ov.VTEP, log)
		}
		if err := al.Ensure(want); err != nil {
			return err
		}
		st = fc.Stats
		go guard.Follow(ctx, fc)
		log.Info("VTEP allowlist in place", "port", d.topo.Port, "addresses", len(want))
	}
	d.metrics.AddCollector(guard.Collector(al, ports, st))
	return nil
}

// initialFromFeedStore is the allowlist a store with a change feed starts
// with before its feed delivered the records: this node, the live nodes
// (etcd's nodes/ keys, O(nodes)) and what the set already holds (a restart
// keeps allowing what it allowed; the feed's first complete delivery then
// removes what is gone), each as check accepts it.
func initialFromFeedStore(ctx context.Context, al *guard.Allowlist, reg registry.Registry, check *registry.Checker, local netip.Addr, log *slog.Logger) []netip.Addr {
	want := []netip.Addr{local}
	if nl, ok := reg.(registry.NodeLister); ok {
		nodes, err := nl.NodeVTEPs(ctx)
		if err != nil {
			log.Warn("VTEP allowlist: cannot list the live nodes at start", "err", err)
		}
		want = append(want, slices.DeleteFunc(nodes, func(a netip.Addr) bool { return !check.AcceptNode(a) })...)
	}
	if ok, err := al.Installed(); err == nil && ok {
		if have, err := al.Addrs(); err == nil {
			want = append(want, have...)
		}
	}
	out := want[:0]
	for _, a := range want {
		a = a.Unmap()
		if _, err := check.Policy().CheckVTEP(a); a == local || (err == nil && a.Is4() == local.Unmap().Is4()) {
			out = append(out, a)
		}
	}
	return out
}

// followMembers makes al an encrypted overlay's (VXLAN only through the
// WireGuard device, WireGuard only from the peers) and has the follower
// keep the device's peers in line with it.
func (d *Daemon) followMembers(al *guard.Allowlist, fc *guard.FollowConfig) error {
	t, e := d.ov.Tunnel, d.ov.Config.Encrypt
	if err := al.Tunnel(t.Device, e.Port, d.ov.Underlay()); err != nil {
		return err
	}
	d.tun.al = al
	mf := &guard.MemberFollow{Store: d.store.(registry.MemberStore), Apply: d.tun.apply}
	if w, ok := d.store.(registry.MemberWatcher); ok {
		mf.Watcher = w
	}
	fc.Members = mf
	return nil
}
