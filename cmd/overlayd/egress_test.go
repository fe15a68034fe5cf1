package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
)

// TestEgressCLI: create turns egress on by default and status shows the
// node path, the forwarding it set and its rules (text and --json);
// restarting `overlayd run` and running create again change no rule; reset
// leaves the ruleset byte-identical; --no-egress leaves it off; bad egress
// flags are usage errors that change nothing.
func TestEgressCLI(t *testing.T) {
	nstest.RequireTools(t, "nft")
	n := newUnderlayNode(t, "eg")
	nft := func() string { return nstest.Run(t, n.name, "nft", "list", "ruleset") }
	before := nft()
	snap := n.snapshot()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-egress", "--egress-dev", "u0"}, "need egress (drop --no-egress)"},
		{[]string{"--egress-link", "169.254.1.0"}, `--egress-link "169.254.1.0": want an IPv4 prefix`},
		{[]string{"--egress-link", "192.0.2.0/30"}, "egress: link subnet 192.0.2.0/30 collides with address 192.0.2.2/24 of u0"},
		{[]string{"--egress-dev", "nope0"}, `egress device "nope0" does not exist`},
	} {
		n.expectFailure(t, snap, append([]string{"create", "--local", "192.0.2.2"}, c.args...), c.want)
	}
	if got := nft(); got != before {
		t.Fatalf("refused creates changed the ruleset:\n%s", got)
	}

	out := n.ok("create", "--local", "192.0.2.2")
	if !strings.Contains(out, "egress on") {
		t.Errorf("create output: %s", out)
	}
	text := n.ok("status")
	for _, want := range []string{
		"EGRESS  node path overlay0 (169.254.100.1) <-> egress0 (169.254.100.2) on 169.254.100.0/30, out by u0",
		"198.51.100.0/24 via 169.254.100.2 dev overlay0 src 192.0.2.2",
		"default via 169.254.100.1 dev egress0",
		"overlaynet-egress masquerade",
		"yes (reset puts back 0)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	var st overlay.Status
	if err := json.Unmarshal([]byte(n.ok("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Egress == nil || len(st.Egress.Forwarding) != 4 || len(st.Egress.Rules) != 1 || len(st.Problems) != 0 {
		t.Fatalf("status --json egress %+v, problems %q", st.Egress, st.Problems)
	}
	handle := st.Egress.Rules[0].Handle

	n.startDaemon().stop(t) // the first run adds the VTEP allowlist (table inet overlaynet-guard)
	mid := nft()
	for range 2 {
		d := n.startDaemon()
		d.stop(t)
	}
	n.ok("create", "--local", "192.0.2.2")
	if got := nft(); got != mid {
		t.Errorf("restarting run and a second create changed the ruleset:\n%s\n---\n%s", mid, got)
	}
	if err := json.Unmarshal([]byte(n.ok("status", "--json")), &st); err != nil || st.Egress.Rules[0].Handle != handle {
		t.Errorf("rule handle %d -> %+v (%v)", handle, st.Egress, err)
	}
	n.expectFailure(t, n.snapshot(), []string{"create", "--local", "192.0.2.2", "--no-egress"}, "state egress: want false, have true")

	n.ok("reset")
	if got := nft(); got != before {
		t.Errorf("ruleset after reset:\n%s\nbefore:\n%s", got, before)
	}
	n.ok("create", "--local", "192.0.2.2", "--no-egress")
	if text := n.ok("status"); !strings.Contains(text, "EGRESS  off") {
		t.Errorf("status with --no-egress:\n%s", text)
	}
	if got := nft(); got != before {
		t.Errorf("--no-egress changed the ruleset:\n%s", got)
	}
}

// TestEgressIPv6CLI: on a dual-stack overlay create gives the node path
// IPv6 (NAT66 by default) and status shows it: the IPv6 line, the IPv6
// routes, each device's force_forwarding, the NAT66 rule (text and
// --json), and a container's port guarded for both families; --egress6
// route and none are taken; --egress6 on an IPv4 overlay, an unknown mode
// or with --no-egress is a usage error that changes nothing; reset leaves
// the ruleset and every IPv6 setting byte-identical.
func TestEgressIPv6CLI(t *testing.T) {
	nstest.RequireTools(t, "nft")
	n := newUnderlayNode(t, "e6")
	nstest.Run(t, n.name, "ip", "addr", "add", "2001:db8::2/64", "dev", "u0", "nodad")
	nft := func() string { return nstest.Run(t, n.name, "nft", "list", "ruleset") }
	conf := func() string {
		return nstest.Run(t, n.name, "sh", "-c", "grep -s . /proc/sys/net/ipv6/conf/*/* /proc/sys/net/ipv4/conf/*/forwarding || true")
	}
	before, confBefore, snap := nft(), conf(), n.snapshot()
	dual := []string{"create", "--local", "192.0.2.2", "--gateway", "198.51.100.1/24", "--gateway", "2001:db8:42::1/64"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--local", "192.0.2.2", "--egress6", "route"}, "--egress6 route needs an IPv6 --gateway"},
		{append(slices.Clone(dual), "--egress6", "nat"), `--egress6 "nat": want masquerade, route or none`},
		{append(slices.Clone(dual), "--no-egress", "--egress6", "none"), "need egress (drop --no-egress)"},
	} {
		n.expectFailure(t, snap, c.args, c.want)
	}
	n.ok(dual...)
	n.ok("attach", "c1")
	text := n.ok("status")
	words := strings.Join(strings.Fields(text), " ") // the columns' widths aside
	for _, want := range []string{
		"EGRESS IPv6 masquerade: node path overlay0 (fe80::1) <-> egress0 (fe80::2), out by u0, node source 2001:db8::2",
		"2001:db8:42::/64 via fe80::2 dev overlay0 src 2001:db8::2 (host) present",
		"default via fe80::1 dev egress0 overns present",
		"u0 (host) ipv6 force_forwarding 1 yes (reset puts back 0)",
		"br0 overns ipv6 force_forwarding 1 yes (reset puts back 0)",
		"overlaynet-egress masquerade ipv6 inet overlaynet-egress postrouting",
		"ve-c1 16 IPv4, IPv6 src_mac 0, arp_sender 0, src_ip 0, ethertype 0, nd_target 0, nd_lladdr 0, router_advert 0, redirect 0, dhcp6_server 0",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	var st overlay.Status
	if err := json.Unmarshal([]byte(n.ok("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if e := st.Egress; e == nil || e.IPv6 == nil || e.IPv6.Mode != "masquerade" || len(e.Forwarding) != 8 || len(e.Rules) != 2 || len(st.Problems) != 0 ||
		len(st.Guard.Ports) != 1 || !st.Guard.Ports[0].IPv6 {
		t.Fatalf("status --json egress %+v, guard %+v, problems %q", st.Egress, st.Guard, st.Problems)
	}
	n.expectFailure(t, n.snapshot(), append(slices.Clone(dual), "--egress6", "route"), "state egress IPv6: want route, have masquerade")
	n.ok("detach", "c1")
	n.ok("reset")
	if got := nft(); got != before {
		t.Errorf("ruleset after reset:\n%s\nbefore:\n%s", got, before)
	}
	if got := conf(); got != confBefore {
		t.Errorf("settings after reset:\n%s\nbefore:\n%s", got, confBefore)
	}
	for _, mode := range []string{"route", "none"} {
		n.ok(append(slices.Clone(dual), "--egress6", mode)...)
		text := n.ok("status")
		if strings.Contains(text, "EGRESS IPv6") != (mode == "route") || strings.Contains(text, "masquerade ipv6") {
			t.Errorf("status with --egress6 %s:\n%s", mode, text)
		}
		n.ok("reset")
	}
	if got := nft(); got != before {
		t.Errorf("ruleset after the resets:\n%s", got)
	}
}
