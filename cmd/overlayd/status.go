package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/guard"
)

func init() {
	register(&command{
		name:     "status",
		summary:  "show the overlay, its endpoints, the vxlan's neighbour and FDB entries, the VTEP allowlist and anti-spoofing rules",
		synopsis: statusSynopsis,
		run:      runStatus,
	})
}

const statusSynopsis = "status [--json]"

const statusHelp = `
Reads this node's overlay back from the kernel: the devices with their VNI,
port and flags, the VTEP and how it was chosen, each endpoint (container
netns, veth pair with the peer ifindex the host end reports, IP, MAC), and the
vxlan's neighbour (proxy ARP) and FDB entries with their NUD states, and the
attaches and detaches that did not end (HALF-MADE: under way, or killed
half-way, which the next attach or detach of the name, CNI DEL or GC, or
'overlayd run' takes back). What is missing or differs from what create and
attach recorded is listed under PROBLEMS, as are entries and allowlisted
addresses that no record run accepts would give (a gateway, broadcast or
loopback address, a multicast MAC...); the exit status is 0 unless the
overlay itself (its namespace, bridge or vxlan) is gone.`

func runStatus(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the status as one JSON document")
	setUsage(fs, statusSynopsis, statusHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	n, done, err := e.node(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	st, err := n.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(st)
	} else {
		err = printStatus(e.stdout, st)
	}
	if err == nil && st.Gone {
		err = fmt.Errorf("the overlay recorded in %s is not in the kernel (see PROBLEMS): run create again, or reset", e.global.stateDir)
	}
	return err
}

// printStatus writes st as human-readable tables.
func printStatus(out io.Writer, st *overlay.Status) error {
	c, ov := st.Overlay.Config, st.Overlay
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "OVERLAY\tnetns %s, VNI %d, port %d, MTU %d, gateway %s, learning %s\n",
		c.OverlayNetNS, c.VNI, c.Port, c.MTU, gateways(c), onOff(c.Learning))
	fmt.Fprintf(w, "VTEP\t%s, chosen by %s; underlay %s MTU %d\n", ov.VTEP, ov.VTEPSource, ov.UnderlayDev, ov.UnderlayMTU)
	fmt.Fprintf(w, "CREATED\t%s\n", created(st.Created))

	fmt.Fprintf(w, "\nDEVICE\tKIND\tIFINDEX\tMTU\tSTATE\tMASTER\tMAC\tADDRESSES\tVXLAN\n")
	for _, d := range st.Devices {
		if d.Missing {
			fmt.Fprintf(w, "%s\t%s\t-\t-\tMISSING\t-\t-\t-\t-\n", d.Name, d.Kind)
			continue
		}
		vx := "-"
		if d.Kind == "vxlan" {
			vx = fmt.Sprintf("vni %d port %d local %s %s %s %s %s", d.VNI, d.Port, addrOr(d.Local, "(route)"),
				flagWord("proxy", d.Proxy), flagWord("l2miss", d.L2Miss), flagWord("l3miss", d.L3Miss), flagWord("learning", d.Learning))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Kind, d.Index, d.MTU, upDown(d.Up),
			dash(d.Master), d.MAC, prefixes(d.Addresses), vx)
	}

	fmt.Fprintf(w, "\nENDPOINT\tCONTAINER NETNS\tIFNAME\tIP\tMAC\tHOST VETH (IFINDEX)\tPEER IFINDEX\tHOST VETH SAYS PEER\tSTATE\tMASTER\n")
	if len(st.Endpoints) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, ep := range st.Endpoints {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s (%d)\t%d\t%d\thost %s, peer %s\t%s\n", ep.Name, cmp.Or(ep.NetNS, ep.Name), ep.IfName, endpointIPs(ep.Endpoint), ep.MAC,
			ep.HostIf, ep.HostIndex, ep.PeerIndex, ep.KernelPeerIndex, upDown(ep.HostUp), upDown(ep.PeerUp), dash(ep.HostMaster))
	}

	printHalfMade(w, st.HalfMade)

	fmt.Fprintf(w, "\nADDRESS BLOCK\tUSED\tSIZE\n")
	if len(st.Blocks) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, b := range st.Blocks {
		fmt.Fprintf(w, "%s\t%d\t%d\n", b.Block, b.Used, b.Size)
	}

	fmt.Fprintf(w, "\nNEIGHBOUR on %s\tMAC\tSTATE\n", c.Vxlan)
	if len(st.Neighbors) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, nb := range st.Neighbors {
		fmt.Fprintf(w, "%s\t%s\t%s\n", nb.IP, nb.MAC, nb.State)
	}

	fmt.Fprintf(w, "\nFDB on %s\tVTEP\tVNI\tPORT\tSTATE\tFLAGS\n", c.Vxlan)
	if len(st.FDB) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, f := range st.FDB {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", f.MAC, addrOr(f.VTEP, "-"), numOr(uint64(f.VNI), "(device's)"),
			numOr(uint64(f.Port), "(device's)"), f.State, dash(f.Flags))
	}
	printEgress(w, st.Egress)
	printTunnel(w, st)
	printGuard(w, st.Guard)
	if err := w.Flush(); err != nil {
		return err
	}

	var problems []string
	problems = append(problems, st.Problems...)
	for _, ep := range st.Endpoints {
		for _, p := range ep.Problems {
			problems = append(problems, ep.Name+": "+p)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(out, "\nPROBLEMS\n")
		for _, p := range problems {
			fmt.Fprintf(out, "  - %s\n", p)
		}
	}
	return nil
}

// printGuard writes the allowlist and each guarded port: its rules, the
// families they guard and its drops by reason.
func printGuard(w io.Writer, g overlay.GuardStatus) {
	fmt.Fprintf(w, "\nGUARD\tVTEP allowlist %s, anti-spoofing %s\n", onOff(g.VTEPFilter), onOff(g.Antispoof))
	switch {
	case !g.VTEPFilter:
	case !g.AllowlistInstalled:
		fmt.Fprintf(w, "ALLOWLIST\tnot installed ('overlayd run' installs it)\n")
	default:
		fmt.Fprintf(w, "ALLOWLIST\t%s (%d dropped)\n", addrList(g.Allowlist), g.VTEPDrops)
	}
	if len(g.Ports) > 0 {
		fmt.Fprintf(w, "\nGUARDED PORT\tRULES\tFAMILIES\tDROPS\n")
	}
	for _, p := range g.Ports {
		var drops []string
		for _, r := range guard.Reasons() {
			if v, ok := p.Drops[r]; ok {
				drops = append(drops, fmt.Sprintf("%s %d", r, v))
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.HostIf, p.Rules, portFamilies(p), strings.Join(drops, ", "))
	}
}

// portFamilies names the families p's rules guard ("IPv4, IPv6"; "-":
// none).
func portFamilies(p guard.PortRules) string {
	var fams []string
	if p.IPv4 {
		fams = append(fams, "IPv4")
	}
	if p.IPv6 {
		fams = append(fams, "IPv6")
	}
	return cmp.Or(strings.Join(fams, ", "), "-")
}

// printEgress writes the node path, the forwarding it set and its rules.
func printEgress(w io.Writer, e *egress.Status) {
	if e == nil {
		fmt.Fprintf(w, "\nEGRESS\toff\n")
		return
	}
	fmt.Fprintf(w, "\nEGRESS\tnode path %s (%s) <-> %s (%s) on %s, out by %s\n",
		e.HostIf, e.HostAddr.Addr(), e.OverlayIf, e.OverlayAddr.Addr(), e.Link, e.Dev)
	if x := e.IPv6; x != nil {
		src := "the kernel's choice"
		if x.Src.IsValid() {
			src = x.Src.String()
		}
		fmt.Fprintf(w, "EGRESS IPv6	%s: node path %s (%s) <-> %s (%s), out by %s, node source %s\n",
			x.Mode, e.HostIf, x.HostAddr.Addr(), e.OverlayIf, x.OverlayAddr.Addr(), x.Dev, src)
	}
	fmt.Fprintf(w, "\nROUTE\tNETNS\tSTATE\n")
	for _, r := range e.Routes {
		state := "present"
		if !r.Present {
			state = "MISSING"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Route, r.NetNS, state)
	}
	fmt.Fprintf(w, "\nFORWARDING on\tNETNS\tSETTING\tVALUE\tSET BY EGRESS\n")
	for _, f := range e.Forwarding {
		v := strconv.FormatInt(f.Value, 10)
		if f.Value < 0 {
			v = "MISSING"
		}
		by := "no (was on)"
		if f.SetByEgress {
			by = fmt.Sprintf("yes (reset puts back %d)", f.Was)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Dev, f.NetNS, f.Setting, v, by)
	}
	fmt.Fprintf(w, "\nRULE\tCHAIN\tHANDLE\tPACKETS\tBYTES\n")
	for _, r := range e.Rules {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", r.Tag, r.Chain, r.Handle, r.Packets, r.Bytes)
	}
}

func created(c overlay.Creation) string {
	var parts []string
	for _, p := range []struct {
		ok   bool
		what string
	}{{c.NetNS, "netns"}, {c.Bridge, "bridge"}, {c.Address, "gateway address"}, {c.Vxlan, "vxlan"}} {
		if p.ok {
			parts = append(parts, p.what)
		}
	}
	if len(parts) == 0 {
		return "nothing (all existed before create)"
	}
	return strings.Join(parts, ", ") + " (reset deletes these)"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func upDown(b bool) string {
	if b {
		return "up"
	}
	return "down"
}

func flagWord(name string, on bool) string {
	if on {
		return name
	}
	return "no" + name
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func addrOr(a netip.Addr, def string) string {
	if !a.IsValid() {
		return def
	}
	return a.String()
}

func numOr(v uint64, def string) string {
	if v == 0 {
		return def
	}
	return strconv.FormatUint(v, 10)
}

func prefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// addrList joins addresses with commas ("(none)" for none).
func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "(none)"
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return strings.Join(out, ", ")
}

// printHalfMade lists the operations that did not end, if any.
func printHalfMade(w io.Writer, hs []overlay.HalfMade) {
	if len(hs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nHALF-MADE\tOP\tIP\tPID\tSTARTED\tSTATE\tSTEPS (MADE)\n")
	for _, h := range hs {
		state := "killed half-way"
		if h.InProgress {
			state = "in progress"
		}
		ip := "-"
		if h.IP.IsValid() {
			ip = h.IP.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s (%s)\n", h.Name, h.Op, ip, h.PID, h.Started.Format(time.RFC3339),
			state, strings.Join(h.Steps, ","), strings.Join(h.Made, ","))
	}
}

// gateways is c's gateway, and its IPv6 one with its block size on a
// dual-stack overlay.
func gateways(c overlay.Config) string {
	if c.DualStack() {
		return fmt.Sprintf("%s and %s (IPv6 blocks /%d)", c.Gateway, c.Gateway6, c.EffectiveBlockBits6())
	}
	return c.Gateway.String()
}

// endpointIPs is the endpoint's addresses, space-separated.
func endpointIPs(e overlay.Endpoint) string {
	var b strings.Builder
	for i, p := range e.Addrs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.String())
	}
	return cmp.Or(b.String(), "-")
}

// printTunnel writes an encrypted overlay's WireGuard device: provider,
// key, each peer's endpoint, last handshake and bytes, what it rejected.
func printTunnel(w io.Writer, st *overlay.Status) {
	ts := st.Tunnel
	if ts == nil {
		fmt.Fprintf(w, "\nENCRYPTION\toff\n")
		return
	}
	state := "running"
	if !ts.Running {
		state = "NOT RUNNING"
	}
	pid := ""
	if ts.Pid != 0 {
		pid = fmt.Sprintf(" pid %d", ts.Pid)
	}
	fmt.Fprintf(w, "\nENCRYPTION\tWireGuard device %s, %s provider%s, %s; tunnel address %s, endpoint %s, port %d, MTU %d\n",
		ts.Device, ts.Provider, pid, state, ts.Address, ts.Endpoint, ts.ListenPort, ts.MTU)
	fmt.Fprintf(w, "PUBLIC KEY\t%s\n", ts.PublicKey)
	fmt.Fprintf(w, "REJECTED\thandshakes %d, sources %d\n", ts.Rejected.InvalidHandshakes, ts.Rejected.InvalidSource)
	g := st.Guard
	fmt.Fprintf(w, "WIREGUARD FROM\t%s (%d dropped); VXLAN from outside the tunnel: %d dropped\n",
		addrList(g.WireGuardPeers), g.WireGuardDrops, g.OutsideTunnelDrops)
	fmt.Fprintf(w, "\nPEER\tENDPOINT\tALLOWED IPS\tLAST HANDSHAKE\tRX BYTES\tTX BYTES\n")
	if len(ts.Peers) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, p := range ts.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = time.Since(p.LastHandshake).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\n", p.PublicKey, p.Endpoint, prefixes(p.AllowedIPs), hs, p.RxBytes, p.TxBytes)
	}
}
