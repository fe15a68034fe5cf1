package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Extended-ACK attributes (enum nlmsgerr_attrs).
const (
	nlmsgerrAttrMsg  = 1 // NLMSGERR_ATTR_MSG: string
	nlmsgerrAttrOffs = 2 // NLMSGERR_ATTR_OFFS: u32 offset of the bad attribute
)

// ErrDumpInterrupted reports that the kernel flagged a dump NLM_F_DUMP_INTR:
// the table changed while it was dumped, so the result may be inconsistent.
// The messages received are still delivered; retry the dump for a
// consistent view.
var ErrDumpInterrupted = errors.New("rtnl: dump interrupted by a concurrent change (NLM_F_DUMP_INTR)")

// ErrNotSupported is returned, on systems other than Linux, by what needs
// the kernel: Dial, DialMonitor and the network-namespace functions. The
// codec, NewConn and NewMonitor over a Transport work everywhere.
var ErrNotSupported = errors.New("rtnl: netlink sockets and network namespaces need Linux")

// OpError is an error the kernel returned for one request, or a socket error
// met while performing it. It wraps the errno, so errors.Is(err, syscall.EEXIST)
// works, and carries the kernel's extended-ACK text where there is one.
type OpError struct {
	// Op names the request: "RTM_NEWNEIGH", "sendmsg", "recvmsg", ...
	Op string
	// Err is the underlying error, usually a syscall.Errno.
	Err error
	// Message is the kernel's extended-ACK message (NLMSGERR_ATTR_MSG), if any.
	Message string
	// Offset is the byte offset of the offending attribute in the request
	// (NLMSGERR_ATTR_OFFS), or 0 if the kernel did not say.
	Offset uint32
}

// Error formats the error as "rtnl: OP: ERRNO TEXT: KERNEL MESSAGE".
func (e *OpError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("rtnl: %s: %v: %s", e.Op, e.Err, e.Message)
	}
	return fmt.Sprintf("rtnl: %s: %v", e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the error is a timeout.
func (e *OpError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// parseAck decodes the payload of an NLMSG_ERROR message. It returns the
// sequence of the request it acknowledges and nil for a success ACK, or an
// *OpError naming op.
func parseAck(h Header, data []byte) (origSeq uint32, err error) {
	if len(data) < 4+HeaderLen {
		return 0, &OpError{Op: "NLMSG_ERROR", Err: fmt.Errorf("rtnl: error message of %d bytes is too short", len(data))}
	}
	code := int32(binary.NativeEndian.Uint32(data[0:4]))
	orig, _, perr := parseOrigHeader(data[4:])
	if perr != nil {
		return 0, &OpError{Op: "NLMSG_ERROR", Err: perr}
	}
	if code == 0 {
		return orig.Sequence, nil
	}
	e := &OpError{Op: MessageTypeName(orig.Type), Err: ErrnoFromLinux(uint32(-code))}
	if code > 0 {
		e.Err = fmt.Errorf("rtnl: kernel returned positive error code %d", code)
	}
	if h.Flags&flagAckTLVs != 0 {
		// The TLVs follow the original request: its header alone when the
		// ACK is capped, the whole request otherwise.
		off := 4 + HeaderLen
		if h.Flags&flagCapped == 0 {
			off = 4 + Align(int(orig.Length))
		}
		if off <= len(data) {
			ad := NewAttributeDecoder(data[off:])
			for ad.Next() {
				switch ad.Type() {
				case nlmsgerrAttrMsg:
					e.Message = string(trimNUL(ad.Bytes()))
				case nlmsgerrAttrOffs:
					if ad.Len() == 4 {
						e.Offset = ad.Uint32()
					}
				}
			}
		}
	}
	return orig.Sequence, e
}

// parseOrigHeader decodes the copy of the request header inside an error
// message without checking its length against the (possibly capped) payload.
func parseOrigHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, errShortMessage
	}
	return Header{
		Length:   binary.NativeEndian.Uint32(b[0:4]),
		Type:     binary.NativeEndian.Uint16(b[4:6]),
		Flags:    binary.NativeEndian.Uint16(b[6:8]),
		Sequence: binary.NativeEndian.Uint32(b[8:12]),
		PID:      binary.NativeEndian.Uint32(b[12:16]),
	}, b[HeaderLen:], nil
}
