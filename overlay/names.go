package overlay

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// DeriveMAC returns the MAC Docker gives an IPv4 address: 02:42 followed by
// the four address bytes (198.51.100.2 → 02:42:c6:33:64:02). For any other
// address it hashes the address into the same locally administered 02:42
// range.
func DeriveMAC(ip netip.Addr) ethaddr.MAC {
	if ip.Is4() || ip.Is4In6() {
		a := ip.Unmap().As4()
		return ethaddr.MAC{0x02, 0x42, a[0], a[1], a[2], a[3]}
	}
	sum := sha256.Sum256(ip.AsSlice())
	return ethaddr.MAC{0x02, 0x42, sum[0], sum[1], sum[2], sum[3]}
}

// hostIfPrefix starts the name of every host-side veth.
const hostIfPrefix = "ve-"

// HostIfName returns the name of the host-side veth of container name in the
// overlay namespace: "ve-" + name when that fits in 15 bytes and is a valid
// interface name, otherwise "ve-" + the first 8 bytes of name's allowed
// characters + "-" + 3 hex digits of its SHA-256, so distinct long names
// rarely collide (Attach refuses a collision as an existing device).
func HostIfName(name string) string {
	full := hostIfPrefix + name
	if len(full) <= MaxIfNameLen && validateIfName("veth", full) == nil {
		return full
	}
	var keep []byte
	for i := 0; i < len(name) && len(keep) < 8; i++ {
		c := name[i]
		if c > ' ' && c < 0x7f && c != '/' && c != ':' {
			keep = append(keep, c)
		}
	}
	sum := sha256.Sum256([]byte(name))
	return hostIfPrefix + string(keep) + "-" + hex.EncodeToString(sum[:2])[:3]
}
