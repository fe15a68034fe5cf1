// Package golden reads the kernel messages captured in testdata/kernel in
// the host's byte order, for the tests and benchmarks of every architecture.
//
// Netlink is host-endian, so a capture holds the byte order of the machine
// that made it; the directory records it in a file named BYTEORDER
// ("little-endian" or "big-endian"), written with the capture. On a host of
// the other order, Read converts every field the rtnetlink schema of this
// package knows: message headers, the fixed structs (ndmsg, ifinfomsg,
// ifaddrmsg, rtmsg, nlmsgerr), attribute headers and integer attributes,
// leaving byte strings, addresses and the fields the kernel keeps in network
// order (NDA_PORT, IFLA_VXLAN_PORT, labels) as they are. An attribute the
// schema does not know makes the conversion fail rather than guess.
package golden

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OrderFile names the file that records a capture directory's byte order.
const OrderFile = "BYTEORDER"

// Host returns the byte order of this machine.
func Host() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// Name returns "little-endian" or "big-endian".
func Name(o binary.ByteOrder) string {
	if o == binary.ByteOrder(binary.BigEndian) {
		return "big-endian"
	}
	return "little-endian"
}

// Order returns the byte order recorded in dir/BYTEORDER.
func Order(dir string) (binary.ByteOrder, error) {
	b, err := os.ReadFile(filepath.Join(dir, OrderFile))
	if err != nil {
		return nil, fmt.Errorf("golden: the captures' byte order: %w", err)
	}
	switch s := strings.TrimSpace(string(b)); s {
	case "little-endian":
		return binary.LittleEndian, nil
	case "big-endian":
		return binary.BigEndian, nil
	default:
		return nil, fmt.Errorf("golden: %s: unknown byte order %q", filepath.Join(dir, OrderFile), s)
	}
}

// WriteOrder records the host's byte order in dir/BYTEORDER (after a
// capture on this machine).
func WriteOrder(dir string) error {
	return os.WriteFile(filepath.Join(dir, OrderFile), []byte(Name(Host())+"\n"), 0o644)
}

// ReadFile reads the capture at path and returns it in host byte order,
// converted from the order recorded beside it.
func ReadFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	from, err := Order(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	b, err := Convert(raw, from, Host())
	if err != nil {
		return nil, fmt.Errorf("golden: %s: %w", path, err)
	}
	return b, nil
}

// Read reads dir/NAME.bin in host byte order.
func Read(dir, name string) ([]byte, error) {
	return ReadFile(filepath.Join(dir, name+".bin"))
}

// Convert returns a copy of the netlink messages in b, read in byte order
// from, written in byte order to.
func Convert(b []byte, from, to binary.ByteOrder) ([]byte, error) {
	out := append([]byte(nil), b...)
	if from == to {
		return out, nil
	}
	s := swapper{order: from}
	for off := 0; off < len(out); {
		if len(out)-off < hdrLen {
			return nil, fmt.Errorf("%d trailing bytes after the last message", len(out)-off)
		}
		n := int(from.Uint32(out[off:]))
		if n < hdrLen || n > len(out)-off {
			return nil, fmt.Errorf("message at %d: length %d does not fit %d bytes", off, n, len(out)-off)
		}
		if err := s.message(out[off : off+n]); err != nil {
			return nil, fmt.Errorf("message at %d: %w", off, err)
		}
		off += (n + 3) &^ 3
	}
	return out, nil
}

const hdrLen = 16

// swapper reverses, in place, the bytes of every multi-byte integer of a
// message whose lengths it reads in order.
type swapper struct{ order binary.ByteOrder }

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// words reverses each w-byte word of b (a u16/u32/u64 or an array of them).
func words(b []byte, w int) error {
	if len(b)%w != 0 {
		return fmt.Errorf("%d bytes are not a whole number of %d-byte words", len(b), w)
	}
	for i := 0; i < len(b); i += w {
		reverse(b[i : i+w])
	}
	return nil
}

// fields reverses consecutive fields of the given sizes (1 is a byte:
// nothing to do); bytes past them are left alone.
func fields(b []byte, sizes ...int) error {
	off := 0
	for _, n := range sizes {
		if off+n > len(b) {
			return fmt.Errorf("struct of %d bytes, need %d", len(b), off+n)
		}
		reverse(b[off : off+n])
		off += n
	}
	return nil
}

// header swaps a netlink header and returns the message type and flags (as
// read before the swap).
func (s swapper) header(b []byte) (typ, flags uint16) {
	typ, flags = s.order.Uint16(b[4:]), s.order.Uint16(b[6:])
	fields(b, 4, 2, 2, 4, 4)
	return typ, flags
}

func (s swapper) message(b []byte) error {
	typ, flags := s.header(b)
	return s.body(typ, flags, b[hdrLen:], false)
}

// Message types and the fixed struct each family's messages start with.
const (
	nlmsgError = 2
	nlmsgDone  = 3

	flagCapped  = 0x100 // NLM_F_CAPPED
	flagAckTLVs = 0x200 // NLM_F_ACK_TLVS
)

// body swaps a message's payload given its type. echoed is true inside an
// NLMSG_ERROR, whose copy of the request may be cut short.
func (s swapper) body(typ, flags uint16, b []byte, echoed bool) error {
	switch {
	case typ == nlmsgError:
		if len(b) < 4+hdrLen {
			return fmt.Errorf("NLMSG_ERROR of %d bytes", len(b))
		}
		reverse(b[0:4])
		orig := b[4:]
		olen := int(s.order.Uint32(orig))
		otyp, oflags := s.header(orig)
		rest := orig[hdrLen:]
		if flags&flagCapped == 0 {
			n := olen - hdrLen
			if n < 0 || n > len(rest) {
				return fmt.Errorf("echoed request of length %d in %d bytes", olen, len(orig))
			}
			if err := s.body(otyp, oflags, rest[:n], true); err != nil {
				return fmt.Errorf("echoed request: %w", err)
			}
			rest = rest[min((n+3)&^3, len(rest)):]
		}
		if flags&flagAckTLVs != 0 {
			return s.attrs(rest, errAttrs())
		}
		return nil
	case typ == nlmsgDone:
		if len(b) >= 4 {
			reverse(b[0:4])
		}
		return nil
	case typ >= 16 && typ <= 19: // RTM_{NEW,DEL,GET,SET}LINK
		return s.link(b)
	case typ >= 20 && typ <= 22: // RTM_*ADDR: struct ifaddrmsg
		if err := fields(b, 1, 1, 1, 1, 4); err != nil {
			return err
		}
		return s.attrs(b[8:], addrAttrs())
	case typ >= 24 && typ <= 26: // RTM_*ROUTE: struct rtmsg
		if err := fields(b, 1, 1, 1, 1, 1, 1, 1, 1, 4); err != nil {
			return err
		}
		return s.attrs(b[12:], routeAttrs())
	case typ >= 28 && typ <= 30: // RTM_*NEIGH: struct ndmsg
		if err := fields(b, 1, 1, 2, 4, 2, 1, 1); err != nil {
			return err
		}
		return s.attrs(b[12:], neighAttrs())
	}
	return fmt.Errorf("message type %d: not in the schema", typ)
}

// link swaps a struct ifinfomsg and its IFLA_* attributes.
func (s swapper) link(b []byte) error {
	if err := fields(b, 1, 1, 2, 4, 4, 4); err != nil {
		return err
	}
	return s.attrs(b[16:], linkAttrs())
}

// attrs swaps the attributes in b, each payload as the schema says.
func (s swapper) attrs(b []byte, sc schema) error {
	for len(b) >= 4 {
		n := int(s.order.Uint16(b))
		typ := s.order.Uint16(b[2:]) & 0x3fff
		flagged := s.order.Uint16(b[2:])&0x8000 != 0
		if n < 4 || n > len(b) {
			return fmt.Errorf("attribute %d: length %d does not fit %d bytes", typ, n, len(b))
		}
		fields(b, 2, 2)
		p := b[4:n]
		k, ok := sc.kinds[typ]
		if !ok {
			return fmt.Errorf("%s attribute %d: not in the schema", sc.name, typ)
		}
		if err := k(s, p, flagged); err != nil {
			return fmt.Errorf("%s attribute %d: %w", sc.name, typ, err)
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	if len(b) != 0 {
		return fmt.Errorf("%s: %d trailing bytes", sc.name, len(b))
	}
	return nil
}
