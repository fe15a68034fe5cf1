package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Health: the daemon answers /healthz and /readyz beside /metrics, for a
// DaemonSet's liveness and readiness probes (or any supervisor).
//
//   - /healthz: 200 while Run serves (the monitor reads misses, the
//     resolver runs), 503 otherwise;
//   - /readyz: 200 once the node serves pods: Run serves, the overlay's
//     vxlan device is there and up, the store's change feed has synced,
//     and the store serves this node (registry.Readier: the Kubernetes
//     store's Node annotated, a podCIDR inside the subnet); 503 otherwise,
//     the body saying what is missing.

// Healthy returns nil while Run serves.
func (d *Daemon) Healthy() error {
	if !d.running.Load() {
		return errors.New("daemon: not serving")
	}
	return nil
}

// Ready returns nil once the daemon serves this node's pods (see above),
// else the first thing missing.
func (d *Daemon) Ready() error {
	if err := d.Healthy(); err != nil {
		return err
	}
	oc := d.ov.Config
	vx, err := d.k.conn.LinkByName(oc.Vxlan)
	switch {
	case err != nil:
		return fmt.Errorf("daemon: vxlan %s in netns %s: %w", oc.Vxlan, oc.OverlayNetNS, err)
	case vx.Flags&rtnl.LinkUp == 0:
		return fmt.Errorf("daemon: vxlan %s in netns %s is down", oc.Vxlan, oc.OverlayNetNS)
	}
	if d.res.Mode() != resolver.ModeReactive && !d.res.FeedStats().Synced {
		return errors.New("daemon: the store's change feed has not synced yet")
	}
	if rd, ok := d.store.(registry.Readier); ok {
		if err := rd.Ready(); err != nil {
			return err
		}
	}
	return nil
}

// healthHandlers are /healthz and /readyz.
func (d *Daemon) healthHandlers() map[string]http.Handler {
	probe := func(check func() error) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := check(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
			fmt.Fprintln(w, "ok")
		})
	}
	return map[string]http.Handler{"/healthz": probe(d.Healthy), "/readyz": probe(d.Ready)}
}

// announce tells the store, once the daemon is ready, that this node's
// network is up (the Kubernetes store: NetworkUnavailable False), retrying
// with backoff until it succeeds or ctx ends. On a store that assigns the
// node its blocks, the Service return path is put in place first.
func (d *Daemon) announce(ctx context.Context, an registry.Announcer) {
	backoff := 100 * time.Millisecond
	logged := false
	for {
		err := d.Ready()
		if err == nil {
			err = d.serviceReturn(ctx)
		}
		if err == nil {
			if err = an.Announce(ctx); err == nil {
				d.announced.Store(true)
				d.log.Info("node's network announced up")
				return
			}
		}
		if !logged || backoff >= 5*time.Second {
			d.log.Info("not announcing the node's network yet", "why", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Announced says whether the store was told this node's network is up.
func (d *Daemon) Announced() bool { return d.announced.Load() }

// serviceReturn puts the Service return path in place (overlay.Node's
// ServiceReturn) when the store assigns this node its blocks and the
// overlay has egress: the node address is the first of its blocks no
// container gets (ipam.NodeAddress).
func (d *Daemon) serviceReturn(ctx context.Context) error {
	ab, ok := d.store.(registry.AssignedBlocks)
	if !ok || d.ov.Config.Egress == nil {
		return nil
	}
	blocks, err := ab.AssignedBlocks(ctx)
	if err != nil {
		return err
	}
	addr, err := ipam.NodeAddress(d.ov.Config.Gateway, blocks)
	if err != nil {
		return err
	}
	return d.node.ServiceReturn(addr)
}
