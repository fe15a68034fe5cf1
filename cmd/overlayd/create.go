package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

func init() {
	register(&command{
		name:     "create",
		summary:  "build this node's overlay: netns, bridge with the gateway address, vxlan (idempotent)",
		synopsis: createSynopsis,
		run:      runCreate,
	})
}

const createSynopsis = "create [--vni 42] [--port 4789] [--mtu 1450] [--gateway 198.51.100.1/24 [--gateway 2001:db8:42::1/64 [--block-bits6 120]]] " +
	"[--local VTEP_IP | --dev UNDERLAY_IF] [--learning] [--overlay-netns overns] [--bridge br0] [--vxlan vxlan1] " +
	"[--no-egress | --egress-dev IF --egress-link PREFIX --no-host-accept --egress6 masquerade|route|none] " +
	"[--no-vtep-filter] [--no-antispoof] " +
	"[--encrypt [--tunnel-subnet 169.254.32.0/19] [--wg-port 51820] [--wg-device NAME] [--wg-provider kernel|userspace]]"

const createHelp = `
Builds this node's overlay: the overlay network namespace (--overlay-netns, in
--netns-dir) holding a bridge with the gateway address and a vxlan device
(proxy, l2miss, l3miss) created in the current ("host") namespace and moved
into the overlay namespace, on the bridge, all up. The settings are remembered
in --state-dir, so attach, detach, status and reset need no repeated flags.

The overlay's network (VNI, port, MTU, gateway and subnet) is published in
--store (etcd: the config key; directory store: its config file) by the first
node that creates it; every other node's create, attach and run must agree
with it, or fail naming each difference.

Running create again with the same settings changes nothing. A device, a
recorded overlay or the store's network with other settings is an error that
lists each difference; nothing is destroyed (run reset first to rebuild).

--gateway is given once per address family (a family given again replaces
the earlier value, as any flag given twice): an IPv4 one (the overlay's
subnet; the default 198.51.100.1/24 when none is given) and, for a
dual-stack overlay, an IPv6 one beside it (--gateway 198.51.100.1/24
--gateway 2001:db8:42::1/64): containers then get an address of each family.
An IPv6 gateway alone is refused (IPv6-only overlays are not supported:
egress, the node path and the containers' derived MACs need IPv4). Nodes
claim IPv6 addresses in blocks of --block-bits6 (/120 by default), the same
on every node; the IPv6 prefix must hold at least one block.

The VTEP (this node's underlay address) is --local, else the first address of
--dev, else the source of the default route; status shows which. Its family,
IPv4 or IPv6, is the underlay's: every node of an overlay must have the same
(the store records it), and an IPv6 underlay costs 70 bytes of each frame
instead of 50 (MTU 1430 by default instead of 1450).

Egress is on unless --no-egress: a veth pair between this namespace (overlay0)
and the overlay namespace (egress0) on a /30 link subnet (--egress-link, by
default the first /30 of 169.254.100.0/24 that no address or route of the node
uses), the overlay's default route via it and this node's route to the overlay
subnet back (so the node reaches its containers, from its VTEP address);
IPv4 forwarding turned on, per device over netlink, on the bridge, both veth
ends and the egress device (--egress-dev); and masquerade of overlay traffic
leaving by the egress device, in nftables table inet overlaynet-egress. On a
host whose forward chain has policy drop (Docker's "iptables -P FORWARD DROP"),
create appends two accept rules to it, as flannel does: "-s SUBNET -j ACCEPT"
and "-d SUBNET -j ACCEPT", commented "overlaynet-egress accept ..."; with
--no-host-accept it refuses instead, naming the chain and the rules it lacks.
reset removes exactly these and puts each forwarding value back.

On a dual-stack overlay the node path carries IPv6 too (link-local fe80::1
on overlay0, fe80::2 on egress0, routes via them), with IPv6 forwarding per
device (force_forwarding, Linux 6.17 and later; the kernel takes it only in
/proc/sys, where create writes it and reset puts the value back), and by
--egress6: masquerade (the default: NAT66 to the node's IPv6 address on the
IPv6 egress device, which works without anything outside the node knowing
the overlay's prefix), route (no NAT: for a network that routes the overlay's
IPv6 prefix to its nodes) or none. Accept rules go to ip6 forward chains
with policy drop ("ip6tables -P FORWARD DROP") as to IPv4's.

Two protections are on unless turned off here (for the life of the overlay):
the VTEP allowlist ('run' accepts VXLAN on the overlay's port only from the
underlay addresses of the store's nodes; --no-vtep-filter: any host that
reaches the port can put frames on the overlay, to any container, with any
source) and per-port anti-spoofing ('attach' lets a container send only with
its own MAC, IPv4 source and ARP sender, and on a dual-stack overlay its own
IPv6 source (or the link-local address of its MAC), Neighbor Advertisements
for its own addresses only, no Router Advertisement, redirect or DHCPv6
server message; no other ethertype; --no-antispoof: a container can forge
another's MAC, IP, ARP or Neighbor Discovery replies, locally and across
nodes). create puts back the anti-spoofing rules of
endpoints already attached, after a reboot or a flushed ruleset.

--encrypt carries the overlay between nodes inside WireGuard, the same on
every node (part of the agreed network, with the tunnel subnet): a WireGuard
device on the underlay (--wg-device, by default "owg" and 8 hex digits of
--state-dir hashed: unique per machine, as userspace WireGuard's UAPI socket
/var/run/wireguard/NAME.sock must be), its key made once in
--state-dir/wireguard (mode 0600), a tunnel address of --tunnel-subnet
claimed in --store with the public key and endpoint (underlay address and
--wg-port), and the vxlan between tunnel addresses inside it. The kernel's
WireGuard is used where it has one, else userspace WireGuard in a process of
its own ('overlayd wireguard', started here; 'run' starts it again if it
dies); --wg-provider forces one. The MTU then defaults to 1390 (1500 less
WireGuard's 60 and VXLAN's 50 bytes; 20 less on an IPv6 underlay), and a
larger one is refused. 'run' keeps the peers in line with the nodes that
come and go, 'rekey' changes the key, 'reset' removes device, key and
member record. A kube: store does not carry an encrypted overlay yet:
--encrypt with one is refused.`

// createFlags are the flags of overlayd create.
type createFlags struct {
	vni, port, mtu     uint64
	gateways           listFlag
	blockBits6         int
	local              string
	learning           bool
	netns, bridge, vxl string
	dev                string
	egress, noEgress   bool
	egressDev          string
	egressLink         string
	egress6            string
	noHostAccept       bool
	noVTEPFilter       bool
	noAntispoof        bool
	encrypt            bool
	tunnelSubnet       string
	wgPort             uint64
	wgDevice           string
	wgProvider         string
}

func (f *createFlags) bind(fs *flag.FlagSet) {
	def := overlay.DefaultConfig()
	fs.Uint64Var(&f.vni, "vni", uint64(def.VNI), fmt.Sprintf("VXLAN network identifier, 1..%d", overlay.MaxVNI))
	fs.Uint64Var(&f.port, "port", uint64(def.Port), "UDP destination port of the vxlan device, 1..65535")
	fs.Uint64Var(&f.mtu, "mtu", 0, fmt.Sprintf("MTU of the vxlan, the bridge and the container links, %d..(underlay MTU - %d, or - %d on an IPv6 underlay) (default %d, or %d on an IPv6 underlay)",
		overlay.MinMTU, overlay.VXLANOverhead, overlay.VXLANOverhead6, overlay.DefaultMTU, overlay.DefaultMTU6))
	fs.Var(&f.gateways, "gateway", "the bridge's address with prefix, once per family: the containers' gateway, and by its prefix the overlay subnet (default "+def.Gateway.String()+"; an IPv6 one beside it makes the overlay dual-stack)")
	fs.IntVar(&f.blockBits6, "block-bits6", 0, fmt.Sprintf("prefix length of the IPv6 address blocks nodes claim, the same on every node (default %d with an IPv6 gateway)", overlay.DefaultBlockBits6))
	fs.StringVar(&f.local, "local", "", "VTEP: this node's underlay IPv4 or IPv6 address, whose family is the underlay's (exclusive with --dev; default: the default route's source)")
	fs.StringVar(&f.dev, "dev", "", "underlay device whose first IPv4 address (else IPv6) is the VTEP (exclusive with --local)")
	fs.BoolVar(&f.learning, "learning", def.Learning, "turn on the vxlan's source-address learning")
	fs.StringVar(&f.netns, "overlay-netns", def.OverlayNetNS, "name of the overlay network namespace (in --netns-dir)")
	fs.StringVar(&f.bridge, "bridge", def.Bridge, "name of the bridge in the overlay namespace")
	fs.StringVar(&f.vxl, "vxlan", def.Vxlan, "name of the vxlan device")
	fs.BoolVar(&f.egress, "egress", true, "give containers a way out: node path, forwarding, masquerade (on by default)")
	fs.BoolVar(&f.noEgress, "no-egress", false, "leave egress off (containers reach only the overlay)")
	fs.StringVar(&f.egressDev, "egress-dev", "", "device traffic to the outside leaves by (default: the default route's device, else the underlay device)")
	fs.StringVar(&f.egressLink, "egress-link", "", "link subnet of the node path, /16../30 (default: the first free /30 of "+egress.DefaultLinkRange().String()+")")
	fs.StringVar(&f.egress6, "egress6", "", "IPv6 egress of a dual-stack overlay: masquerade (to the node's IPv6 address), route (the containers' own addresses, for a network that routes the overlay's IPv6 prefix to its nodes) or none (default masquerade)")
	fs.BoolVar(&f.noHostAccept, "no-host-accept", false, "on a host whose forward policy is drop, refuse instead of adding the two accept rules for the overlay subnet")
	fs.BoolVar(&f.noVTEPFilter, "no-vtep-filter", false, "no VTEP allowlist: VXLAN from any host reaching the port is accepted (exposes every container to injected frames)")
	fs.BoolVar(&f.noAntispoof, "no-antispoof", false, "no per-port anti-spoofing: containers may forge MAC, IP and ARP (exposes containers to each other)")
	fs.BoolVar(&f.encrypt, "encrypt", false, fmt.Sprintf("carry the overlay between nodes inside WireGuard (every node must agree; MTU default then %d)", overlay.DefaultEncryptedMTU))
	fs.StringVar(&f.tunnelSubnet, "tunnel-subnet", overlay.DefaultTunnelSubnet().String(), "with --encrypt: subnet of the nodes' tunnel addresses (their VTEPs), the same on every node")
	fs.Uint64Var(&f.wgPort, "wg-port", overlay.DefaultWireGuardPort, "with --encrypt: this node's WireGuard UDP port")
	fs.StringVar(&f.wgDevice, "wg-device", "", "with --encrypt: name of the WireGuard device (default: owg + 8 hex digits of --state-dir hashed)")
	fs.StringVar(&f.wgProvider, "wg-provider", "", "with --encrypt: kernel or userspace (default: the kernel's WireGuard where it has one, else userspace)")
}

// config turns the flags into a validated overlay.Config.
func (f *createFlags) config() (overlay.Config, error) {
	cfg := overlay.Config{Learning: f.learning, Dev: f.dev, OverlayNetNS: f.netns, Bridge: f.bridge, Vxlan: f.vxl,
		NoVTEPFilter: f.noVTEPFilter, NoAntispoof: f.noAntispoof}
	var errs []error
	switch {
	case f.vni == 0 || f.vni > overlay.MaxVNI:
		errs = append(errs, fmt.Errorf("--vni %d: out of range 1..%d", f.vni, overlay.MaxVNI))
	default:
		cfg.VNI = uint32(f.vni)
	}
	switch {
	case f.port == 0 || f.port > 65535:
		errs = append(errs, fmt.Errorf("--port %d: out of range 1..65535", f.port))
	default:
		cfg.Port = uint16(f.port)
	}
	switch {
	case f.mtu == 0: // chosen by create for the underlay's family
	case f.mtu < overlay.MinMTU || f.mtu > 65535-overlay.VXLANOverhead:
		errs = append(errs, fmt.Errorf("--mtu %d: out of range %d..%d (and at most the underlay MTU - %d, or - %d on an IPv6 underlay)",
			f.mtu, overlay.MinMTU, 65535-overlay.VXLANOverhead, overlay.VXLANOverhead, overlay.VXLANOverhead6))
	default:
		cfg.MTU = uint32(f.mtu)
	}
	if err := f.gatewayConfig(&cfg); err != nil {
		errs = append(errs, err)
	}
	if f.local != "" {
		a, err := netip.ParseAddr(f.local)
		if err != nil {
			errs = append(errs, fmt.Errorf("--local %q: not an IP address", f.local))
		}
		cfg.Local = a
	}
	if f.local != "" && f.dev != "" {
		errs = append(errs, errors.New("--local and --dev are exclusive: give one"))
	}
	if err := f.egressConfig(&cfg); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, f.encryptConfig(&cfg)...)
	if len(errs) > 0 {
		return cfg, fmt.Errorf("%w: %w", errUsage, errors.Join(errs...))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", errUsage, err)
	}
	return cfg, nil
}

// egressConfig sets cfg's egress from --egress, --no-egress, --egress-dev,
// --egress-link, --no-host-accept and --egress6 (cfg's gateways already
// set).
func (f *createFlags) egressConfig(cfg *overlay.Config) error {
	if !f.egress || f.noEgress {
		if f.egressDev != "" || f.egressLink != "" || f.noHostAccept || f.egress6 != "" {
			return errors.New("--egress-dev, --egress-link, --no-host-accept and --egress6 need egress (drop --no-egress)")
		}
		return nil
	}
	var errs []error
	e := &egress.Config{Dev: f.egressDev, NoHostAccept: f.noHostAccept}
	if f.egressLink != "" {
		p, err := netip.ParsePrefix(f.egressLink)
		if err != nil {
			errs = append(errs, fmt.Errorf("--egress-link %q: want an IPv4 prefix, e.g. 169.254.100.0/30", f.egressLink))
		}
		e.LinkSubnet = p
	}
	if f.egress6 != "" {
		m, err := egress.ParseMode6(f.egress6)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--egress6 %q: want masquerade, route or none", f.egress6))
		case !cfg.DualStack():
			errs = append(errs, fmt.Errorf("--egress6 %s needs an IPv6 --gateway (the overlay is IPv4 only)", f.egress6))
		}
		e.Mode6 = m
	}
	cfg.Egress = e
	return errors.Join(errs...)
}

// gatewayConfig sets cfg's gateways from --gateway (once per family; the
// default IPv4 one when none is given) and --block-bits6.
func (f *createFlags) gatewayConfig(cfg *overlay.Config) error {
	vals := f.gateways
	if len(vals) == 0 {
		vals = listFlag{overlay.DefaultConfig().Gateway.String()}
	}
	pf, err := splitFamilies("gateway", vals, false, "198.51.100.1/24 or 2001:db8:42::1/64")
	if err != nil {
		return err
	}
	if pf.v6.IsValid() && !pf.v4.IsValid() {
		return fmt.Errorf("%w: --gateway %s alone: IPv6-only overlays are not supported (egress, the node path and the containers' derived MACs need IPv4): "+
			"add an IPv4 --gateway, e.g. --gateway 198.51.100.1/24 --gateway %s", errUsage, pf.v6, pf.v6)
	}
	if f.blockBits6 != 0 && !pf.v6.IsValid() {
		return fmt.Errorf("%w: --block-bits6 %d needs an IPv6 --gateway", errUsage, f.blockBits6)
	}
	cfg.Gateway, cfg.Gateway6, cfg.BlockBits6 = pf.v4, pf.v6, f.blockBits6
	return nil
}

// encryptStore refuses an encrypted overlay on a kube: store: create (and
// run --create) see the Kubernetes store as the node's recorded view
// (package kubenode), where no tunnel address can be claimed, and a
// userspace WireGuard process started in the DaemonSet's pod would go
// with its container, cutting traffic at every restart.
func encryptStore(store string, cfg *overlay.Config) error {
	if cfg == nil || cfg.Encrypt == nil || !strings.HasPrefix(store, "kube:") {
		return nil
	}
	return fmt.Errorf("%w: --encrypt with --store %s: an encrypted overlay is not supported on the Kubernetes store (kube:) yet; use dir: or etcd://", errUsage, registry.RedactURL(store))
}

// encryptConfig sets cfg.Encrypt from the flags (nil without --encrypt);
// create then chooses the MTU both layers leave when --mtu is not given.
func (f *createFlags) encryptConfig(cfg *overlay.Config) []error {
	if !f.encrypt {
		if f.wgDevice != "" || f.wgProvider != "" {
			return []error{errors.New("--wg-device and --wg-provider need --encrypt")}
		}
		return nil
	}
	var errs []error
	e := &overlay.EncryptConfig{Device: f.wgDevice}
	t, err := netip.ParsePrefix(f.tunnelSubnet)
	if err != nil {
		errs = append(errs, fmt.Errorf("--tunnel-subnet %q: want a prefix, e.g. %s", f.tunnelSubnet, overlay.DefaultTunnelSubnet()))
	}
	e.Tunnel = t
	if f.wgPort == 0 || f.wgPort > 65535 {
		errs = append(errs, fmt.Errorf("--wg-port %d: out of range 1..65535", f.wgPort))
	} else {
		e.Port = uint16(f.wgPort)
	}
	if f.wgProvider != "" {
		if err := e.Provider.UnmarshalText([]byte(f.wgProvider)); err != nil {
			errs = append(errs, fmt.Errorf("--wg-provider %q: want kernel or userspace", f.wgProvider))
		}
	}
	cfg.Encrypt = e
	return errs
}

func runCreate(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var f createFlags
	f.bind(fs)
	setUsage(fs, createSynopsis, createHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if err := encryptStore(e.global.store, &cfg); err != nil {
		return err
	}
	// The store records the overlay's network (VNI, port, MTU, gateway):
	// the first create publishes it, every other node must agree with it.
	n, done, err := e.openNode(ctx, &registry.Options{VNI: cfg.VNI})
	if err != nil {
		return err
	}
	defer done()
	ov, err := n.Create(ctx, cfg)
	if err != nil {
		return err
	}
	printOverlay(e.stdout, ov)
	return nil
}

// printOverlay writes a short human summary of ov.
func printOverlay(w io.Writer, ov *overlay.Overlay) {
	c := ov.Config
	gws := c.Gateway.String()
	if c.DualStack() {
		gws += " " + c.Gateway6.String()
	}
	fmt.Fprintf(w, "overlay ready in netns %s: bridge %s %s, vxlan %s VNI %d port %d MTU %d learning %v\n",
		c.OverlayNetNS, c.Bridge, gws, c.Vxlan, c.VNI, c.Port, c.MTU, c.Learning)
	if t := ov.Tunnel; t != nil {
		fmt.Fprintf(w, "encrypted: WireGuard device %s (%s), tunnel address %s, endpoint %s, public key %s, MTU %d\n",
			t.Device, t.Provider, t.Address, t.Endpoint, t.PublicKey, t.MTU)
		fmt.Fprintf(w, "VTEP %s (tunnel address); underlay %s (%s) on %s MTU %d\n", ov.VTEP, ov.UnderlayAddr, ov.VTEPSource, ov.UnderlayDev, ov.UnderlayMTU)
	} else {
		fmt.Fprintf(w, "VTEP %s (%s), underlay %s MTU %d\n", ov.VTEP, ov.VTEPSource, ov.UnderlayDev, ov.UnderlayMTU)
	}
	if c.Egress != nil {
		fmt.Fprintf(w, "egress on: node path, forwarding and masquerade (status shows them)\n")
	} else {
		fmt.Fprintf(w, "egress off\n")
	}
}
