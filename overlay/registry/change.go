package registry

import "strconv"

// ChangeKind says what happened to a registry record.
type ChangeKind uint8

// Kinds of Change.
const (
	// ChangePut: the record is complete and new or different.
	ChangePut ChangeKind = iota + 1
	// ChangeDelete: the record, as last delivered, is gone. A record that
	// moves is delivered as a Delete of the old record, then a Put of the new.
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

// Change is one event of a registry's change feed.
type Change struct {
	// Kind says what happened.
	Kind ChangeKind
	// Record is the record put or deleted (zero for ChangeSynced).
	Record Record
	// Revision is the registry's revision of the change (0 if it has none).
	Revision int64
	// Rejected is the entry of a ChangeRejected.
	Rejected Rejected
}
