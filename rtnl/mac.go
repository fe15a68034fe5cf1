package rtnl

import (
	"fmt"
	"net"
)

// MAC is a 6-byte Ethernet (EUI-48) address, a value type so that decoding
// one never allocates.
type MAC [6]byte

// ParseMAC parses a colon-separated EUI-48 address ("02:42:c6:33:64:02").
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("rtnl: bad MAC %q: %w", s, err)
	}
	if len(hw) != 6 {
		return MAC{}, fmt.Errorf("rtnl: bad MAC %q: %d bytes, not 6", s, len(hw))
	}
	return MAC(hw), nil
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

// HardwareAddr returns m as a net.HardwareAddr (allocating).
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(m[:]) }

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
