package rtnltest

import (
	"encoding/binary"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Header flags of error replies (rtnl keeps its own unexported).
const (
	flagCapped  = 0x100 // NLM_F_CAPPED
	flagAckTLVs = 0x200 // NLM_F_ACK_TLVS
)

// Extended-ACK attributes (enum nlmsgerr_attrs).
const (
	attrMsg  = 1 // NLMSGERR_ATTR_MSG
	attrOffs = 2 // NLMSGERR_ATTR_OFFS
)

// frame builds the datagrams answering req, as the kernel does for a socket
// with NETLINK_CAP_ACK and NETLINK_EXT_ACK set: the messages (NLM_F_MULTI in
// a dump), then NLMSG_DONE for a dump, or an NLMSG_ERROR for a failure or a
// request asking for an ACK. errno is the failure's Linux error number, 0
// for success.
func frame(req Request, msgs []Message, errno uint32, ext *Error) [][]byte {
	dump := req.IsDump()
	var out [][]byte
	var cur []byte
	add := func(m []byte) {
		if len(cur) > 0 && len(cur)+len(m) > MaxDatagram {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, m...)
	}
	for _, m := range msgs {
		flags := m.Flags
		if dump {
			flags |= rtnl.FlagMulti
		}
		add(message(req, m.Type, flags, m.Data))
	}
	switch {
	case dump:
		var body []byte
		flags := uint16(rtnl.FlagMulti)
		body = binary.NativeEndian.AppendUint32(body, -errno)
		if errno != 0 && ext != nil && (ext.Message != "" || ext.Offset != 0) {
			flags |= flagAckTLVs
			body = appendTLVs(body, ext)
		}
		add(message(req, rtnl.MsgDone, flags, body))
	case errno != 0 || req.Header.Flags&rtnl.FlagAck != 0:
		// CAP_ACK: the request's header only, never its payload.
		flags := uint16(flagCapped)
		body := binary.NativeEndian.AppendUint32(nil, -errno)
		body = rtnl.AppendHeader(body, req.Header)
		if errno != 0 && ext != nil && (ext.Message != "" || ext.Offset != 0) {
			flags |= flagAckTLVs
			body = appendTLVs(body, ext)
		}
		add(message(req, rtnl.MsgError, flags, body))
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// message encodes one reply to req (its sequence number, addressed to the
// requester's port), padded to the netlink alignment.
func message(req Request, typ, flags uint16, data []byte) []byte {
	b := rtnl.AppendHeader(make([]byte, 0, rtnl.Align(rtnl.HeaderLen+len(data))), rtnl.Header{
		Length: uint32(rtnl.HeaderLen + len(data)), Type: typ, Flags: flags,
		Sequence: req.Header.Sequence, PID: req.Header.PID,
	})
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendTLVs appends the extended-ACK attributes of e.
func appendTLVs(b []byte, e *Error) []byte {
	ae := rtnl.NewAttributeEncoder(b)
	if e.Message != "" {
		ae.String(attrMsg, e.Message)
	}
	if e.Offset != 0 {
		ae.Uint32(attrOffs, e.Offset)
	}
	return ae.Bytes()
}
