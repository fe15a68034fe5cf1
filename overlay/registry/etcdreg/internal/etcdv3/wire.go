package etcdv3

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol buffers wire format, the part etcd's messages use: varints
// (int64, uint64, bool, enums) and length-delimited fields (bytes, strings,
// nested and repeated messages). Fixed-width fields are skipped when met
// (unknown fields), groups are refused.

// wireType is the low three bits of a field's tag.
type wireType uint8

const (
	wireVarint  wireType = 0
	wireFixed64 wireType = 1
	wireBytes   wireType = 2
	wireGroupS  wireType = 3
	wireGroupE  wireType = 4
	wireFixed32 wireType = 5
)

func (w wireType) String() string {
	switch w {
	case wireVarint:
		return "varint"
	case wireFixed64:
		return "fixed64"
	case wireBytes:
		return "bytes"
	case wireGroupS:
		return "start-group"
	case wireGroupE:
		return "end-group"
	case wireFixed32:
		return "fixed32"
	}
	return fmt.Sprintf("wire-type-%d", uint8(w))
}

// errTruncated is a message that ends inside a field.
var errTruncated = errors.New("etcdv3: protobuf: truncated message")

func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendTag(b []byte, num int, w wireType) []byte {
	return appendVarint(b, uint64(num)<<3|uint64(w))
}

// appendInt appends a varint field; zero (proto3's default) is left out.
func appendInt(b []byte, num int, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(appendTag(b, num, wireVarint), uint64(v))
}

// appendBool appends a bool field; false is left out.
func appendBool(b []byte, num int, v bool) []byte {
	if !v {
		return b
	}
	return appendVarint(appendTag(b, num, wireVarint), 1)
}

// appendBytes appends a length-delimited field; empty is left out.
func appendBytes(b []byte, num int, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return append(appendVarint(appendTag(b, num, wireBytes), uint64(len(v))), v...)
}

func appendString(b []byte, num int, v string) []byte {
	if len(v) == 0 {
		return b
	}
	return append(appendVarint(appendTag(b, num, wireBytes), uint64(len(v))), v...)
}

// appendMessage appends a nested message encoded by enc, even when empty
// (a oneof member's presence is its field).
func appendMessage(b []byte, num int, enc func([]byte) []byte) []byte {
	inner := enc(nil)
	return append(appendVarint(appendTag(b, num, wireBytes), uint64(len(inner))), inner...)
}

// field is one decoded field. Its accessors check the wire type: a field of
// a known number with the wrong type makes the message invalid.
type field struct {
	num int
	wt  wireType
	u   uint64 // varint value
	b   []byte // length-delimited value, a slice of the message
	bad bool
}

func (f *field) want(w wireType) bool {
	if f.wt != w {
		f.bad = true
		return false
	}
	return true
}

func (f *field) int64() int64 {
	if !f.want(wireVarint) {
		return 0
	}
	return int64(f.u)
}

func (f *field) bool() bool { return f.int64() != 0 }

func (f *field) bytes() []byte {
	if !f.want(wireBytes) {
		return nil
	}
	return f.b
}

// message decodes a nested message with dec.
func (f *field) message(dec func([]byte) error) error {
	if !f.want(wireBytes) {
		return nil
	}
	return dec(f.b)
}

// decodeFields calls fn for each field of the message b, in order; fields
// fn does not know it ignores. Byte fields share b's memory.
func decodeFields(b []byte, fn func(f *field) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errTruncated
		}
		b = b[n:]
		f := field{num: int(tag >> 3), wt: wireType(tag & 7)}
		if tag>>3 == 0 || tag>>3 > 1<<29-1 {
			return fmt.Errorf("etcdv3: protobuf: bad field number %d", tag>>3)
		}
		switch f.wt {
		case wireVarint:
			if f.u, n = binary.Uvarint(b); n <= 0 {
				return errTruncated
			}
			b = b[n:]
		case wireFixed64, wireFixed32:
			size := 8
			if f.wt == wireFixed32 {
				size = 4
			}
			if len(b) < size {
				return errTruncated
			}
			b = b[size:]
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errTruncated
			}
			f.b = b[n : n+int(l) : n+int(l)]
			b = b[n+int(l):]
		default:
			return fmt.Errorf("etcdv3: protobuf: field %d: unsupported %s", f.num, f.wt)
		}
		if err := fn(&f); err != nil {
			return err
		}
		if f.bad {
			return fmt.Errorf("etcdv3: protobuf: field %d has the wrong type (%s)", f.num, f.wt)
		}
	}
	return nil
}
