package registry

import (
	"net/netip"
	"strconv"
)

// ChangeKind says what happened to a registry record.
type ChangeKind uint8

// Kinds of Change.
const (
	// ChangePut: the record (or span) is complete and new or different.
	ChangePut ChangeKind = iota + 1
	// ChangeDelete: the record (or span), as last delivered, is gone. A
	// record that moves is delivered as a Delete of the old record, then a
	// Put of the new; so is a span whose VTEP changed.
	ChangeDelete
	// ChangeSynced: the records delivered so far are the registry's complete
	// state at Revision (after the first listing and every re-listing).
	ChangeSynced
	// ChangeRejected: an entry that is no record was met (Change.Rejected
	// says which and why: a key naming no address, a value that does not
	// parse). It is not a record: nothing is put or deleted.
	ChangeRejected
)

// String names k.
func (k ChangeKind) String() string {
	switch k {
	case ChangePut:
		return "put"
	case ChangeDelete:
		return "delete"
	case ChangeSynced:
		return "synced"
	case ChangeRejected:
		return "rejected"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one event of a registry's change feed: about one record, or
// about a span (every container of a node's address block, see Span) when
// the store describes containers by spans.
type Change struct {
	// Kind says what happened.
	Kind ChangeKind
	// Record is the record put or deleted (zero for ChangeSynced and for a
	// span's change).
	Record Record
	// Span, when its Prefix is valid, is the span put or deleted instead
	// of a record.
	Span Span
	// Revision is the registry's revision of the change (0 if it has none).
	Revision int64
	// Rejected is the entry of a ChangeRejected.
	Rejected Rejected
	// Table, from a feed that keeps the registry's keys in memory (etcd),
	// is that copy: at this change's revision or newer, kept up to date by
	// the feed while it runs (the same on every change of one listing; a
	// re-listing brings a new one). A consumer reads it as the records
	// instead of keeping its own copy; nil from other feeds. Records the
	// consumer's policy refuses are in it too (the feed does not judge).
	Table *Table
}

// IsSpan says whether c is about a span rather than a record.
func (c Change) IsSpan() bool { return c.Span.Prefix.IsValid() }

// VTEP is the VTEP c is about: its span's, or its record's.
func (c Change) VTEP() netip.Addr {
	if c.IsSpan() {
		return c.Span.VTEP
	}
	return c.Record.VTEP
}
