package rtnl

// HardwareAddr is a link-layer address of any length (NDA_LLADDR). It is
// rtnl's own type, like net.HardwareAddr, so that rtnl does not import net.
// Six-byte addresses decode to [6]byte, which ethaddr.MAC (the product's Ethernet
// address type) is assignable to and from: rtnl imports nothing but the
// standard library and golang.org/x/sys.
type HardwareAddr []byte

// String formats a as colon-separated lowercase hex bytes.
func (a HardwareAddr) String() string {
	const hexdigits = "0123456789abcdef"
	if len(a) == 0 {
		return ""
	}
	b := make([]byte, 0, len(a)*3-1)
	for i, c := range a {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexdigits[c>>4], hexdigits[c&0xf])
	}
	return string(b)
}
