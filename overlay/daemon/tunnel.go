package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
)

// tunnel is the daemon's side of an encrypted overlay: it supervises the
// WireGuard device (a userspace process killed is started again and
// configured as before, peers included) and keeps its peers, and the
// allowlist's set of their endpoints, in line with the members the
// allowlist's follower hands it.
type tunnel struct {
	node *overlay.Node
	t    overlay.Tunnel
	log  *slog.Logger
	al   *guard.Allowlist // set once the allowlist is open

	mu       sync.Mutex
	applied  map[wireguard.Key]netip.AddrPort // endpoints last set per peer
	members  []registry.Member                // as last applied
	ready    bool                             // members holds a first view
	complete bool                             // members was a complete view

	peers    atomic.Int64
	restarts atomic.Uint64
	added    atomic.Uint64
	updated  atomic.Uint64
	removed  atomic.Uint64
	errors   atomic.Uint64
}

func newTunnel(node *overlay.Node, t overlay.Tunnel, log *slog.Logger) *tunnel {
	return &tunnel{node: node, t: t, log: log, applied: map[wireguard.Key]netip.AddrPort{}}
}

// supervise brings the device up (EnsureTunnel) and, for a userspace
// device, watches its process until ctx ends: when it exits (killed, its
// TUN deleted) the device is made again at once and given its peers
// again. The first EnsureTunnel's error is returned; later ones are logged
// and retried every second.
func (tu *tunnel) supervise(ctx context.Context) (wait func(), err error) {
	td, err := tu.node.EnsureTunnel(ctx)
	if err != nil {
		return nil, err
	}
	if td.Made {
		tu.restarts.Add(1)
	}
	done, follow := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(follow)
		tu.followRekeys(ctx)
	}()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			exited := td.Exited
			if exited == nil && td.Pid != 0 {
				var err error
				if exited, err = wireguard.WatchProcess(ctx, td.Pid); err != nil {
					exited = closed() // gone already
				}
			}
			if exited == nil {
				return // the kernel's device: nothing to watch
			}
			select {
			case <-ctx.Done():
				return
			case <-exited:
			}
			if ctx.Err() != nil {
				return
			}
			tu.log.Warn("WireGuard device process exited: starting it again", "device", tu.t.Device, "pid", td.Pid)
			td = tu.restart(ctx)
		}
	}()
	return func() { <-done; <-follow }, nil
}

// restart makes the device again until it is up or ctx ends, then gives it
// its peers again.
func (tu *tunnel) restart(ctx context.Context) overlay.TunnelDevice {
	for {
		td, err := tu.node.EnsureTunnel(ctx)
		if err == nil {
			tu.restarts.Add(1)
			tu.reapply()
			return td
		}
		tu.errors.Add(1)
		tu.log.Error("WireGuard device not up again yet", "device", tu.t.Device, "err", err)
		select {
		case <-ctx.Done():
			return overlay.TunnelDevice{}
		case <-time.After(time.Second):
		}
	}
}

// rekeyPoll is how often the daemon looks at the device for a handshake
// with a member's next key while one is pending.
const rekeyPoll = 50 * time.Millisecond

// followRekeys, while a member has a next key, looks at the device every
// rekeyPoll: a handshake with that key means the member switched, and its
// tunnel address moves to the new key at once (wireguard.Switched), before
// the store's change arrives. Until ctx ends.
func (tu *tunnel) followRekeys(ctx context.Context) {
	t := time.NewTicker(rekeyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tu.mu.Lock()
		var wants []wireguard.Want
		pending := false
		for _, m := range tu.members {
			if w, err := wireguard.WantOf(m); err == nil {
				wants = append(wants, w)
				pending = pending || !w.Next.IsZero()
			}
		}
		if pending {
			if err := tu.configure(wants, tu.complete); err != nil {
				tu.log.Debug("WireGuard rekey follow", "err", err)
			}
		}
		tu.mu.Unlock()
	}
}

func closed() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// reapply gives the device the peers last applied (after it was made
// again: it has none).
func (tu *tunnel) reapply() {
	tu.mu.Lock()
	members, ready := tu.members, tu.ready
	tu.mu.Unlock()
	if ready {
		tu.apply(members, false)
	}
}

// apply makes the device's peers, and the allowlist's set of their
// endpoints, the members' (guard.MemberFollow.Apply): from an incomplete
// view only additions.
func (tu *tunnel) apply(members []registry.Member, complete bool) {
	tu.mu.Lock()
	defer tu.mu.Unlock()
	tu.members, tu.ready, tu.complete = members, true, complete
	wants := make([]wireguard.Want, 0, len(members))
	addrs := make([]netip.Addr, 0, len(members))
	for _, m := range members {
		w, err := wireguard.WantOf(m)
		if err != nil {
			continue // the checker let no such member through
		}
		wants = append(wants, w)
		addrs = append(addrs, m.Endpoint.Addr())
	}
	if tu.al != nil {
		if _, _, err := tu.al.SyncPeers(addrs, complete); err != nil {
			tu.errors.Add(1)
			tu.log.Warn("WireGuard peers' allowlist update failed", "err", err)
		}
	}
	if err := tu.configure(wants, complete); err != nil {
		tu.errors.Add(1)
		tu.log.Warn("WireGuard peers update failed", "device", tu.t.Device, "err", err)
	}
}

// configure plans and applies the wanted peers on the device.
func (tu *tunnel) configure(wants []wireguard.Want, complete bool) error {
	c, err := clientOf(tu.t.Provider)
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.Device(tu.t.Device)
	if err != nil {
		return err
	}
	cfg, ch := wireguard.Plan(d, wireguard.Switched(d, wants), complete, tu.applied)
	if !cfg.IsEmpty() {
		if err := c.Configure(tu.t.Device, cfg); err != nil {
			clear(tu.applied) // unknown now: endpoints are set again next time
			return err
		}
		tu.log.Info("WireGuard peers updated", "device", tu.t.Device, "added", ch.Added, "updated", ch.Updated,
			"removed", ch.Removed, "peers", len(d.Peers)+ch.Added-ch.Removed, "complete", complete)
	}
	tu.added.Add(uint64(ch.Added))
	tu.updated.Add(uint64(ch.Updated))
	tu.removed.Add(uint64(ch.Removed))
	tu.peers.Store(int64(len(d.Peers) + ch.Added - ch.Removed))
	return nil
}

func clientOf(p wireguard.Provider) (wireguard.Client, error) {
	if p == wireguard.ProviderKernel {
		return wireguard.DialKernel()
	}
	return &wireguard.UAPI{}, nil
}

// writeMetrics writes the tunnel's metrics: peers, their changes, device
// restarts, failed updates, bytes in and out, and what a userspace
// device rejected. A node without encryption (tu nil) exports them as
// zeros.
func (tu *tunnel) writeMetrics(w io.Writer) {
	var peers int64
	var added, updated, removed, starts, errs, rx, tx uint64
	var rej wireguard.Counters
	if tu != nil {
		peers, starts, errs = tu.peers.Load(), tu.restarts.Load(), tu.errors.Load()
		added, updated, removed = tu.added.Load(), tu.updated.Load(), tu.removed.Load()
		rx, tx, _ = tu.bytes()
		if tu.t.Provider == wireguard.ProviderUserspace {
			rej, _ = wireguard.ReadCounters(filepath.Join(tu.node.StateDir(), "wireguard"))
		}
	}
	promtext.Gauge(w, "overlayd_wireguard_peers", "WireGuard peers on this node's device.", peers)
	changes := [...]struct {
		name string
		n    uint64
	}{{"added", added}, {"updated", updated}, {"removed", removed}}
	promtext.Family(w, "overlayd_wireguard_peer_changes_total", "counter", "WireGuard peers added, updated and removed.",
		"change", len(changes), func(i int) (string, uint64) { return changes[i].name, changes[i].n })
	promtext.Counter(w, "overlayd_wireguard_device_starts_total", "WireGuard devices made by the daemon (at start, and after its process exited).", starts)
	promtext.Counter(w, "overlayd_wireguard_errors_total", "Failed updates of the WireGuard device or its peers' allowlist.", errs)
	bytes := [...]uint64{rx, tx}
	promtext.Family(w, "overlayd_wireguard_bytes_total", "counter", "Bytes received from and sent to the WireGuard peers (as their device counts them).",
		"direction", len(bytes), func(i int) (string, uint64) { return [...]string{"rx", "tx"}[i], bytes[i] })
	rejected := [...]uint64{rej.InvalidHandshakes, rej.InvalidSource}
	promtext.Family(w, "overlayd_wireguard_rejected_total", "counter", "What the userspace WireGuard device rejected since its process started, by reason.",
		"reason", len(rejected), func(i int) (string, uint64) { return [...]string{"handshake", "source"}[i], rejected[i] })
}

// bytes are the device's bytes in and out over its peers, for metrics.
func (tu *tunnel) bytes() (rx, tx uint64, err error) {
	c, err := clientOf(tu.t.Provider)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	d, err := c.Device(tu.t.Device)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range d.Peers {
		rx += p.RxBytes
		tx += p.TxBytes
	}
	return rx, tx, nil
}
