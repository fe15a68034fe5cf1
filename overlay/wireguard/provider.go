package wireguard

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Provider is what runs a WireGuard device.
type Provider uint8

// Providers.
const (
	// ProviderKernel is the kernel's WireGuard (a link of kind
	// "wireguard"), configured over generic netlink.
	ProviderKernel Provider = iota + 1
	// ProviderUserspace is golang.zx2c4.com/wireguard in a process of its
	// own (a TUN device), configured over its UAPI socket.
	ProviderUserspace
)

// String names p as status shows it: "kernel", "userspace".
func (p Provider) String() string {
	switch p {
	case ProviderKernel:
		return "kernel"
	case ProviderUserspace:
		return "userspace"
	}
	return "Provider(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes p as its name.
func (p Provider) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes a provider's name.
func (p *Provider) UnmarshalText(b []byte) error {
	switch string(b) {
	case "kernel":
		*p = ProviderKernel
	case "userspace":
		*p = ProviderUserspace
	default:
		return fmt.Errorf("wireguard: provider %q: want kernel or userspace", b)
	}
	return nil
}

// KindWireGuard is the link kind of a kernel WireGuard device.
const KindWireGuard = "wireguard"

// KindTUN is the link kind of a userspace device's TUN.
const KindTUN = "tun"

// LinkMaker is the part of an rtnl.Conn that Choose needs.
type LinkMaker interface {
	LinkAdd(m *rtnl.LinkMessage) error
}

// Choose picks the provider of a new device named name, in the calling
// namespace of c: it asks for a link of kind "wireguard" (RTM_NEWLINK);
// made, the provider is the kernel's and the link is there (with mtu).
// Refused as an unknown kind (EOPNOTSUPP: no WireGuard module, as on
// kernels built without it), the provider is userspace and nothing was
// made. Any other failure (a link of that name exists, no permission) is
// an error naming it. With want set, only that provider is tried: kernel
// fails where the kernel has none, userspace makes nothing.
func Choose(c LinkMaker, name string, mtu uint32, want Provider) (Provider, error) {
	if want == ProviderUserspace {
		return ProviderUserspace, nil
	}
	m := &rtnl.LinkMessage{Name: name, MTU: mtu, Info: &rtnl.LinkInfo{Kind: KindWireGuard}}
	err := c.LinkAdd(m)
	switch {
	case err == nil:
		return ProviderKernel, nil
	case errors.Is(err, unix.EOPNOTSUPP) && want == ProviderKernel:
		return 0, fmt.Errorf("wireguard: the kernel has no WireGuard (RTM_NEWLINK of kind wireguard: %w): use the userspace provider", err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return ProviderUserspace, nil
	}
	return 0, fmt.Errorf("wireguard: create device %s: %w", name, err)
}
