package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
)

// Opener opens the store at url (its scheme's part included: "dir:PATH",
// "etcd://HOST/PREFIX") with o. Each store package provides the opener of
// its schemes (dirstore.Opener, etcdreg.Opener); package
// overlay/registry/stores links the shipped ones.
type Opener func(ctx context.Context, url string, o Options) (Registry, error)

// Options say who opens a store and for what. They are the same for every
// store; each uses those that apply to it.
type Options struct {
	// Schemes maps a URL scheme (the part of the URL before the first ':')
	// to its opener. Open refuses a URL whose scheme it lacks with an error
	// wrapping ErrUnknownScheme. stores.Schemes() holds the shipped ones.
	Schemes map[string]Opener
	// VNI is the overlay whose records are meant, for stores that keep
	// several overlays apart (etcd: PREFIX/vni/<VNI>/), when the URL names
	// none; a URL's own vni= wins. Zero: the store's default (42).
	// overlay.StoreOptions sets it to the overlay a node's state directory
	// records.
	VNI uint32
	// Lease, if set, asks a store that can (etcd) to hold the records this
	// registry registers on a lease kept alive until Close, as the node
	// daemon does: they vanish one TTL after the node stops. Nil (one-shot
	// commands, the CNI plugin): records persist until unregistered, as in
	// the directory store, and the node's daemon moves them onto its lease.
	// Such a store is a Leaser.
	Lease *Lease
	// Logger receives the store's own events (lease lost and regained,
	// change feed re-listed). Nil discards them.
	Logger *slog.Logger
	// StateDir is the node's state directory, for stores that keep there
	// what the node daemon learnt for the node's other processes (the
	// Kubernetes store: this node's podCIDR and VTEP, for the CNI plugin,
	// which has no API credentials). overlay.StoreOptions sets it.
	StateDir string
	// NodeName is this node's name, for stores that know nodes by name
	// (the Kubernetes store: its Node object). Empty: the host name.
	NodeName string
	// Cache asks a store that reads its records from files (the directory
	// store) to keep what it reads in memory, coherent with the files, as
	// the node daemon does: its lookups then open no file. One-shot
	// commands leave it off.
	Cache bool
}

// Lease is what a node holding its records on a lease (Options.Lease)
// tells the store.
type Lease struct {
	// VTEP, if valid, is this node's underlay address: the store
	// advertises the node as live on the lease (see NodeLister).
	VTEP netip.Addr
	// Keep, if set, is given the records the registry owns before they are
	// registered again under a new lease (after the lease was lost), all at
	// once, and returns those still to be registered; a record it leaves
	// out (a container detached meanwhile by another process) is forgotten
	// instead. The daemon checks its state directory.
	Keep func(owned []Record) []Record
}

// Errors of Open and of the openers.
var (
	// ErrUnknownScheme is wrapped by Open for a URL whose scheme is not in
	// Options.Schemes.
	ErrUnknownScheme = errors.New("registry: unknown scheme")
	// ErrBadURL is wrapped by errors about a store URL that cannot be read
	// (no scheme, or malformed for its scheme). Openers mark theirs with
	// BadURL.
	ErrBadURL = errors.New("registry: bad store URL")
)

// BadURL returns err, an error about a store URL, marked as ErrBadURL:
// errors.Is(err, ErrBadURL) holds, its text is err's.
func BadURL(err error) error { return marked{err, ErrBadURL} }

// Open opens the store at url ("dir:PATH", "etcd://...") with the opener
// o.Schemes has for its scheme. A URL without a scheme is refused with an
// error wrapping ErrBadURL, one whose scheme is not in o.Schemes with an
// error wrapping ErrUnknownScheme that lists the known ones. Errors never
// carry the URL's password (RedactURL).
func Open(ctx context.Context, url string, o Options) (Registry, error) {
	scheme, _, ok := strings.Cut(url, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%w %q: no scheme (want dir:PATH or etcd://HOST/PREFIX)", ErrBadURL, RedactURL(url))
	}
	open := o.Schemes[scheme]
	if open == nil {
		known := make([]string, 0, len(o.Schemes))
		for k := range o.Schemes {
			known = append(known, k)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("%w %q in store URL %q (supported: %s)", ErrUnknownScheme, scheme, RedactURL(url), strings.Join(known, ", "))
	}
	return open(ctx, url, o)
}

// redacted replaces a password in RedactURL.
const redacted = "xxxxx"

// RedactURL returns a registry URL fit for logs and errors: the password of
// its user information (SCHEME://USER:PASS@HOST...) replaced by "xxxxx".
// Everything from "://" to the last "@" before any "?" counts as user
// information, so that a password holding an unescaped "/" or "@" is
// hidden whole too (at worst, more than the password is hidden).
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	head, query, hasQuery := strings.Cut(rest, "?")
	at := strings.LastIndex(head, "@")
	if at < 0 {
		return u
	}
	user, _, hasPass := strings.Cut(head[:at], ":")
	if !hasPass {
		return u
	}
	out := scheme + "://" + user + ":" + redacted + head[at:]
	if hasQuery {
		out += "?" + query
	}
	return out
}
