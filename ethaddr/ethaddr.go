// Package ethaddr owns the Ethernet (EUI-48) address type shared by the
// registries, the resolver and the guard: a 6-byte value type, so that
// decoding one never allocates, with its text form. The netlink layer (rtnl)
// speaks [6]byte, which MAC is assignable to and from, so that rtnl depends on
// nothing of ours. It imports only the standard library.
package ethaddr

import (
	"errors"
	"fmt"
)

// MAC is a 6-byte Ethernet (EUI-48) address.
type MAC [6]byte

// Parse parses a colon- or dash-separated EUI-48 address
// ("02:42:c6:33:64:02").
func Parse(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("ethaddr: bad MAC %q: %w", s, errSyntax)
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("ethaddr: bad MAC %q: %w", s, errSyntax)
	}
	for i := range m {
		if i > 0 && s[i*3-1] != sep {
			return m, fmt.Errorf("ethaddr: bad MAC %q: %w", s, errSyntax)
		}
		hi, ok1 := fromHex(s[i*3])
		lo, ok2 := fromHex(s[i*3+1])
		if !ok1 || !ok2 {
			return m, fmt.Errorf("ethaddr: bad MAC %q: %w", s, errSyntax)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

var errSyntax = errors.New("want six hex bytes separated by ':' or '-'")

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const hexdigits = "0123456789abcdef"

// String formats m as six colon-separated lowercase hex bytes.
func (m MAC) String() string {
	var b [17]byte
	return string(m.appendTo(b[:0]))
}

func (m MAC) appendTo(b []byte) []byte {
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return b
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether m has the group bit set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsUnicast reports whether m can be a station's own address: not all
// zeros and not multicast (nor broadcast).
func (m MAC) IsUnicast() bool { return !m.IsZero() && !m.IsMulticast() }

// Bytes returns a copy of m's six bytes (allocating), for link-layer
// address fields of any length.
func (m MAC) Bytes() []byte { return append([]byte(nil), m[:]...) }

// AppendText appends m in String form to b (encoding.TextAppender).
func (m MAC) AppendText(b []byte) ([]byte, error) { return m.appendTo(b), nil }

// MarshalText returns m in String form, so MACs read as strings in JSON.
func (m MAC) MarshalText() ([]byte, error) { return m.AppendText(nil) }

// UnmarshalText parses a colon- or dash-separated EUI-48 address into m.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
