package registry

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const testKey = "8hsKonWxEod7rQdk4KnWxWAb0UJQpP8i3VAxdJDpjx8="

func testMember() Member {
	return Member{VTEP: netip.MustParseAddr("10.99.2.2"), Owner: "7bc6c6f44e6a012e", Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"), PublicKey: testKey}
}

// TestMemberPolicy: what a member record must be for a node of an
// encrypted overlay to make it a peer.
func TestMemberPolicy(t *testing.T) {
	p := Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("198.51.100.1"),
		Underlay: netip.MustParsePrefix("10.99.0.0/16"), Tunnel: netip.MustParsePrefix("10.99.0.0/16"),
		Endpoints: netip.MustParsePrefix("192.0.2.2/24")}
	for _, c := range []struct {
		name string
		edit func(*Member)
		want Reason
	}{
		{"good", func(*Member) {}, 0},
		{"VTEP outside the tunnel", func(m *Member) { m.VTEP = netip.MustParseAddr("192.0.2.9") }, ReasonVTEPOutsideTunnel},
		{"VTEP the tunnel's broadcast", func(m *Member) { m.VTEP = netip.MustParseAddr("10.99.255.255") }, ReasonVTEPBroadcast},
		{"endpoint of another family", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("[2001:db8::2]:51820") }, ReasonEndpoint},
		{"endpoint loopback", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("127.0.0.1:51820") }, ReasonEndpoint},
		{"endpoint the underlay's broadcast", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("192.0.2.255:51820") }, ReasonEndpoint},
		{"endpoint in the overlay", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("198.51.100.7:51820") }, ReasonEndpoint},
		{"endpoint in the tunnel", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("10.99.0.7:51820") }, ReasonEndpoint},
		{"no port", func(m *Member) { m.Endpoint = netip.MustParseAddrPort("192.0.2.2:0") }, ReasonMalformed},
		{"key not 32 bytes", func(m *Member) { m.PublicKey = "AAAA" }, ReasonMalformed},
		{"next key the same", func(m *Member) { m.NextKey = testKey }, ReasonMalformed},
		{"owner with a slash", func(m *Member) { m.Owner = "a/b" }, ReasonMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := testMember()
			c.edit(&m)
			why, err := p.CheckMember(m)
			if why != c.want || (err == nil) != (c.want == 0) {
				t.Errorf("CheckMember: %v, %v; want %v", why, err, c.want)
			}
		})
	}
}

// TestParseMember: a store's value is a member of its key's address, or a
// Rejected naming the key (never the value).
func TestParseMember(t *testing.T) {
	m := testMember()
	v, err := MarshalMember(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseMember(m.VTEP, []byte(v)); err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{v[:20], strings.Repeat("x", MaxMemberLen+1), strings.Replace(v, "10.99.2.2", "10.99.2.3", 1)} {
		_, err := ParseMember(m.VTEP, []byte(bad))
		var rj Rejected
		if !errors.As(err, &rj) || rj.Key != "members/10.99.2.2" || strings.Contains(err.Error(), "xxx") {
			t.Errorf("ParseMember(%.30q): %v", bad, err)
		}
	}
}

// TestDiffNetworkEncrypt: nodes that disagree on encryption or its tunnel
// subnet differ, and say it.
func TestDiffNetworkEncrypt(t *testing.T) {
	a := Network{VNI: 42, Port: 4789, MTU: 1390, Gateway: netip.MustParsePrefix("198.51.100.1/24"), Encrypt: true, Tunnel: netip.MustParsePrefix("10.99.0.0/16")}
	b := a
	b.Encrypt, b.Tunnel = false, netip.Prefix{}
	err := CheckNetwork(b, a)
	if err == nil || !strings.Contains(err.Error(), "store encrypt: want false, have true") || !strings.Contains(err.Error(), "store tunnel subnet: want (none), have 10.99.0.0/16") {
		t.Errorf("CheckNetwork: %v", err)
	}
}
