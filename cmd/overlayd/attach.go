package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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

const attachSynopsis = "attach NAME [--ip 198.51.100.2/24] [--ip 2001:db8:42::2/64] [--only ipv4|ipv6] [--mac 02:42:c6:33:64:02] [--ifname eth0] [--block-bits 26]"

const attachHelp = `
Connects the container network namespace NAME (in --netns-dir; created if
missing) to the overlay: a veth pair whose host end (named after NAME) joins
the bridge in the overlay namespace and whose other end becomes --ifname in
the container, with --mac, --ip, the overlay's MTU and a default route via the
gateway, loopback and both ends up. Then it registers IP -> MAC and MAC ->
this node's VTEP in --store.

On a dual-stack overlay (create with an IPv6 --gateway) the container gets an
address of each family (--only ipv4 or --only ipv6: one of them), each
registered, and a default route via each gateway; its IPv6 address is usable
at once (no duplicate address detection: the store keeps addresses unique).
--ip is given once per family, or not at all.

An address not given is allocated: from the address blocks this node holds
in --store, claiming another block (of --block-bits for IPv4, of the
overlay's IPv6 block size for IPv6) when they are full; an explicit --ip is
honoured if no other container has it. detach releases the addresses, reset
the node's blocks.

Run create first. Flags may come before or after NAME. A NAME already
attached, an IP outside the overlay subnet, or an IP the store gives to
another MAC is refused before anything is created; any later failure removes
again everything attach made.`

func runAttach(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var macFlag, ifname, only string
	var ips listFlag
	fs.Var(&ips, "ip", "the container's address with the overlay's prefix, once per family, e.g. 198.51.100.2/24 or 2001:db8:42::2/64 (a bare address takes the overlay's prefix; default: allocated from this node's address blocks)")
	fs.StringVar(&only, "only", "", "give the container an address of one family only, ipv4 or ipv6 (default: one of each family the overlay has)")
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
	pf, err := splitFamilies("ip", ips, true, "198.51.100.2/24 or 2001:db8:42::2/64")
	if err != nil {
		return err
	}
	req.IP, req.Addr, req.IP6, req.Addr6 = pf.v4, pf.a4, pf.v6, pf.a6
	switch only {
	case "":
	case "ipv4", "4":
		req.Only = overlay.IPv4
	case "ipv6", "6":
		req.Only = overlay.IPv6
	default:
		return fmt.Errorf("%w: --only %q: want ipv4 or ipv6", errUsage, only)
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
	addrs := make([]string, 0, 2)
	for _, p := range ep.Addrs() {
		addrs = append(addrs, p.String())
	}
	fmt.Fprintf(w, "attached %s: %s %s MAC %s (veth %s ifindex %d <-> %s ifindex %d), registered at VTEP %s\n",
		ep.Name, ep.IfName, strings.Join(addrs, " "), ep.MAC, ep.HostIf, ep.HostIndex, ep.IfName, ep.PeerIndex, ep.VTEP)
}
