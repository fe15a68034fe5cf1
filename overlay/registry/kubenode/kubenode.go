// Package kubenode is the Kubernetes store (kube:) as seen by a node's
// processes that hold no API credentials: the CNI plugin run by the
// container runtime, overlayd attach and status. The node daemon, which
// follows the cluster's Nodes (package kubereg), records in the node's
// state directory what they need of this node (State, in STATE_DIR/kube.json,
// written atomically): its Node's name, its podCIDRs, its VTEP and the
// overlay's network. Store answers from that file and never talks to the
// API server: a container's address comes from the node's podCIDR
// (registry.AssignedBlocks), its MAC is derived from the address, and
// nothing is written per container (Register checks the record and
// records nothing: every node derives the same record from its Node list).
package kubenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// FileName is the node's Kubernetes state in its state directory.
const FileName = "kube.json"

// State is what the node daemon records of this node for the node's other
// processes.
type State struct {
	// Node is the Node object's name.
	Node string `json:"node"`
	// VTEP is this node's underlay address, as published on its Node.
	VTEP netip.Addr `json:"vtep"`
	// PodCIDRs are the Node's spec.podCIDRs as they are (IPv4, and IPv6
	// on a dual-stack cluster): the allocator takes those of the overlay's
	// family and refuses one outside its subnet.
	PodCIDRs []netip.Prefix `json:"podCIDRs"`
	// Network is the overlay's network the daemon runs.
	Network registry.Network `json:"network"`
	// Problem, when set, is why this node's pods cannot have addresses
	// (its podCIDR or VTEP is an older Node's), for the CNI plugin's error.
	Problem string `json:"problem,omitempty"`
	// Updated is when the daemon wrote the file.
	Updated time.Time `json:"updated"`
}

// ErrNoPodCIDR is wrapped by the error of a node that has no podCIDR (yet):
// kube-controller-manager gives one only with --allocate-node-cidrs and
// --cluster-cidr. It is retryable (registry.ErrUnavailable): the CNI
// plugin answers "try again later" and the runtime retries.
var ErrNoPodCIDR = errors.New("kubenode: this node has no podCIDR")

// NoPodCIDR returns the error of node having no podCIDR, naming the fix.
func NoPodCIDR(node string, subnet netip.Prefix) error {
	return registry.Unavailable(fmt.Errorf("%w: Node %q has no spec.podCIDR; run kube-controller-manager with --allocate-node-cidrs and --cluster-cidr=%s (the overlay's subnet), or set the Node's spec.podCIDR",
		ErrNoPodCIDR, node, subnet))
}

// Write records s in dir atomically: a temporary file in dir, synced,
// renamed over FileName.
func Write(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("kubenode: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), filepath.Join(dir, FileName))
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("kubenode: record %s: %w", filepath.Join(dir, FileName), werr)
	}
	return nil
}

// ErrNotRecorded is wrapped (with registry.ErrUnavailable) by Read when the
// daemon has not recorded the node's state yet.
var ErrNotRecorded = errors.New("kubenode: the node daemon has not recorded this node's Kubernetes state yet")

// Read returns the state recorded in dir.
func Read(dir string) (State, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, registry.Unavailable(fmt.Errorf("%w (%s): is overlayd run --store kube: running and synced on this node (the overlaynet DaemonSet's pod)?", ErrNotRecorded, path))
	}
	if err != nil {
		return State{}, fmt.Errorf("kubenode: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("kubenode: %s: %w", path, err)
	}
	return s, nil
}

// Remove removes the state recorded in dir (nothing recorded is no error).
func Remove(dir string) error {
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kubenode: %w", err)
	}
	return nil
}

// Store is the node's view of the Kubernetes store (see the package doc).
// It reads the state file at each call: the daemon rewrites it when the
// Node changes.
type Store struct {
	dir string
}

var (
	_ registry.Registry       = (*Store)(nil)
	_ registry.NetworkStore   = (*Store)(nil)
	_ registry.AssignedBlocks = (*Store)(nil)
)

// Opener is the registry.Opener of the kube scheme for processes without a
// lease (the CNI plugin, one-shot commands): the view of the state
// directory o.StateDir. The URL's kubeconfig is not used.
func Opener(_ context.Context, url string, o registry.Options) (registry.Registry, error) {
	if o.StateDir == "" {
		return nil, fmt.Errorf("kubenode: store %q: no state directory to read the node's Kubernetes state from", url)
	}
	return New(o.StateDir), nil
}

// New returns the view of the state directory dir.
func New(dir string) *Store { return &Store{dir: dir} }

// State returns the recorded state.
func (s *Store) State() (State, error) { return Read(s.dir) }

// holds says whether ip is in one of st's podCIDRs.
func holds(st State, ip netip.Addr) bool {
	return slices.ContainsFunc(st.PodCIDRs, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// LookupMAC returns the derived MAC of ip if it is in this node's podCIDRs;
// addresses of other nodes are not known here (registry.ErrNotFound).
func (s *Store) LookupMAC(_ context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	st, err := Read(s.dir)
	if err != nil {
		return ethaddr.MAC{}, err
	}
	if !holds(st, ip) {
		return ethaddr.MAC{}, fmt.Errorf("%w: %s is not in this node's podCIDRs", registry.ErrNotFound, ip)
	}
	return registry.DeriveMAC(ip), nil
}

// LookupVTEP returns this node's VTEP for a MAC derived from an address of
// its podCIDRs.
func (s *Store) LookupVTEP(_ context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	st, err := Read(s.dir)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip, ok := registry.DerivedIP(mac); ok && holds(st, ip) {
		return st.VTEP, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %s is no MAC of this node's podCIDRs", registry.ErrNotFound, mac)
}

// Register checks that r is a record every node derives from this node's
// Node: its IP in a podCIDR of this node, its MAC derived from the IP, its
// VTEP this node's. Anything else would not be found by the other nodes,
// and is refused (registry.ErrConflict). Nothing is written.
func (s *Store) Register(_ context.Context, r registry.Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	st, err := Read(s.dir)
	if err != nil {
		return err
	}
	return CheckRecord(st, r)
}

// CheckRecord refuses a record that the nodes do not derive from st's
// node (see Register).
func CheckRecord(st State, r registry.Record) error {
	switch {
	case !holds(st, r.IP):
		return fmt.Errorf("%w: %s is outside the podCIDRs %v of node %q: the other nodes look for it at the node whose podCIDR holds it", registry.ErrConflict, r.IP, st.PodCIDRs, st.Node)
	case r.MAC != registry.DeriveMAC(r.IP):
		return fmt.Errorf("%w: MAC %s is not %s, the one every node derives from %s: leave the MAC out", registry.ErrConflict, r.MAC, registry.DeriveMAC(r.IP), r.IP)
	case r.VTEP != st.VTEP:
		return fmt.Errorf("%w: VTEP %s is not node %q's %s", registry.ErrConflict, r.VTEP, st.Node, st.VTEP)
	}
	return nil
}

// Unregister does nothing: nothing was written.
func (s *Store) Unregister(context.Context, registry.Record) error { return nil }

// List returns no record: a Kubernetes cluster's containers are spans, not
// records (the node daemon follows them through kubereg's change feed).
func (s *Store) List(context.Context) ([]registry.Record, error) { return nil, nil }

// Close does nothing.
func (s *Store) Close() error { return nil }

// PublishNetwork compares n with the network the daemon runs, when it has
// recorded one: this view cannot publish (the daemon does, on its Node).
func (s *Store) PublishNetwork(ctx context.Context, n registry.Network) error {
	have, err := s.Network(ctx)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return registry.CheckNetwork(n, have)
}

// Network returns the network the daemon recorded (registry.ErrNotFound
// before it did).
func (s *Store) Network(context.Context) (registry.Network, error) {
	st, err := Read(s.dir)
	if errors.Is(err, ErrNotRecorded) {
		return registry.Network{}, fmt.Errorf("%w: %w", registry.ErrNotFound, err)
	}
	if err != nil {
		return registry.Network{}, err
	}
	return st.Network, nil
}

// AssignedBlocks returns this node's podCIDRs, or why there are none: not
// recorded yet, no podCIDR (ErrNoPodCIDR, naming the fix), or the problem
// the daemon recorded; each retryable (registry.ErrUnavailable).
func (s *Store) AssignedBlocks(context.Context) ([]netip.Prefix, error) {
	st, err := Read(s.dir)
	if err != nil {
		return nil, err
	}
	return Blocks(st)
}

// Blocks returns st's podCIDRs, or the error AssignedBlocks gives.
func Blocks(st State) ([]netip.Prefix, error) {
	switch {
	case st.Problem != "":
		return nil, registry.Unavailable(fmt.Errorf("kubenode: node %q: %s", st.Node, st.Problem))
	case len(st.PodCIDRs) == 0:
		return nil, NoPodCIDR(st.Node, st.Network.Gateway.Masked())
	}
	return slices.Clone(st.PodCIDRs), nil
}
