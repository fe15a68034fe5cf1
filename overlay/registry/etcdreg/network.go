package etcdreg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// The overlay's network is stored as JSON in config, without a lease: it
// outlives nodes.
// PublishNetwork records n as the overlay's configuration if none is
// recorded yet. If one is, it must equal n: a node configured differently
// from the rest gets a *registry.NetworkMismatchError (matching
// registry.ErrConflict) that names each differing setting. The registry of
// one VNI (vni= in the URL) refuses the network of another the same way.
func (r *Registry) PublishNetwork(ctx context.Context, n registry.Network) error {
	if n.VNI != r.opts.VNI {
		have := n
		have.VNI = r.opts.VNI
		return registry.CheckNetwork(n, have)
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("etcdreg: %w", err)
	}
	octx, done := r.opCtx(ctx)
	defer done()
	k := r.configKey()
	resp, err := r.cli.Txn(octx).If(etcdv3.Compare(etcdv3.CreateRevision(k), "=", 0)).
		Then(etcdv3.OpPut(k, string(b))).Else(etcdv3.OpGet(k)).Commit()
	if err != nil {
		return r.wrap("publish network", err)
	}
	if resp.Succeeded {
		return nil
	}
	kv := firstKV(resp.Responses[0])
	if kv == nil {
		return fmt.Errorf("etcdreg: publish network: %s vanished meanwhile", k)
	}
	var have registry.Network
	if err := json.Unmarshal(kv.Value, &have); err != nil {
		return fmt.Errorf("etcdreg: %s: malformed network config: %w", k, err)
	}
	return registry.CheckNetwork(n, have)
}

// Network returns the overlay's recorded configuration, or an error
// wrapping registry.ErrNotFound.
func (r *Registry) Network(ctx context.Context) (registry.Network, error) {
	k := r.configKey()
	kv, err := r.get(ctx, "read network", k)
	if err != nil {
		return registry.Network{}, err
	}
	var n registry.Network
	if err := json.Unmarshal(kv.Value, &n); err != nil {
		return registry.Network{}, fmt.Errorf("etcdreg: %s: malformed network config: %w", k, err)
	}
	return n, nil
}

// Node is a node advertised in nodes/<vtep> while its lease lives.
type Node struct {
	// VTEP is the node's underlay address.
	VTEP netip.Addr `json:"vtep"`
	// Hostname is the node's host name.
	Hostname string `json:"hostname,omitempty"`
	// Since is when the node's current lease was granted.
	Since time.Time `json:"since"`
}

// putNode advertises Options.NodeVTEP under lease (nothing if unset).
func (r *Registry) putNode(ctx context.Context, lease etcdv3.LeaseID) error {
	if !r.opts.NodeVTEP.IsValid() {
		return nil
	}
	b, err := json.Marshal(Node{VTEP: r.opts.NodeVTEP, Hostname: r.opts.Hostname, Since: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return fmt.Errorf("etcdreg: %w", err)
	}
	octx, done := r.opCtx(ctx)
	defer done()
	if _, err := r.cli.Put(octx, r.nodeKey(r.opts.NodeVTEP), string(b), etcdv3.WithLease(lease)); err != nil {
		return r.wrapLease("advertise node "+r.opts.NodeVTEP.String(), err)
	}
	return nil
}

// Nodes returns the nodes advertised now (live leases), sorted by VTEP.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	octx, done := r.opCtx(ctx)
	defer done()
	resp, err := r.cli.Get(octx, r.base+"nodes/", etcdv3.WithPrefix())
	if err != nil {
		return nil, r.wrap("list nodes", err)
	}
	nodes := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil || !n.VTEP.IsValid() {
			continue
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b Node) int { return a.VTEP.Compare(b.VTEP) })
	return nodes, nil
}

// NodeVTEPs returns the VTEPs of the nodes advertised now (the VTEP
// allowlist allows them, containers or not).
func (r *Registry) NodeVTEPs(ctx context.Context) ([]netip.Addr, error) {
	nodes, err := r.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, len(nodes))
	for i, n := range nodes {
		out[i] = n.VTEP
	}
	return out, nil
}
