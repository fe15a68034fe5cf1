package rtnltest

import (
	"fmt"
	"strings"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Request is one request a Transport received.
type Request struct {
	Header   rtnl.Header // as sent: type, flags, sequence number, port id
	Body     []byte      // the payload after the header (a copy)
	Datagram int         // index of the datagram (sendmsg) that carried it, from 0
}

// Type returns the request's message type (RTM_NEWNEIGH, ...).
func (r Request) Type() uint16 { return r.Header.Type }

// Flags returns the request's NLM_F_* flags.
func (r Request) Flags() uint16 { return r.Header.Flags }

// IsDump reports whether the request asks for a dump (NLM_F_DUMP).
func (r Request) IsDump() bool { return r.Header.Flags&rtnl.FlagDump == rtnl.FlagDump }

// Decode decodes the body into m (an *rtnl.NeighMessage, *rtnl.LinkMessage,
// ...), naming the request in the error.
func (r Request) Decode(m interface{ UnmarshalBinary([]byte) error }) error {
	if err := m.UnmarshalBinary(r.Body); err != nil {
		return fmt.Errorf("rtnltest: decoding %v: %w", r, err)
	}
	return nil
}

// String formats the request as "RTM_NEWNEIGH REQUEST|ACK|EXCL|CREATE seq=1
// len=40".
func (r Request) String() string {
	return fmt.Sprintf("%s %s seq=%d len=%d", rtnl.MessageTypeName(r.Header.Type),
		FlagsString(r.Header.Type, r.Header.Flags), r.Header.Sequence, len(r.Body))
}

// FlagsString names the NLM_F_* flags of a request of type typ, the
// meaning of the high bits depending on whether it is a get (ROOT, MATCH,
// ATOMIC; DUMP for both of the first two) or a new/set/delete (REPLACE,
// EXCL, CREATE, APPEND). Unknown bits are printed in hex.
func FlagsString(typ, flags uint16) string {
	var names []string
	take := func(bit uint16, name string) {
		if flags&bit == bit {
			names = append(names, name)
			flags &^= bit
		}
	}
	take(rtnl.FlagRequest, "REQUEST")
	take(rtnl.FlagMulti, "MULTI")
	take(rtnl.FlagAck, "ACK")
	take(rtnl.FlagEcho, "ECHO")
	take(rtnl.FlagDumpIntr, "DUMP_INTR")
	take(rtnl.FlagDumpFiltered, "DUMP_FILTERED")
	if isGet(typ) {
		take(rtnl.FlagDump, "DUMP")
		take(rtnl.FlagRoot, "ROOT")
		take(rtnl.FlagMatch, "MATCH")
		take(rtnl.FlagAtomic, "ATOMIC")
	} else {
		take(rtnl.FlagReplace, "REPLACE")
		take(rtnl.FlagExcl, "EXCL")
		take(rtnl.FlagCreate, "CREATE")
		take(rtnl.FlagAppend, "APPEND")
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

// isGet reports whether typ is an rtnetlink get request (RTM_GET*: the
// third of each group of four types from RTM_BASE).
func isGet(typ uint16) bool { return typ >= rtmBase && typ%4 == 2 }

// rtmBase is RTM_BASE, the first rtnetlink message type.
const rtmBase = rtnl.MsgNewLink
