package registry

import (
	"errors"
	"fmt"
)

// MAC is a 6-byte Ethernet (EUI-48) address as the registry stores it. It
// has the same layout as rtnl.MAC (a plain conversion turns one into the
// other), so that registries need not import the netlink layer.
type MAC [6]byte

// ParseMAC parses a colon- or dash-separated EUI-48 address
// ("02:42:c6:33:64:02").
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("registry: bad MAC %q: %w", s, errMACSyntax)
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("registry: bad MAC %q: %w", s, errMACSyntax)
	}
	for i := range m {
		if i > 0 && s[i*3-1] != sep {
			return m, fmt.Errorf("registry: bad MAC %q: %w", s, errMACSyntax)
		}
		hi, ok1 := fromHex(s[i*3])
		lo, ok2 := fromHex(s[i*3+1])
		if !ok1 || !ok2 {
			return m, fmt.Errorf("registry: bad MAC %q: %w", s, errMACSyntax)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

var errMACSyntax = errors.New("want six hex bytes separated by ':' or '-'")

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

// String formats m as six colon-separated lowercase hex bytes.
func (m MAC) String() string {
	const hexdigits = "0123456789abcdef"
	var b [17]byte
	for i, c := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexdigits[c>>4]
		b[i*3+1] = hexdigits[c&0xf]
	}
	return string(b[:])
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether m has the group bit set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// AppendText appends m in String form to b (encoding.TextAppender).
func (m MAC) AppendText(b []byte) ([]byte, error) { return append(b, m.String()...), nil }

// MarshalText returns m in String form, so MACs read as strings in JSON.
func (m MAC) MarshalText() ([]byte, error) { return m.AppendText(nil) }

// UnmarshalText parses a colon-separated EUI-48 address into m.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ValidateMAC refuses MACs a container cannot use: all zeros, or multicast
// (the group bit set, broadcast included).
func ValidateMAC(m MAC) error {
	switch {
	case m.IsZero():
		return fmt.Errorf("overlay: MAC %s is all zeros", m)
	case m.IsMulticast():
		return fmt.Errorf("overlay: MAC %s is multicast (group bit set)", m)
	}
	return nil
}
