// Package etcdreg is a registry.Registry in etcd v3, for clusters that
// outgrow the directory store. It lives in its own package so that rtnl and
// overlay never import the etcd client; Opener opens it for registry.Open
// (package stores links it as the etcd and etcds schemes, and leaves it out
// of a build with -tags noetcd). Its capabilities beyond registry.Registry:
// ChangeFeed, NetworkStore, BlockStore, NodeLister, Leaser, MemberStore and
// MemberWatcher.
//
// # URL
//
//	etcd://[USER:PASS@]HOST[:PORT][,HOST[:PORT]...][/PREFIX][?PARAMS]
//	etcds://...   (TLS, verifying the servers with the system's CAs)
//
// PORT defaults to 2379 and PREFIX to /overlaynet. PARAMS, all optional:
// vni=42 (the overlay whose keys are used), ttl=10s (lease TTL; ttl=0 writes
// records without a lease), timeout=5s (dial and per-request bound),
// ca=PATH (CA bundle; turns TLS on), cert=PATH and key=PATH (client
// certificate; turn TLS on), servername=NAME, node=VTEP (advertise this node
// under nodes/). The same settings exist in Options; a setting given both
// ways must agree.
//
// # Key layout
//
// Per overlay, under B = PREFIX/vni/<VNI>/:
//
//	B/config          {"vni":42,"port":4789,"mtu":1450,"gateway":"198.51.100.1/24"}  no lease
//	B/nodes/<vtep>    {"vtep":"192.0.2.2","hostname":"n1","since":"..."}             node's lease
//	B/arp/<ip>        02:42:c6:33:64:02     (the dir store's arp/<ip>)             node's lease
//	B/fdb/<mac>       192.0.2.2             (the dir store's fdb/<mac>)            node's lease
//	B/members/<vtep>  {"vtep":...,"owner":...,"endpoint":...,"public_key":...}     none (encrypted overlays)
//
// IPs are in netip.Addr's text form, MACs lower-case with colons, values
// without a newline. config is written once (PublishNetwork) and checked by
// every node after; nodes/ lists the live nodes (Nodes).
//
// # Lease
//
// A Registry grants one lease (Options.TTL) at Open and keeps it alive until
// Close. Every record it registers, and its node key, is attached to that
// lease, so a node that dies stops being advertised one TTL after its last
// keep-alive: its keys are deleted by etcd and every watcher sees the
// deletes. Close does not revoke the lease (a restarted daemon registers its
// records again and so takes them over without a gap); Revoke does. When the
// lease is lost (etcd unreachable for longer than the TTL, or the lease
// expired), the registry grants a new one with backoff, registers its own
// records and node key again under it, and revokes the old one; Stats
// counts this (registry.Leaser).
//
// # Transactions
//
// Register is one transaction: put arp/<ip> and fdb/<mac> if neither
// exists, else read both; if either holds another value the result is an
// error wrapping registry.ErrConflict and nothing is written; if both hold
// the same values they are written again under this registry's lease,
// guarded by their mod revisions. Of two nodes registering the same IP with
// different MACs at once, exactly one wins. Unregister deletes each key only
// if it still holds the record's value.
//
// # Change feed
//
// Watch lists the overlay at one revision and watches from the next one,
// turning key events into record-level changes (registry.ChangePut,
// registry.ChangeDelete) with registry.ChangeSynced after each complete
// listing; after a compaction (ErrCompacted) or a broken watch it lists
// again and delivers the difference.
//
// # Opening through registry.Open
//
// Opener adapts Open to registry.Opener: registry.Options.Lease is the
// lease (nil: NoLease, the records persist with no daemon, as `overlayd
// attach` and the CNI plugin write them), registry.Options.VNI the overlay
// when the URL names none.
//
// # Outage
//
// Requests are bounded by their context and Options.Timeout; requests etcd
// did not answer fail with an error wrapping registry.ErrUnavailable that
// names the endpoints. The etcd client reconnects by itself; a watch resumes from the
// last revision it delivered.
package etcdreg
