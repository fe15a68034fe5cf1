// Package dirstore is the directory registry (the default, "dir:PATH"): one
// value per file, ROOT/arp/<ip> → MAC and ROOT/fdb/<mac> → VTEP, published
// atomically by hard-linking a fsynced temporary file into place, so that
// concurrent writers on a shared filesystem need no locks. Opener opens it
// for registry.Open (package stores links it as the "dir" scheme). Its
// capabilities beyond registry.Registry: NetworkStore, BlockStore,
// MemberStore, KeyLister, NodeLister and NodeAdvertiser (ROOT/nodes/<vtep>:
// a node advertised from its daemon's start until its reset), Stamper and
// Notifier.
package dirstore
