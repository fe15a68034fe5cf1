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

// decoder reads a message's fields in order:
//
//	d := decoder{b: msg}
//	for d.next() {
//		switch d.num {
//		case 1:
//			x = d.int64()
//		}
//	}
//	return d.err()
//
// Fields the loop does not read are skipped. The accessors check the wire
// type: a field of a known number with the wrong type makes the message
// invalid. Byte fields share the message's memory. A decoder lives on its
// caller's stack: decoding allocates only what it returns.
type decoder struct {
	b   []byte
	num int
	wt  wireType
	u   uint64 // varint value
	v   []byte // length-delimited value
	e   error
}

// next reads the next field; false at the end or at an error.
func (d *decoder) next() bool {
	if d.e != nil || len(d.b) == 0 {
		return false
	}
	tag, n := binary.Uvarint(d.b)
	if n <= 0 {
		return d.fail(errTruncated)
	}
	d.b = d.b[n:]
	d.num, d.wt, d.v = int(tag>>3), wireType(tag&7), nil
	if tag>>3 == 0 || tag>>3 > 1<<29-1 {
		return d.fail(fmt.Errorf("etcdv3: protobuf: bad field number %d", tag>>3))
	}
	switch d.wt {
	case wireVarint:
		if d.u, n = binary.Uvarint(d.b); n <= 0 {
			return d.fail(errTruncated)
		}
		d.b = d.b[n:]
	case wireFixed64, wireFixed32:
		size := 8
		if d.wt == wireFixed32 {
			size = 4
		}
		if len(d.b) < size {
			return d.fail(errTruncated)
		}
		d.b = d.b[size:]
	case wireBytes:
		l, n := binary.Uvarint(d.b)
		if n <= 0 || l > uint64(len(d.b)-n) {
			return d.fail(errTruncated)
		}
		d.v = d.b[n : n+int(l) : n+int(l)]
		d.b = d.b[n+int(l):]
	default:
		return d.fail(fmt.Errorf("etcdv3: protobuf: field %d: unsupported %s", d.num, d.wt))
	}
	return true
}

func (d *decoder) fail(err error) bool {
	if d.e == nil {
		d.e = err
	}
	return false
}

func (d *decoder) err() error { return d.e }

func (d *decoder) want(w wireType) bool {
	if d.wt != w {
		d.fail(fmt.Errorf("etcdv3: protobuf: field %d has the wrong type (%s)", d.num, d.wt))
		d.b = nil
		return false
	}
	return true
}

func (d *decoder) int64() int64 {
	if !d.want(wireVarint) {
		return 0
	}
	return int64(d.u)
}

func (d *decoder) bool() bool { return d.int64() != 0 }

// bytes returns a length-delimited field (a nested message's encoding).
func (d *decoder) bytes() []byte {
	if !d.want(wireBytes) {
		return nil
	}
	return d.v
}

// check records err, a nested message's, as the message's.
func (d *decoder) check(err error) {
	if err != nil {
		d.fail(err)
		d.b = nil
	}
}

// count returns how many fields num the message b holds (to size a
// repeated field's slice before decoding it).
func count(b []byte, num int) int {
	n := 0
	d := decoder{b: b}
	for d.next() {
		if d.num == num {
			n++
		}
	}
	return n
}
