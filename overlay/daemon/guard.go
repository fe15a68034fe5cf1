package daemon

import (
	"context"

	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/overlay/registry"
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
		want, _, werr := guard.Wanted(ctx, d.store.Registry, d.ov.VTEP)
		if werr != nil {
			log.Warn("VTEP allowlist: registry incomplete at start", "err", werr)
		}
		if err := al.Ensure(want); err != nil {
			return err
		}
		st = &guard.FollowStats{}
		feed, _ := d.store.Registry.(registry.ChangeFeed) // nil without one
		go guard.Follow(ctx, guard.FollowConfig{Allowlist: al, Registry: d.store.Registry, Feed: feed, Local: d.ov.VTEP,
			Resync: d.reconcile, Logger: log, Stats: st})
		log.Info("VTEP allowlist in place", "port", d.topo.Port, "addresses", len(want))
	}
	d.metrics.AddCollector(guard.Collector(al, ports, st))
	return nil
}
