package rtnl

import (
	"encoding/binary"
	"fmt"
)

// neighRequest encodes m on the stack (when it fits) and executes it.
func (c *Conn) neighRequest(typ, flags uint16, m *NeighMessage) error {
	var buf [128]byte
	b, err := m.AppendBinary(buf[:0])
	if err != nil {
		return err
	}
	return c.Execute(typ, flags, b)
}

// NeighAdd creates a neighbour or FDB entry (RTM_NEWNEIGH with
// NLM_F_CREATE|NLM_F_EXCL, like `ip neigh add` / `bridge fdb add`). An
// existing entry fails with an error matching syscall.EEXIST.
func (c *Conn) NeighAdd(m *NeighMessage) error {
	return c.neighRequest(MsgNewNeigh, FlagCreate|FlagExcl, m)
}

// NeighReplace creates or replaces a neighbour or FDB entry (RTM_NEWNEIGH with
// NLM_F_CREATE|NLM_F_REPLACE, like `ip neigh replace` / `bridge fdb replace`).
func (c *Conn) NeighReplace(m *NeighMessage) error {
	return c.neighRequest(MsgNewNeigh, FlagCreate|FlagReplace, m)
}

// NeighAppend adds a remote to an FDB entry (RTM_NEWNEIGH with
// NLM_F_CREATE|NLM_F_APPEND, like `bridge fdb append`). The vxlan driver
// adds remotes only to the entries of the all-zeros and multicast MACs
// (flooding lists); for another MAC it creates a missing entry and leaves an
// existing one as it is.
func (c *Conn) NeighAppend(m *NeighMessage) error {
	return c.neighRequest(MsgNewNeigh, FlagCreate|FlagAppend, m)
}

// NeighDelete deletes a neighbour or FDB entry (RTM_DELNEIGH, like
// `ip neigh del` / `bridge fdb del`). For a vxlan FDB entry with several
// remotes, NDA_DST (and NDA_PORT, NDA_VNI, NDA_IFINDEX) select the remote.
func (c *Conn) NeighDelete(m *NeighMessage) error {
	return c.neighRequest(MsgDelNeigh, 0, m)
}

// NeighAdd appends an RTM_NEWNEIGH NLM_F_CREATE|NLM_F_EXCL request for m.
func (b *Batch) NeighAdd(m *NeighMessage) error {
	return b.addNeigh(MsgNewNeigh, FlagCreate|FlagExcl, m)
}

// NeighReplace appends an RTM_NEWNEIGH NLM_F_CREATE|NLM_F_REPLACE request for m.
func (b *Batch) NeighReplace(m *NeighMessage) error {
	return b.addNeigh(MsgNewNeigh, FlagCreate|FlagReplace, m)
}

// NeighAppend appends an RTM_NEWNEIGH NLM_F_CREATE|NLM_F_APPEND request for m.
func (b *Batch) NeighAppend(m *NeighMessage) error {
	return b.addNeigh(MsgNewNeigh, FlagCreate|FlagAppend, m)
}

// NeighDelete appends an RTM_DELNEIGH request for m.
func (b *Batch) NeighDelete(m *NeighMessage) error {
	return b.addNeigh(MsgDelNeigh, 0, m)
}

// NeighFilter selects the entries of a neighbour dump. Family picks the
// table: AF_INET (ARP), AF_INET6 (ND), AF_BRIDGE (FDBs of bridges and of
// devices such as vxlan), or 0 for both IP tables. Ifindex and Master, when
// non-zero, are sent as NDA_IFINDEX and NDA_MASTER attributes (the form
// strict checking wants); entries of other devices are also dropped on
// receipt, so the Ifindex filter holds without strict checking too. The
// Master filter of an AF_BRIDGE dump needs strict checking (the default).
type NeighFilter struct {
	Family  uint8
	Ifindex int32
	Master  int32
}

// NeighList dumps the neighbour entries f selects.
func (c *Conn) NeighList(f NeighFilter) ([]NeighMessage, error) {
	var out []NeighMessage
	err := c.NeighDump(f, func(m *NeighMessage) error {
		e := *m
		e.LLAddr = append([]byte(nil), m.LLAddr...)
		out = append(out, e)
		return nil
	})
	return out, err
}

// NeighDump dumps the neighbour entries f selects and calls fn for each with
// one reused message (its LLAddr is overwritten by the next entry). An error
// from fn stops the dump and is returned; a reply that does not decode stops
// it with that error.
func (c *Conn) NeighDump(f NeighFilter, fn func(*NeighMessage) error) error {
	var buf [neighHeaderLen + 16]byte
	buf[0] = f.Family
	b := buf[:neighHeaderLen]
	if f.Ifindex != 0 {
		b = appendU32Attr(b, uint16(NeighAttrIfindex), uint32(f.Ifindex))
	}
	if f.Master != 0 {
		b = appendU32Attr(b, uint16(NeighAttrMaster), uint32(f.Master))
	}
	var m NeighMessage
	var ll [neighMaxLLAddrLen]byte
	m.LLAddr = ll[:0]
	return c.Dump(MsgGetNeigh, b, func(msg Message) error {
		if msg.Header.Type != MsgNewNeigh {
			return nil
		}
		if err := m.UnmarshalBinary(msg.Data); err != nil {
			return fmt.Errorf("rtnl: neighbour dump: %w", err)
		}
		if f.Ifindex != 0 && m.Ifindex != f.Ifindex {
			return nil
		}
		return fn(&m)
	})
}

// appendU32Attr appends a host-order u32 attribute without an encoder.
func appendU32Attr(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, 8)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.NativeEndian.AppendUint32(b, v)
}
