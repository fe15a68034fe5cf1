package overlay

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// DeriveMAC returns the MAC Docker gives an IPv4 address: 02:42 followed by
// the four address bytes (198.51.100.2 → 02:42:c6:33:64:02). For any other
// address it hashes the address into the same locally administered 02:42
// range. It is registry.DeriveMAC: the stores that describe containers by
// spans (Kubernetes) derive every container's MAC the same way.
func DeriveMAC(ip netip.Addr) ethaddr.MAC { return registry.DeriveMAC(ip) }

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
