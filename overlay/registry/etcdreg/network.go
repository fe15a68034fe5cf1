package etcdreg

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Network is the overlay-wide part of a node's configuration, the same on
// every node, stored as JSON in config (without a lease: it outlives nodes).
type Network struct {
	// VNI is the VXLAN network identifier.
	VNI uint32 `json:"vni"`
	// Port is the VXLAN UDP port.
	Port uint16 `json:"port"`
	// MTU is the containers' MTU.
	MTU uint32 `json:"mtu"`
	// Gateway is the bridge address and overlay subnet.
	Gateway netip.Prefix `json:"gateway"`
}

// PublishNetwork records n as the overlay's configuration if none is
// recorded yet. If one is, it must equal n: a node configured differently
// from the rest gets an error wrapping registry.ErrConflict that names the
// differing settings.
func (r *Registry) PublishNetwork(ctx context.Context, n Network) error {
	if n.VNI != r.opts.VNI {
		return fmt.Errorf("etcdreg: network VNI %d published in the registry of VNI %d", n.VNI, r.opts.VNI)
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("etcdreg: %w", err)
	}
	octx, done := r.opCtx(ctx)
	defer done()
	k := r.configKey()
	resp, err := r.cli.Txn(octx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(b))).Else(clientv3.OpGet(k)).Commit()
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
	var have Network
	if err := json.Unmarshal(kv.Value, &have); err != nil {
		return fmt.Errorf("etcdreg: %s: malformed network config: %w", k, err)
	}
	var diffs []string
	if have.Port != n.Port {
		diffs = append(diffs, fmt.Sprintf("port %d (registry has %d)", n.Port, have.Port))
	}
	if have.MTU != n.MTU {
		diffs = append(diffs, fmt.Sprintf("mtu %d (registry has %d)", n.MTU, have.MTU))
	}
	if have.Gateway != n.Gateway {
		diffs = append(diffs, fmt.Sprintf("gateway %s (registry has %s)", n.Gateway, have.Gateway))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: this node's network differs from the registry's: %s", registry.ErrConflict, strings.Join(diffs, ", "))
	}
	return nil
}

// Network returns the overlay's recorded configuration, or an error
// wrapping registry.ErrNotFound.
func (r *Registry) Network(ctx context.Context) (Network, error) {
	k := r.configKey()
	kv, err := r.get(ctx, "read network", k)
	if err != nil {
		return Network{}, err
	}
	var n Network
	if err := json.Unmarshal(kv.Value, &n); err != nil {
		return Network{}, fmt.Errorf("etcdreg: %s: malformed network config: %w", k, err)
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
func (r *Registry) putNode(ctx context.Context, lease clientv3.LeaseID) error {
	if !r.opts.NodeVTEP.IsValid() {
		return nil
	}
	b, err := json.Marshal(Node{VTEP: r.opts.NodeVTEP, Hostname: r.opts.Hostname, Since: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return fmt.Errorf("etcdreg: %w", err)
	}
	octx, done := r.opCtx(ctx)
	defer done()
	if _, err := r.cli.Put(octx, r.nodeKey(r.opts.NodeVTEP), string(b), clientv3.WithLease(lease)); err != nil {
		return r.wrapLease("advertise node "+r.opts.NodeVTEP.String(), err)
	}
	return nil
}

// Nodes returns the nodes advertised now (live leases), sorted by VTEP.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	octx, done := r.opCtx(ctx)
	defer done()
	resp, err := r.cli.Get(octx, r.base+"nodes/", clientv3.WithPrefix())
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
