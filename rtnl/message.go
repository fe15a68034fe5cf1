package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header is a netlink message header (struct nlmsghdr).
type Header struct {
	Length   uint32 // length of the message, header included
	Type     uint16 // message type (RTM_*, NLMSG_*)
	Flags    uint16 // NLM_F_* flags
	Sequence uint32 // sequence number
	PID      uint32 // sender port id (0 for the kernel)
}

// Message is one netlink message: its header and its payload. Data aliases
// the buffer the message was read from unless stated otherwise.
type Message struct {
	Header Header
	Data   []byte
}

// Align returns n rounded up to the netlink 4-byte alignment.
func Align(n int) int { return (n + 3) &^ 3 }

var errShortMessage = errors.New("rtnl: message shorter than its header")

// parseHeader decodes the netlink header at the start of b and validates its
// length against b. It returns the header and the message's payload.
func parseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, errShortMessage
	}
	h := Header{
		Length:   binary.NativeEndian.Uint32(b[0:4]),
		Type:     binary.NativeEndian.Uint16(b[4:6]),
		Flags:    binary.NativeEndian.Uint16(b[6:8]),
		Sequence: binary.NativeEndian.Uint32(b[8:12]),
		PID:      binary.NativeEndian.Uint32(b[12:16]),
	}
	if h.Length < HeaderLen || int(h.Length) > len(b) {
		return h, nil, fmt.Errorf("rtnl: message length %d does not fit %d bytes", h.Length, len(b))
	}
	return h, b[HeaderLen:h.Length], nil
}

// AppendHeader appends the 16-byte encoding of h to b.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.NativeEndian.AppendUint32(b, h.Length)
	b = binary.NativeEndian.AppendUint16(b, h.Type)
	b = binary.NativeEndian.AppendUint16(b, h.Flags)
	b = binary.NativeEndian.AppendUint32(b, h.Sequence)
	return binary.NativeEndian.AppendUint32(b, h.PID)
}

// MessageIter walks the netlink messages packed in one datagram without
// allocating. Use it as
//
//	it := rtnl.NewMessageIter(buf)
//	for it.Next() { m := it.Message(); ... }
//	if err := it.Err(); err != nil { ... }
type MessageIter struct {
	b   []byte
	m   Message
	err error
}

// NewMessageIter returns an iterator over the messages in b.
func NewMessageIter(b []byte) MessageIter { return MessageIter{b: b} }

// Reset points the iterator at a new datagram.
func (it *MessageIter) Reset(b []byte) { *it = MessageIter{b: b} }

// Next advances to the next message. It returns false at the end of the
// datagram or on a malformed message, which Err then reports.
func (it *MessageIter) Next() bool {
	if it.err != nil || len(it.b) < HeaderLen {
		if it.err == nil && len(it.b) != 0 {
			it.err = fmt.Errorf("rtnl: %d trailing bytes after the last message", len(it.b))
		}
		return false
	}
	h, data, err := parseHeader(it.b)
	if err != nil {
		it.err = err
		return false
	}
	it.m = Message{Header: h, Data: data}
	next := Align(int(h.Length))
	if next > len(it.b) {
		next = len(it.b)
	}
	it.b = it.b[next:]
	return true
}

// Message returns the current message. Its Data aliases the datagram.
func (it *MessageIter) Message() Message { return it.m }

// Err returns the first framing error met, if any.
func (it *MessageIter) Err() error { return it.err }

// MessageTypeName returns the symbolic name of a netlink or rtnetlink message
// type, as used in error messages ("RTM_NEWNEIGH").
func MessageTypeName(t uint16) string {
	switch t {
	case MsgNoop:
		return "NLMSG_NOOP"
	case MsgError:
		return "NLMSG_ERROR"
	case MsgDone:
		return "NLMSG_DONE"
	case MsgOverrun:
		return "NLMSG_OVERRUN"
	case MsgNewLink:
		return "RTM_NEWLINK"
	case MsgDelLink:
		return "RTM_DELLINK"
	case MsgGetLink:
		return "RTM_GETLINK"
	case MsgSetLink:
		return "RTM_SETLINK"
	case MsgNewAddr:
		return "RTM_NEWADDR"
	case MsgDelAddr:
		return "RTM_DELADDR"
	case MsgGetAddr:
		return "RTM_GETADDR"
	case MsgNewRoute:
		return "RTM_NEWROUTE"
	case MsgDelRoute:
		return "RTM_DELROUTE"
	case MsgGetRoute:
		return "RTM_GETROUTE"
	case MsgNewNeigh:
		return "RTM_NEWNEIGH"
	case MsgDelNeigh:
		return "RTM_DELNEIGH"
	case MsgGetNeigh:
		return "RTM_GETNEIGH"
	case MsgNewNeighTable:
		return "RTM_NEWNEIGHTBL"
	case MsgGetNeighTable:
		return "RTM_GETNEIGHTBL"
	case MsgSetNeighTable:
		return "RTM_SETNEIGHTBL"
	}
	return fmt.Sprintf("type %d", t)
}
