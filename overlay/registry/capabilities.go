package registry

import (
	"context"
	"io"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// The optional capabilities of a store, beyond Registry. A caller asks for
// one with a type assertion (reg.(registry.ChangeFeed)) and does without
// when the store lacks it; every store asserts at compile time those it has
// (var _ registry.ChangeFeed = (*Registry)(nil)). The package
// documentation lists which store has which.

// ChangeFeed is implemented by registries that can push their changes (the
// etcd registry, the Kubernetes store; the directory store cannot). Watch
// delivers a Put for every record (or span), ChangeSynced, then changes as
// they happen; after an interruption it lists again and delivers the
// difference followed by ChangeSynced. The channel is closed when ctx ends
// or the feed breaks for good; the consumer must keep reading until then.
// The resolver follows it in its proactive and hybrid modes, the guard's
// allowlist counts its VTEPs.
type ChangeFeed interface {
	Watch(ctx context.Context) (<-chan Change, error)
}

// NetworkStore is implemented by registries that record the overlay's
// Network (the directory store and the etcd registry).
type NetworkStore interface {
	// PublishNetwork records n as the overlay's network if none is recorded
	// yet, atomically (of two nodes publishing at once, one wins). If one
	// is, it must equal n: otherwise the error is a *NetworkMismatchError
	// (wrapping ErrConflict) naming each differing setting, and nothing is
	// changed.
	PublishNetwork(ctx context.Context, n Network) error
	// Network returns the recorded network, or an error wrapping
	// ErrNotFound.
	Network(ctx context.Context) (Network, error)
}

// AssignedBlocks is implemented by registries that assign each node the
// address blocks its containers take their addresses from (the Kubernetes
// store: the Node's spec.podCIDRs, set by kube-controller-manager), instead
// of letting nodes claim blocks (BlockStore). The node allocates from these
// only. When none is assigned, the error says so and names the fix.
type AssignedBlocks interface {
	AssignedBlocks(ctx context.Context) ([]netip.Prefix, error)
}

// Readier is implemented by registries that need time or outside
// settings before they serve this node (the Kubernetes store: its Node
// list synced, this node's Node annotated, a podCIDR assigned). Ready
// returns nil once they do, else what is missing; the node daemon reports
// it on /readyz.
type Readier interface {
	Ready() error
}

// Announcer is implemented by registries that tell the cluster when this
// node's network is up (the Kubernetes store: the Node's
// NetworkUnavailable condition set to False). The node daemon calls
// Announce once it serves.
type Announcer interface {
	Announce(ctx context.Context) error
}

// Exporter is implemented by registries with counters of their own, which
// the node daemon exports with its metrics (the Kubernetes store: its
// Nodes by state, the skipped ones by why).
type Exporter interface {
	// WriteMetrics writes the samples in the Prometheus text format.
	WriteMetrics(w io.Writer)
}

// BlockStore is implemented by registries where nodes claim the address
// blocks they allocate from (package ipam; the directory store and the
// etcd registry). Implementations are safe for concurrent use by several
// processes and nodes.
type BlockStore interface {
	// ClaimBlock records owner as the holder of block unless someone holds
	// it already, atomically: of two owners claiming one block at once
	// exactly one wins. It returns the holder after the call: owner if the
	// claim won or owner held the block already, else the other holder.
	ClaimBlock(ctx context.Context, block netip.Prefix, owner string) (holder string, err error)
	// ReleaseBlock removes block's claim if owner holds it; a block not
	// held by owner is not an error.
	ReleaseBlock(ctx context.Context, block netip.Prefix, owner string) error
	// Blocks returns every claimed block with its holder.
	Blocks(ctx context.Context) (map[netip.Prefix]string, error)
}

// KeyLister is implemented by registries that can list the keys they hold
// (IPs, MACs) more cheaply than their records (the directory store: file
// names, no contents). The resolver then learns which keys are known from
// it at start, before it handles its first miss, instead of waiting for a
// full listing.
type KeyLister interface {
	Keys(ctx context.Context) (ips []netip.Addr, macs []ethaddr.MAC, err error)
}

// VTEPLister is implemented by registries that can list the records of
// one VTEP without holding the whole registry in memory (etcd: its keys read
// page by page, keeping only that VTEP's). The node's sweep looks for this
// node's records so (a node's start-up otherwise reads every record twice:
// its change feed's listing and the sweep's).
type VTEPLister interface {
	// RecordsAt returns the complete records at vtep, sorted by IP, at one
	// revision of the store. Keys that are no record are skipped.
	RecordsAt(ctx context.Context, vtep netip.Addr) ([]Record, error)
}

// NodeLister is implemented by registries that advertise nodes apart from
// their records (etcd's nodes/ keys, held by each node's lease; the
// directory store's nodes/ files, see NodeAdvertiser): the guard's
// allowlist admits a node with no container yet too, so that the first
// packets between containers of two nodes never wait for the allowlist to
// learn of a container's record.
type NodeLister interface {
	NodeVTEPs(ctx context.Context) ([]netip.Addr, error)
}

// NodeAdvertiser is implemented by registries whose node advertisements
// (NodeLister) are written and removed by the node, not held by a lease
// (the directory store): the node daemon advertises its node when it
// starts, and reset withdraws it. Both are idempotent.
type NodeAdvertiser interface {
	AdvertiseNode(ctx context.Context, vtep netip.Addr) error
	WithdrawNode(ctx context.Context, vtep netip.Addr) error
}

// Stamper is implemented by registries without a change feed that can
// tell cheaply whether anything changed (the directory store: its
// directories' modification times), so that they can be checked often.
type Stamper interface {
	Stamp() (string, error)
}

// Notifier is implemented by registries without a change feed that can
// say at once when something changed on this machine (the directory store,
// through inotify); the guard's allowlist then follows without waiting for
// the next poll.
type Notifier interface {
	Notify(ctx context.Context) (<-chan struct{}, error)
}

// Leaser is implemented by registries that hold the records they register
// on a lease (Options.Lease; the etcd registry): the node daemon moves the
// records of later attaches onto it and exports its counters.
type Leaser interface {
	// Owned returns the records registered through this registry, which
	// its lease holds.
	Owned() []Record
	// Stats returns the lease's counters.
	Stats() LeaseStats
}

// LeaseStats are a Leaser's counters, for metrics.
type LeaseStats struct {
	// LeaseID is the current lease (0 without a lease).
	LeaseID int64
	// LeaseUp is false from the moment the lease is lost until a new one
	// holds this node's records again (true without a lease).
	LeaseUp bool
	// LeaseLost counts leases lost (expired, or not kept alive for the TTL
	// because the store was unreachable).
	LeaseLost uint64
	// Reregistered counts records registered again under a new lease.
	Reregistered uint64
	// WatchRelists counts the change feeds' listings after the first
	// (after a compaction or a broken watch).
	WatchRelists uint64
}

// RejectLister is implemented by stores that tell, in a listing, the
// entries that are no record (a value that does not parse, is too long or
// is not a file; a key that names no address) apart from a failure to list:
// ListRejected returns the records and those entries, and an error only
// when the store could not be listed whole (the records are then those it
// could read). List is ListRejected without the rejected entries.
type RejectLister interface {
	ListRejected(ctx context.Context) ([]Record, []Rejected, error)
}

// TempSweeper is implemented by registries whose writes can leave
// temporary files behind when the writer is killed (the directory store,
// on a filesystem without unnamed files: NFS): SweepTemp removes those
// older than olderThan and returns their paths. The node daemon's sweeps
// call it.
type TempSweeper interface {
	SweepTemp(olderThan time.Duration) ([]string, error)
}

// MemberStore is implemented by registries that keep the member records of
// an encrypted overlay (the directory store and the etcd registry): each
// node's tunnel address, claimed atomically, and its WireGuard public key
// and endpoint. They persist until the node's reset removes them; whether a
// member is a peer now is the VTEP allowlist's call (its records, its live
// node).
type MemberStore interface {
	// ClaimMember records m under members/<m.VTEP> if no member is there
	// yet, or replaces the member there if it has m's owner, atomically:
	// of two nodes claiming one tunnel address at once exactly one wins.
	// A member of another owner there is an error wrapping ErrConflict,
	// and nothing is changed.
	ClaimMember(ctx context.Context, m Member) error
	// RemoveMember removes members/<vtep> if owner holds it; a missing or
	// other owner's member is not an error.
	RemoveMember(ctx context.Context, vtep netip.Addr, owner string) error
	// Members returns every member record, and the entries under members/
	// that are no member (Rejected); the error says the store could not be
	// listed whole (the members are then those it could read).
	Members(ctx context.Context) ([]Member, []Rejected, error)
}

// MemberWatcher is implemented by registries with a change feed that can
// also say when a member record or a live node changed (etcd: a watch of
// members/ and nodes/): the node daemon then updates its WireGuard peers at
// once rather than at its next resync. Stores without a feed say it through
// their Notifier and Stamper (the directory store: members/ is watched with
// the records).
type MemberWatcher interface {
	// WatchMembers delivers a value soon after a change, coalescing bursts,
	// until ctx ends (then the channel is closed).
	WatchMembers(ctx context.Context) (<-chan struct{}, error)
}
