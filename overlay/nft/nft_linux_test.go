package nft_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"golang.org/x/sys/unix"
)

// requireTools fails (CI) or skips without the binaries the tests read
// state back with.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, tools...)
}

// testNS returns a fresh namespace and an nft.Conn in it.
func testNS(t *testing.T) (string, *nft.Conn) {
	t.Helper()
	requireTools(t, "nft", "iptables-nft")
	ns, name := nstest.NetNS(t, "nft")
	c, err := nft.Dial(ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return name, c
}

// ruleset returns `nft list ruleset` in ns.
func ruleset(t *testing.T, ns string) string {
	t.Helper()
	return nstest.Run(t, ns, "nft", "list", "ruleset")
}

// jsonRuleset returns the objects of `nft -j list ruleset` in ns, each a
// map with one key ("table", "chain", "rule", "set", ...).
func jsonRuleset(t *testing.T, ns string) []map[string]map[string]any {
	t.Helper()
	out := nstest.Run(t, ns, "nft", "-j", "list", "ruleset")
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	return doc.Nftables
}

func objects(t *testing.T, ns, kind string) []map[string]any {
	var out []map[string]any
	for _, o := range jsonRuleset(t, ns) {
		if v, ok := o[kind]; ok {
			out = append(out, v)
		}
	}
	return out
}

var (
	table   = nft.Table{Family: nft.FamilyINet, Name: "overlaynet-test"}
	natPost = nft.Chain{Table: table, Name: "postrouting", Base: &nft.Base{
		Type: nft.ChainNAT, Hook: nft.HookPostrouting, Priority: nft.PrioritySrcNAT, Policy: nft.PolicyAccept}}
	subnet = netip.MustParsePrefix("198.51.100.0/24")
)

func masqRule(t *testing.T, tag string, p netip.Prefix) nft.Rule {
	t.Helper()
	src, err := nft.SrcPrefix(p, false)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := nft.DstPrefix(p, true)
	if err != nil {
		t.Fatal(err)
	}
	return nft.Rule{Tag: tag, Exprs: nft.Concat(nft.IPv4(), src, dst, nft.OIFName("ovn0", true), nft.One(nft.Counter(), nft.Masquerade()))}
}

func TestTableChainRule(t *testing.T) {
	ns, c := testNS(t)
	b := c.Begin()
	b.AddTable(table)
	b.AddChain(natPost)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	added, err := c.EnsureRules(natPost, []nft.Rule{masqRule(t, "overlaynet egress masquerade", subnet)})
	if err != nil || added != 1 {
		t.Fatalf("EnsureRules: added %d, %v", added, err)
	}
	text := ruleset(t, ns)
	for _, want := range []string{
		"table inet overlaynet-test {",
		"chain postrouting {",
		"type nat hook postrouting priority srcnat; policy accept;",
		`ip saddr 198.51.100.0/24 ip daddr != 198.51.100.0/24 oifname != "ovn0" counter packets 0 bytes 0 masquerade comment "overlaynet egress masquerade"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, text)
		}
	}
	chains := objects(t, ns, "chain")
	if len(chains) != 1 || chains[0]["hook"] != "postrouting" || chains[0]["type"] != "nat" || chains[0]["prio"] != 100.0 {
		t.Errorf("chains read back: %v", chains)
	}
	got, err := c.Chain(table, "postrouting")
	if err != nil || got == nil || got.Base == nil || *got.Base != *natPost.Base {
		t.Fatalf("Chain: %+v, %v", got, err)
	}

	// Idempotent: the same rule again changes nothing (same handle).
	before, err := c.Rules(natPost)
	if err != nil || len(before) != 1 {
		t.Fatalf("Rules: %v, %v", before, err)
	}
	b = c.Begin()
	b.AddTable(table)
	b.AddChain(natPost)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	added, err = c.EnsureRules(natPost, []nft.Rule{masqRule(t, "overlaynet egress masquerade", subnet)})
	if err != nil || added != 0 {
		t.Fatalf("second EnsureRules: added %d, %v", added, err)
	}
	after, _ := c.Rules(natPost)
	if len(after) != 1 || after[0].Handle != before[0].Handle {
		t.Fatalf("rule changed by a second EnsureRules: %+v -> %+v", before, after)
	}
	// Other expressions under the same tag replace the rule.
	added, err = c.EnsureRules(natPost, []nft.Rule{masqRule(t, "overlaynet egress masquerade", netip.MustParsePrefix("10.20.0.0/16"))})
	if err != nil || added != 1 {
		t.Fatalf("replacing EnsureRules: added %d, %v", added, err)
	}
	after, _ = c.Rules(natPost)
	if len(after) != 1 || after[0].Handle == before[0].Handle || after[0].Tag != "overlaynet egress masquerade" {
		t.Fatalf("rule not replaced: %+v -> %+v", before, after)
	}
	if text := ruleset(t, ns); !strings.Contains(text, "ip saddr 10.20.0.0/16") || strings.Contains(text, "198.51.100.0/24") {
		t.Errorf("replaced rule:\n%s", text)
	}

	if err := c.DeleteTable(table); err != nil {
		t.Fatal(err)
	}
	if text := ruleset(t, ns); text != "" {
		t.Errorf("ruleset after DeleteTable:\n%s", text)
	}
	if err := c.DeleteTable(table); err != nil {
		t.Errorf("DeleteTable of a missing table: %v", err)
	}
}

// TestDeleteTableRefusesOthers: a table overlaynet does not own is never
// deleted.
func TestDeleteTableRefusesOthers(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "nft", "add", "table", "inet", "filter")
	before := ruleset(t, ns)
	foreign := nft.Table{Family: nft.FamilyINet, Name: "filter"}
	if err := c.DeleteTable(foreign); err == nil || !strings.Contains(err.Error(), "not overlaynet's") {
		t.Errorf("DeleteTable(inet filter): %v", err)
	}
	b := c.Begin()
	b.DeleteTable(foreign)
	if err := b.Commit(); err == nil {
		t.Error("a batch deleting inet filter was committed")
	}
	if after := ruleset(t, ns); after != before {
		t.Errorf("ruleset changed:\n%s", after)
	}
	if got := nft.FeatureTable(nft.FamilyINet, "egress"); got.Name != "overlaynet-egress" || !got.Owned() || got.String() != "inet overlaynet-egress" {
		t.Errorf("FeatureTable: %+v", got)
	}
}

// TestOtherTablesUntouched: a ruleset of other tables (nft's and
// iptables-nft's) lists byte-identical before overlaynet's table is made
// and after it is deleted.
func TestOtherTablesUntouched(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "nft", "add table inet filter; add chain inet filter forward { type filter hook forward priority 0; policy accept; }; add rule inet filter forward ct state established accept")
	nstest.Run(t, ns, "iptables-nft", "-t", "nat", "-A", "POSTROUTING", "-s", "10.9.0.0/16", "-j", "MASQUERADE")
	before := ruleset(t, ns)

	b := c.Begin()
	b.AddTable(table)
	b.AddChain(natPost)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnsureRules(natPost, []nft.Rule{masqRule(t, "masq", subnet)}); err != nil {
		t.Fatal(err)
	}
	if mid := ruleset(t, ns); !strings.Contains(mid, "table inet overlaynet-test") || !strings.Contains(mid, "ct state established accept") {
		t.Fatalf("ruleset with both:\n%s", mid)
	}
	if err := c.DeleteTable(table); err != nil {
		t.Fatal(err)
	}
	if after := ruleset(t, ns); after != before {
		t.Errorf("ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestBatchAtomic: a batch with one bad change applies nothing.
func TestBatchAtomic(t *testing.T) {
	ns, c := testNS(t)
	b := c.Begin()
	b.AddTable(table)
	b.AddChain(natPost)
	b.AddRule(natPost, nft.Rule{Tag: "bad", Exprs: []expr.Any{nft.Jump("no-such-chain")}})
	err := b.Commit()
	if err == nil {
		t.Fatal("commit of a jump to a missing chain succeeded")
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v does not wrap ENOENT", err)
	}
	if text := ruleset(t, ns); text != "" {
		t.Errorf("a failed batch left:\n%s", text)
	}
	if ok, err := c.TableExists(table); ok || err != nil {
		t.Errorf("TableExists after failed batch: %v, %v", ok, err)
	}
}

func TestBadInput(t *testing.T) {
	_, c := testNS(t)
	b := c.Begin()
	b.AddTable(table)
	b.AddChain(natPost)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	r := masqRule(t, "x", subnet)
	for _, tc := range []struct {
		name  string
		rules []nft.Rule
		want  string
	}{
		{"no tag", []nft.Rule{{Exprs: r.Exprs}}, "no tag"},
		{"duplicate tags", []nft.Rule{r, r}, `two rules tagged "x"`},
		{"long tag", []nft.Rule{{Tag: strings.Repeat("a", nft.MaxTagLen+1), Exprs: r.Exprs}}, "longer than"},
		{"NUL in tag", []nft.Rule{{Tag: "a\x00b", Exprs: r.Exprs}}, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.EnsureRules(natPost, tc.rules)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if rules, _ := c.Rules(natPost); len(rules) != 0 {
				t.Errorf("rules added: %+v", rules)
			}
		})
	}
	if _, err := nft.SrcPrefix(netip.MustParsePrefix("2001:db8::/32"), false); err == nil {
		t.Error("SrcPrefix accepted an IPv6 prefix")
	}
	if _, err := nft.SrcPrefix(netip.MustParsePrefix("0.0.0.0/0"), false); err == nil {
		t.Error("SrcPrefix accepted /0")
	}
	s := nft.Set{Table: table, Name: "s", Key: nft.KeyIPv4}
	b = c.Begin()
	b.AddSet(s, [][]byte{{1, 2, 3}})
	if err := b.Commit(); err == nil || !strings.Contains(err.Error(), "key of 3 bytes, want 4") {
		t.Errorf("3-byte key in an ipv4_addr set: %v", err)
	}
}

// TestSetsInPlace: a named set's elements change in place under a rule
// that refers to it, and counters (the rule's and the elements') read back.
func TestSetsInPlace(t *testing.T) {
	ns, c := testNS(t)
	filt := nft.Table{Family: nft.FamilyINet, Name: "overlaynet-test"}
	out := nft.Chain{Table: filt, Name: "output", Base: &nft.Base{Type: nft.ChainFilter, Hook: nft.HookOutput, Priority: nft.PriorityFilter, Policy: nft.PolicyAccept}}
	allowed := nft.Set{Table: filt, Name: "allowed", Key: nft.KeyIPv4, Counter: true}
	a2, a3, a4 := netip.MustParseAddr("127.0.1.2"), netip.MustParseAddr("127.0.1.3"), netip.MustParseAddr("127.0.1.4")
	b := c.Begin()
	b.AddTable(filt)
	b.AddChain(out)
	b.AddSet(allowed, [][]byte{nft.AddrKey(a2)})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	dst, _ := nft.DstPrefix(netip.MustParsePrefix("127.0.1.0/24"), false)
	rules := []nft.Rule{
		{Tag: "allowed", Exprs: nft.Concat(nft.IPv4(), nft.One(nft.LoadIPv4Dst(), nft.InSet(allowed, false), nft.Counter(), nft.Accept()))},
		{Tag: "refused", Exprs: nft.Concat(nft.IPv4(), dst, nft.One(nft.Counter(), nft.Drop()))},
	}
	if _, err := c.EnsureRules(out, rules); err != nil {
		t.Fatal(err)
	}
	if text := ruleset(t, ns); !strings.Contains(text, "ip daddr @allowed counter") || !strings.Contains(text, "elements = { 127.0.1.2 counter packets 0 bytes 0 }") {
		t.Fatalf("ruleset:\n%s", text)
	}
	handles := func() []uint64 {
		rs, err := c.Rules(out)
		if err != nil {
			t.Fatal(err)
		}
		var h []uint64
		for _, r := range rs {
			h = append(h, r.Handle)
		}
		return h
	}
	h0 := handles()

	ping := func(a netip.Addr) bool {
		_, err := nstest.Output(ns, "ping", "-c", "1", "-W", "1", a.String())
		return err == nil
	}
	if !ping(a2) || ping(a3) {
		t.Fatal("before the change: 127.0.1.2 should answer, 127.0.1.3 not")
	}
	b = c.Begin()
	b.AddElements(allowed, [][]byte{nft.AddrKey(a3), nft.AddrKey(a4)})
	b.DeleteElements(allowed, [][]byte{nft.AddrKey(a2)})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if !ping(a3) || ping(a2) {
		t.Fatal("after the change: 127.0.1.3 should answer, 127.0.1.2 not")
	}
	if h := handles(); len(h) != 2 || h[0] != h0[0] || h[1] != h0[1] {
		t.Errorf("rules changed with the set: %v -> %v", h0, h)
	}
	els, err := c.Elements(allowed)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]nft.Element{}
	for _, e := range els {
		a, _ := netip.AddrFromSlice(e.Key)
		byKey[a.String()] = e
	}
	if len(byKey) != 2 || byKey["127.0.1.3"].Packets == 0 || byKey["127.0.1.4"].Packets != 0 {
		t.Errorf("elements: %+v", els)
	}
	rs, _ := c.Tagged(out, nft.TagIs("refused"))
	if len(rs) != 1 || rs[0].Packets != 2 || rs[0].Bytes == 0 { // 127.0.1.3, then 127.0.1.2
		t.Errorf("refused rule counter: %+v", rs)
	}
	rs, _ = c.Tagged(out, nft.TagIs("allowed"))
	if len(rs) != 1 || rs[0].Packets == 0 {
		t.Errorf("allowed rule counter: %+v", rs)
	}
	// A key that is not in the set fails the whole batch.
	b = c.Begin()
	b.AddElements(allowed, [][]byte{nft.AddrKey(netip.MustParseAddr("127.0.1.9"))})
	b.DeleteElements(allowed, [][]byte{nft.AddrKey(a2)})
	if err := b.Commit(); err == nil {
		t.Error("deleting a missing element succeeded")
	}
	if els, _ := c.Elements(allowed); len(els) != 2 {
		t.Errorf("failed batch changed the set: %+v", els)
	}
}

// TestDeleteTagged removes one port's rules and nothing else.
func TestDeleteTagged(t *testing.T) {
	ns, c := testNS(t)
	br := nft.Table{Family: nft.FamilyBridge, Name: "overlaynet-test"}
	fwd := nft.Chain{Table: br, Name: "forward", Base: &nft.Base{Type: nft.ChainFilter, Hook: nft.HookForward, Priority: nft.PriorityFilter, Policy: nft.PolicyAccept}}
	b := c.Begin()
	b.AddTable(br)
	b.AddChain(fwd)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	port := func(name string, mac byte) []nft.Rule {
		return []nft.Rule{
			{Tag: "port " + name + " mac", Exprs: nft.Concat(nft.IIFName(name, false), nft.One(nft.LoadEtherSrc(), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{2, 0x42, 0, 0, 0, mac}}, nft.Counter(), nft.Drop()))},
			{Tag: "port " + name + " ok", Exprs: nft.Concat(nft.IIFName(name, false), nft.One(nft.Counter()))},
		}
	}
	for i, p := range []string{"ve-a", "ve-b"} {
		if _, err := c.EnsureRules(fwd, port(p, byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	nstest.Run(t, ns, "nft", "add", "rule", "bridge", "overlaynet-test", "forward", "counter")
	n, err := c.DeleteTagged(fwd, nft.TagPrefix("port ve-a "))
	if err != nil || n != 2 {
		t.Fatalf("DeleteTagged: %d, %v", n, err)
	}
	text := ruleset(t, ns)
	if strings.Contains(text, "ve-a") || strings.Count(text, `iifname "ve-b"`) != 2 || !strings.Contains(text, "ether saddr != 02:42:00:00:00:02") {
		t.Errorf("after deleting ve-a's rules:\n%s", text)
	}
	if rs, _ := c.Rules(fwd); len(rs) != 3 || rs[2].Tag != "" {
		t.Errorf("rules left: %+v", rs)
	}
	if n, err := c.DeleteTagged(nft.Chain{Table: nft.Table{Family: nft.FamilyIPv4, Name: "nope"}, Name: "x"}, nft.TagPrefix("")); n != 0 || err != nil {
		t.Errorf("DeleteTagged in a missing table: %d, %v", n, err)
	}
}

// TestNetdevChain: a netdev ingress chain on a device.
func TestNetdevChain(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "ip", "link", "add", "nd0", "type", "veth", "peer", "name", "nd1")
	nd := nft.Table{Family: nft.FamilyNetdev, Name: "overlaynet-test"}
	in := nft.Chain{Table: nd, Name: "ingress-nd0", Base: &nft.Base{Type: nft.ChainFilter, Hook: nft.HookIngress, Priority: nft.PriorityFilter, Policy: nft.PolicyAccept, Device: "nd0"}}
	b := c.Begin()
	b.AddTable(nd)
	b.AddChain(in)
	b.AddRule(in, nft.Rule{Tag: "count", Exprs: nft.One(nft.Counter())})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if text := ruleset(t, ns); !strings.Contains(text, `type filter hook ingress device "nd0" priority filter; policy accept;`) || !strings.Contains(text, `counter packets 0 bytes 0 comment "count"`) {
		t.Errorf("netdev chain:\n%s", text)
	}
	got, err := c.Chain(nd, "ingress-nd0")
	if err != nil || got == nil || got.Base == nil || got.Base.Hook != nft.HookIngress {
		t.Errorf("Chain: %#v (base %#v), %v", got, got.Base, err)
	}
}

// TestIptablesCompatible: accept rules added to iptables-nft's filter
// FORWARD chain are encoded as iptables-nft encodes `-s P -j ACCEPT`, so
// iptables lists them, and removing them leaves the chain as it was.
func TestIptablesCompatible(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "iptables-nft", "-P", "FORWARD", "DROP")
	nstest.Run(t, ns, "iptables-nft", "-A", "FORWARD", "-i", "eth9", "-j", "ACCEPT")
	before := ruleset(t, ns)
	ipt := nft.Table{Family: nft.FamilyIPv4, Name: "filter"}
	fwd := nft.Chain{Table: ipt, Name: "FORWARD"}
	for _, p := range []string{"198.51.100.0/24", "10.16.0.0/12", "10.1.2.3/32"} {
		pfx := netip.MustParsePrefix(p)
		src, _ := nft.SrcPrefix(pfx, false)
		dst, _ := nft.DstPrefix(pfx, false)
		if _, err := c.EnsureRules(fwd, []nft.Rule{
			{Tag: "overlaynet src " + p, Exprs: nft.Concat(src, nft.One(nft.Counter(), nft.Accept()))},
			{Tag: "overlaynet dst " + p, Exprs: nft.Concat(dst, nft.One(nft.Counter(), nft.Accept()))},
		}); err != nil {
			t.Fatal(err)
		}
		// iptables-nft's own encoding of the same rule has the same
		// expressions.
		nstest.Run(t, ns, "iptables-nft", "-A", "FORWARD", "-s", p, "-j", "ACCEPT")
		rs, err := c.Rules(fwd)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs := rs[len(rs)-3], rs[len(rs)-1]
		if !sameExprs(t, ours.Exprs, theirs.Exprs) {
			t.Errorf("%s: ours %#v, iptables-nft's %#v", p, ours.Exprs, theirs.Exprs)
		}
		nstest.Run(t, ns, "iptables-nft", "-D", "FORWARD", "-s", p, "-j", "ACCEPT")
	}
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+ns, "iptables-nft", "-S", "FORWARD")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() != 0 {
		t.Fatalf("iptables-nft -S: %v, stderr %s", err, stderr.String())
	}
	for _, want := range []string{
		"-A FORWARD -s 198.51.100.0/24 ",
		"-A FORWARD -d 198.51.100.0/24 ",
		"-A FORWARD -s 10.16.0.0/12 ",
		"-A FORWARD -d 10.1.2.3/32 ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("iptables-nft -S lacks %q:\n%s", want, out)
		}
	}
	n, err := c.DeleteTagged(fwd, nft.TagPrefix("overlaynet "))
	if err != nil || n != 6 {
		t.Fatalf("DeleteTagged: %d, %v", n, err)
	}
	if after := ruleset(t, ns); after != before {
		t.Errorf("ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestIp6tablesCompatible: IPv6 accept rules in ip6tables-nft's filter
// FORWARD chain are encoded as ip6tables-nft encodes `-s P -j ACCEPT`
// (whole bytes compared, or 16 bytes through a mask), so ip6tables lists
// them; SrcPrefix6 refuses IPv4, zoned and /0 prefixes.
func TestIp6tablesCompatible(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "ip6tables-nft", "-P", "FORWARD", "DROP")
	before := ruleset(t, ns)
	fwd := nft.Chain{Table: nft.Table{Family: nft.FamilyIPv6, Name: "filter"}, Name: "FORWARD"}
	for _, p := range []string{"2001:db8:42::/64", "2001:db8:40::/60", "2001:db8:42::7/128"} {
		pfx := netip.MustParsePrefix(p)
		src, _ := nft.SrcPrefix6(pfx, false)
		dst, _ := nft.DstPrefix6(pfx, false)
		if _, err := c.EnsureRules(fwd, []nft.Rule{
			{Tag: "overlaynet src " + p, Exprs: nft.Concat(src, nft.One(nft.Counter(), nft.Accept()))},
			{Tag: "overlaynet dst " + p, Exprs: nft.Concat(dst, nft.One(nft.Counter(), nft.Accept()))},
		}); err != nil {
			t.Fatal(err)
		}
		for i, flag := range []string{"-s", "-d"} {
			nstest.Run(t, ns, "ip6tables-nft", "-A", "FORWARD", flag, p, "-j", "ACCEPT")
			rs, err := c.Rules(fwd)
			if err != nil {
				t.Fatal(err)
			}
			ours, theirs := rs[len(rs)-3+i], rs[len(rs)-1]
			if !sameExprs(t, ours.Exprs, theirs.Exprs) {
				t.Errorf("%s %s: ours %#v, ip6tables-nft's %#v", flag, p, ours.Exprs, theirs.Exprs)
			}
			nstest.Run(t, ns, "ip6tables-nft", "-D", "FORWARD", flag, p, "-j", "ACCEPT")
		}
	}
	out := nstest.Run(t, ns, "ip6tables-nft", "-S", "FORWARD")
	for _, want := range []string{"-A FORWARD -s 2001:db8:42::/64 ", "-A FORWARD -d 2001:db8:40::/60 ", "-A FORWARD -s 2001:db8:42::7/128 "} {
		if !strings.Contains(out, want) {
			t.Errorf("ip6tables-nft -S lacks %q:\n%s", want, out)
		}
	}
	if n, err := c.DeleteTagged(fwd, nft.TagPrefix("overlaynet ")); err != nil || n != 6 {
		t.Fatalf("DeleteTagged: %d, %v", n, err)
	}
	if after := ruleset(t, ns); after != before {
		t.Errorf("ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, p := range []string{"198.51.100.0/24", "::ffff:198.51.100.0/120", "::/0"} {
		if _, err := nft.SrcPrefix6(netip.MustParsePrefix(p), false); err == nil {
			t.Errorf("SrcPrefix6 accepted %s", p)
		}
	}
}

// sameExprs compares expressions by their encoding, counters zeroed.
func sameExprs(t *testing.T, a, b []expr.Any) bool {
	t.Helper()
	enc := func(es []expr.Any) []byte {
		var out []byte
		for _, e := range es {
			if _, ok := e.(*expr.Counter); ok {
				e = &expr.Counter{}
			}
			x, err := expr.Marshal(unix.NFPROTO_IPV4, e)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x...)
		}
		return out
	}
	return bytes.Equal(enc(a), enc(b))
}

// TestForeignUserdata: a rule another tool wrote with malformed userdata
// (the kernel keeps it unchecked) is listed, not a panic.
func TestForeignUserdata(t *testing.T) {
	ns, c := testNS(t)
	nstest.Run(t, ns, "nft", "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }")
	fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	lc, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"}
	lc.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Table: tbl, Name: "FORWARD"},
		Exprs: []expr.Any{&expr.Counter{}}, UserData: []byte{0, 200, 'a', 'b'}})
	if err := lc.Flush(); err != nil {
		t.Fatal(err)
	}
	rules, err := c.Rules(nft.Chain{Table: nft.Table{Family: nft.FamilyIPv4, Name: "filter"}, Name: "FORWARD"})
	if err != nil || len(rules) != 1 || rules[0].Tag != "" {
		t.Fatalf("rules %+v, %v", rules, err)
	}
}
