package main

import (
	"encoding/json"
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
