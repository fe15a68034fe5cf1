// Package registry is the contract between the nodes of an overlay and the
// store they share: Registry (which MAC holds an overlay IP, which VTEP holds
// a MAC), Record, the overlay's Network, the change feed's Change, the
// registry errors, the optional capabilities of a store, and Open, the one
// way to open a store from its URL.
//
// # Opening a store
//
// Open(ctx, url, Options{...}) hands the URL to the Opener that
// Options.Schemes has for its scheme; whoever links a store passes its
// opener there (package stores: stores.Schemes() for dir, etcd and etcds).
// There is no global table of schemes. Options say what differs between
// callers: the overlay's VNI for stores keyed per overlay (Options.VNI,
// overlay.StoreOptions), and whether this node's records are held on a
// lease (Options.Lease: the node daemon) or persist (one-shot commands, the
// CNI plugin). Errors wrap ErrBadURL, ErrUnknownScheme and ErrUnavailable
// for callers to tell with errors.Is; none carries a URL's password
// (RedactURL).
//
// # Capabilities
//
// Beyond Registry, a store may have optional capabilities, each an
// interface of this package (capabilities.go), found by a type assertion:
//
//	capability      what it adds                                  dir   etcd  kube  kubenode
//	ChangeFeed      pushes changes (Watch)                         -     yes   yes   -
//	NetworkStore    records the overlay's Network                 yes    yes   yes   yes
//	BlockStore      address blocks claimed per node (ipam)        yes    yes   -     -
//	AssignedBlocks  address blocks assigned to nodes (podCIDRs)    -     -    yes   yes
//	KeyLister       lists its keys cheaper than its records       yes     -    -     -
//	NodeLister      advertises nodes apart from their records     yes    yes   -     -
//	NodeAdvertiser  the node writes its advertisement itself      yes     -    -     -
//	VTEPLister      lists one VTEP's records, not all of them      -    yes   -     -
//	Stamper         a cheap stamp that changes with any record    yes     -    -     -
//	Notifier        says at once when this machine changed it     yes     -    -     -
//	Leaser          holds records on a lease (Owned, Stats)         -    yes   -     -
//	RejectLister    tells entries that are no record in a listing  yes    yes   -     -
//	TempSweeper     removes temporary files of killed writers     yes     -    -     -
//	Readier         says when it serves this node                  -     -    yes   -
//	Announcer       tells the cluster this node's network is up    -     -    yes   -
//	Exporter        counters of its own for the daemon's metrics  yes    -    yes   -
//	MemberStore     member records of an encrypted overlay        yes    yes   yes   -
//	MemberWatcher   says when members or live nodes changed         -    yes   yes   -
//
// dir is package dirstore (dir:PATH), etcd package etcdreg (etcd://,
// etcds://), kube package kubereg (kube:KUBECONFIG, the node daemon's, on
// the Kubernetes API) and kubenode (kube: opened without a lease: the
// node's other processes, reading what the daemon recorded in the state
// directory). The Kubernetes store describes containers by spans (Span:
// a node's podCIDR, every address a container with a derived MAC), not
// one record each. This package imports neither rtnl nor any
// implementation.
//
// # Records a node may use
//
// A store is written by every member node, so a node checks what it reads:
// Policy says what a record must be for the node to use it, and a Checker,
// built once per node from its overlay, applies it for every user of the
// records (resolver, change feed, VTEP allowlist, reconcile) and counts by
// Reason and logs by key what it rejects. A store reports its entries that
// are no record at all as Rejected, never their values: beside a listing
// (RejectLister), on its feed (ChangeRejected) and as a lookup's error
// (ErrRejected).
package registry
