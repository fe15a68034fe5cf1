package kubereg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg/internal/kubeapi"
)

// PublishNetwork checks n against the network the other Nodes agree on
// (the one most of those annotated run: see agreed), and if it differs
// returns a *registry.NetworkMismatchError naming each difference, and
// changes nothing; else it annotates this node's Node with n and its VTEP
// (nodes/status, a merge patch). From then on the feed carries only the
// spans of Nodes running n, inside its subnet, and the node's state is
// recorded for kubenode. A Node annotated with another network is then
// skipped (and counted): one hostile or misconfigured Node cannot stop
// the others.
func (r *Registry) PublishNetwork(ctx context.Context, n registry.Network) error {
	if !r.opts.VTEP.IsValid() {
		return errors.New("kubereg: no VTEP to publish (the daemon opens the store with its lease VTEP)")
	}
	if have, runs, total, ok := r.agreed(); ok {
		if err := registry.CheckNetwork(n, have); err != nil {
			return fmt.Errorf("kubereg: %d of the %d other annotated Nodes run another overlay (every node's daemon must have the same --vni, --port, --mtu and --gateway: the DaemonSet's ConfigMap): %w", runs, total, err)
		}
	}
	nb, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("kubereg: %w", err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationVTEP: r.opts.VTEP.String(), AnnotationNetwork: string(nb)}}})
	if err != nil {
		return fmt.Errorf("kubereg: %w", err)
	}
	if err := r.patchStatus(ctx, kubeapi.MergePatch, patch); err != nil {
		return err
	}
	r.mu.Lock()
	r.ours, r.published = n, true
	r.recomputeLocked(true)
	r.mu.Unlock()
	r.log.Info("this node's Node annotated", "node", r.opts.NodeName, "vtep", r.opts.VTEP, "network", string(nb))
	r.recordState()
	return nil
}

// agreed returns the network the other Nodes agree on: the one most of
// those annotated with one run (between as many, the oldest Node's), with
// how many run it of how many annotated; ok is false when none is.
func (r *Registry) agreed() (n registry.Network, runs, total int, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	count := map[registry.Network]int{}
	oldest := map[registry.Network]nodeInfo{}
	for name, ni := range r.nodes {
		if name == r.opts.NodeName || ni.network == (registry.Network{}) || ni.deleting {
			continue
		}
		total++
		count[ni.network]++
		if o, seen := oldest[ni.network]; !seen || older(ni, o) < 0 {
			oldest[ni.network] = ni
		}
	}
	for net, c := range count {
		if !ok || c > runs || (c == runs && older(oldest[net], oldest[n]) < 0) {
			n, runs, ok = net, c, true
		}
	}
	return n, runs, total, ok
}

// Network returns the network this node published, else the one the
// Nodes agree on (agreed; registry.ErrNotFound if none is annotated).
func (r *Registry) Network(context.Context) (registry.Network, error) {
	r.mu.RLock()
	published, ours := r.published, r.ours
	r.mu.RUnlock()
	if published {
		return ours, nil
	}
	n, _, _, ok := r.agreed()
	if !ok {
		return registry.Network{}, fmt.Errorf("%w: no Node is annotated with %s", registry.ErrNotFound, AnnotationNetwork)
	}
	return n, nil
}

// Announce sets this node's NetworkUnavailable condition to False, reason
// OverlaynetIsUp (nodes/status, a strategic merge patch by condition
// type), as network plugins do once a node's network is up; from then on
// the CNI plugin gives pods addresses of the node's podCIDRs (recordState).
func (r *Registry) Announce(ctx context.Context) error {
	now := time.Now().UTC().Format(time.RFC3339)
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []map[string]string{{
		"type": "NetworkUnavailable", "status": "False", "reason": "OverlaynetIsUp",
		"message": "overlaynet's overlay is up on this node", "lastTransitionTime": now, "lastHeartbeatTime": now,
	}}}})
	if err != nil {
		return fmt.Errorf("kubereg: %w", err)
	}
	if err := r.patchStatus(ctx, kubeapi.StrategicMergePatch, patch); err != nil {
		return err
	}
	r.mu.Lock()
	r.announced = true
	r.mu.Unlock()
	r.recordState()
	return nil
}

// Ready returns nil once the registry serves this node: the Node list
// synced, this node's annotations published and seen back in the list,
// its span sound (a podCIDR inside the overlay's subnet, no conflict);
// else what is missing, with the fix where there is one.
func (r *Registry) Ready() error {
	if !r.synced.Load() {
		return errNotSynced
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	own, ok := r.nodes[r.opts.NodeName]
	st := r.states[r.opts.NodeName]
	switch {
	case !ok:
		return fmt.Errorf("kubereg: no Node named %q", r.opts.NodeName)
	case !r.published:
		return errors.New("kubereg: this node's annotations are not published yet")
	case own.vtep != r.opts.VTEP || own.network != r.ours:
		return errors.New("kubereg: this node's annotations have not come back in the Node list yet")
	case st == NodeNoPodCIDR:
		return kubenode.NoPodCIDR(own.name, r.ours.Gateway.Masked())
	case st == NodeOutsideSubnet:
		return fmt.Errorf("kubereg: this node's podCIDR %s is outside the overlay subnet %s: the overlay's --gateway prefix must hold kube-controller-manager's --cluster-cidr", own.span, r.ours.Gateway.Masked())
	case st != NodeOK:
		return fmt.Errorf("kubereg: this node's span is skipped (%s)", st)
	}
	return nil
}

// recordState records this node's state for package kubenode, once
// published, when it differs from what was recorded last: its podCIDRs
// once the node's network is announced up (the CNI plugin gives pods
// addresses from then on), or at once why pods cannot have any (no
// podCIDR, one outside the subnet, one or a VTEP an older Node holds), so
// that the plugin's error says it.
func (r *Registry) recordState() {
	if r.opts.StateDir == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	own, ok := r.nodes[r.opts.NodeName]
	if !r.published || !ok {
		return
	}
	st := kubenode.State{Node: own.name, VTEP: r.opts.VTEP, PodCIDRs: own.podCIDRs, Network: r.ours}
	switch state := r.states[r.opts.NodeName]; state {
	case NodeOK:
		if !r.announced {
			return
		}
	case NodeNoPodCIDR, NodeOutsideSubnet:
	default:
		st.Problem = fmt.Sprintf("its span is skipped (%s): see the daemon's log", state)
	}
	key := fmt.Sprint(st.Node, st.VTEP, st.PodCIDRs, st.Network, st.Problem)
	if key == r.recorded {
		return
	}
	st.Updated = time.Now().UTC().Truncate(time.Second)
	if err := kubenode.Write(r.opts.StateDir, st); err != nil {
		r.log.Error("cannot record this node's state for the CNI plugin", "err", err)
		return
	}
	r.recorded = key
	r.log.Info("recorded this node's state for the CNI plugin", "podcidrs", st.PodCIDRs, "vtep", st.VTEP, "problem", st.Problem)
}
