package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
)

func init() {
	register(&command{
		name:     "attach",
		summary:  "connect a container netns to the overlay and register it in the store",
		synopsis: attachSynopsis,
		run:      runAttach,
	})
}

const attachSynopsis = "attach NAME [--ip 198.51.100.2/24] [--mac 02:42:c6:33:64:02] [--ifname eth0] [--block-bits 26]"

const attachHelp = `
Connects the container network namespace NAME (in --netns-dir; created if
missing) to the overlay: a veth pair whose host end (named after NAME) joins
the bridge in the overlay namespace and whose other end becomes --ifname in
the container, with --mac, --ip, the overlay's MTU and a default route via the
gateway, loopback and both ends up. Then it registers IP -> MAC and MAC ->
this node's VTEP in --store.

Without --ip, the address is allocated: from the address blocks this node
holds in --store, claiming another block (of --block-bits) when they are
full; an explicit --ip is honoured if no other container has it. detach
releases the address, reset the node's blocks.

Run create first. Flags may come before or after NAME. A NAME already
attached, an IP outside the overlay subnet, or an IP the store gives to
another MAC is refused before anything is created; any later failure removes
again everything attach made.`

func runAttach(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var ipFlag, macFlag, ifname string
	fs.StringVar(&ipFlag, "ip", "", "the container's IPv4 address with the overlay's prefix, e.g. 198.51.100.2/24 (a bare address takes the overlay's prefix; default: allocated from this node's address blocks)")
	fs.IntVar(&e.global.blockBits, "block-bits", ipam.DefaultBlockBits, "prefix length of the address blocks a node claims for allocation (the same on every node)")
	fs.StringVar(&macFlag, "mac", "", "the container interface's MAC (default 02:42 + the 4 IPv4 address bytes, as Docker does)")
	fs.StringVar(&ifname, "ifname", overlay.DefaultIfName, "the container interface's name")
	setUsage(fs, attachSynopsis, attachHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName(pos)
	if err != nil {
		return err
	}
	req := overlay.AttachRequest{Name: name, IfName: ifname}
	if macFlag != "" {
		if req.MAC, err = ethaddr.Parse(macFlag); err != nil {
			return fmt.Errorf("%w: --mac %q: not a MAC address like 02:42:c6:33:64:02", errUsage, macFlag)
		}
		switch {
		case req.MAC.IsZero():
			return fmt.Errorf("%w: --mac %s: the all-zero MAC is not a valid interface address", errUsage, req.MAC)
		case req.MAC.IsMulticast():
			return fmt.Errorf("%w: --mac %s: multicast MAC (group bit set) is not a valid interface address", errUsage, req.MAC)
		}
	}
	if err := overlay.ValidateNetNSName(name); err != nil {
		return fmt.Errorf("%w: NAME: %w", errUsage, err)
	}
	if ipFlag != "" {
		if req.IP, req.Addr, err = parseContainerIP(ipFlag); err != nil {
			return err
		}
	}
	if e.global.blockBits < 1 || e.global.blockBits > 32 {
		return fmt.Errorf("%w: --block-bits %d: want 1..32", errUsage, e.global.blockBits)
	}

	n, done, err := e.node(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	ep, err := n.Attach(ctx, req)
	if err != nil {
		return err
	}
	printEndpoint(e.stdout, ep)
	return nil
}

// parseContainerIP parses --ip: an address with prefix (p), or a bare
// address (a: Attach gives it the prefix length of the overlay subnet).
func parseContainerIP(s string) (p netip.Prefix, a netip.Addr, err error) {
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("%w: --ip %q: want an IPv4 address with prefix, e.g. 198.51.100.2/24", errUsage, s)
	}
	return p, a, nil
}

// oneName returns the single NAME argument.
func oneName(pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", fmt.Errorf("%w: NAME (the container's netns name) is required", errUsage)
	case 1:
		return pos[0], nil
	default:
		return "", fmt.Errorf("%w: one NAME expected, got %q", errUsage, pos)
	}
}

// printEndpoint writes a short human summary of ep.
func printEndpoint(w io.Writer, ep *overlay.Endpoint) {
	fmt.Fprintf(w, "attached %s: %s %s MAC %s (veth %s ifindex %d <-> %s ifindex %d), registered at VTEP %s\n",
		ep.Name, ep.IfName, ep.IP, ep.MAC, ep.HostIf, ep.HostIndex, ep.IfName, ep.PeerIndex, ep.VTEP)
}
