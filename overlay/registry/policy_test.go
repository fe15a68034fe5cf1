package registry

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// testPolicy is an overlay 198.51.100.0/24 with gateway .1, on a node whose
// VTEP is 192.0.2.2/24.
func testPolicy() Policy {
	return Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("198.51.100.1"),
		Underlay: netip.MustParsePrefix("192.0.2.2/24")}
}

func mustMAC(s string) ethaddr.MAC {
	m, err := ethaddr.Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestPolicy: every reason a record is rejected, each for the half it
// concerns, and the records that pass.
func TestPolicy(t *testing.T) {
	const mac, vtep, ip = "02:42:c6:33:64:05", "192.0.2.3", "198.51.100.5"
	cases := []struct {
		name         string
		ip, mac, vtp string
		want         Reason
	}{
		{"honest", ip, mac, vtep, 0},
		{"honest, last host", "198.51.100.254", mac, vtep, 0},
		{"no VTEP yet", ip, mac, "", 0},
		{"VTEP loopback", ip, mac, "127.0.0.1", ReasonVTEPLoopback},
		{"VTEP loopback net", ip, mac, "127.3.0.9", ReasonVTEPLoopback},
		{"VTEP unspecified", ip, mac, "0.0.0.0", ReasonVTEPUnspecified},
		{"VTEP multicast", ip, mac, "224.0.0.1", ReasonVTEPMulticast},
		{"VTEP broadcast", ip, mac, "255.255.255.255", ReasonVTEPBroadcast},
		{"VTEP underlay broadcast", ip, mac, "192.0.2.255", ReasonVTEPBroadcast},
		{"VTEP a container", ip, mac, "198.51.100.2", ReasonVTEPInOverlay},
		{"VTEP wrong family", ip, mac, "2001:db8::2", ReasonVTEPFamily},
		{"VTEP 4in6", ip, mac, "::ffff:192.0.2.3", ReasonMalformed},
		{"MAC multicast", ip, "01:00:5e:00:00:01", vtep, ReasonMACNotUnicast},
		{"MAC broadcast", ip, "ff:ff:ff:ff:ff:ff", vtep, ReasonMACNotUnicast},
		{"MAC zero", ip, "00:00:00:00:00:00", vtep, ReasonMACNotUnicast},
		{"IP network", "198.51.100.0", mac, vtep, ReasonIPNetwork},
		{"IP broadcast", "198.51.100.255", mac, vtep, ReasonIPBroadcast},
		{"IP gateway", "198.51.100.1", mac, vtep, ReasonIPGateway},
		{"IP outside", "203.0.113.5", mac, vtep, ReasonIPOutsideSubnet},
	}
	p := testPolicy()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Record{IP: netip.MustParseAddr(c.ip), MAC: mustMAC(c.mac)}
			if c.vtp != "" {
				r.VTEP = netip.MustParseAddr(c.vtp)
			}
			why, err := p.Check(r)
			if why != c.want || (err == nil) != (c.want == 0) {
				t.Errorf("Check(%v) = %v, %v; want %v", r, why, err, c.want)
			}
		})
	}
	// A /31 underlay has no broadcast address; a /32 VTEP none known.
	for _, u := range []string{"192.0.2.2/31", "192.0.2.2/32"} {
		p.Underlay = netip.MustParsePrefix(u)
		if why, err := p.CheckVTEP(netip.MustParseAddr("192.0.2.3")); err != nil {
			t.Errorf("underlay %s: 192.0.2.3 refused (%v)", u, why)
		}
	}
	// The zero Policy: IPv4 VTEPs, any IP.
	var zero Policy
	if why, _ := zero.CheckVTEP(netip.MustParseAddr("2001:db8::1")); why != ReasonVTEPFamily {
		t.Errorf("zero policy, IPv6 VTEP: %v", why)
	}
	if _, err := zero.Check(Record{IP: netip.MustParseAddr("10.1.2.3"), MAC: mustMAC(mac), VTEP: netip.MustParseAddr(vtep)}); err != nil {
		t.Errorf("zero policy refuses an honest record: %v", err)
	}
}

// TestPolicyIPv6: a dual-stack overlay on an IPv6 underlay: IPv6 records
// in its prefix pass, the prefix's subnet-router anycast address, the IPv6
// gateway, addresses outside the prefix and IPv6 VTEPs that no node can
// have are refused; IPv4 VTEPs are of the wrong family. An IPv4 overlay
// refuses IPv6 records.
func TestPolicyIPv6(t *testing.T) {
	const mac, vtep, ip = "02:42:c6:33:64:05", "2001:db8::3", "2001:db8:42::5"
	p := Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("198.51.100.1"),
		Subnet6: netip.MustParsePrefix("2001:db8:42::/64"), Gateway6: netip.MustParseAddr("2001:db8:42::1"),
		Underlay: netip.MustParsePrefix("2001:db8::2/64")}
	cases := []struct {
		name         string
		ip, mac, vtp string
		want         Reason
	}{
		{"honest", ip, mac, vtep, 0},
		{"honest IPv4 IP", "198.51.100.5", mac, vtep, 0},
		{"honest, high host", "2001:db8:42::ffff:ffff:ffff:fffe", mac, vtep, 0},
		{"anycast", "2001:db8:42::", mac, vtep, ReasonIPNetwork},
		{"gateway", "2001:db8:42::1", mac, vtep, ReasonIPGateway},
		{"outside", "2001:db8:43::5", mac, vtep, ReasonIPOutsideSubnet},
		{"link-local IP", "fe80::5", mac, vtep, ReasonIPOutsideSubnet},
		{"VTEP IPv4", ip, mac, "192.0.2.3", ReasonVTEPFamily},
		{"VTEP loopback", ip, mac, "::1", ReasonVTEPLoopback},
		{"VTEP unspecified", ip, mac, "::", ReasonVTEPUnspecified},
		{"VTEP multicast", ip, mac, "ff02::1", ReasonVTEPMulticast},
		{"VTEP link-local", ip, mac, "fe80::3", ReasonVTEPLinkLocal},
		{"VTEP a container", ip, mac, "2001:db8:42::9", ReasonVTEPInOverlay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Record{IP: netip.MustParseAddr(c.ip), MAC: mustMAC(c.mac), VTEP: netip.MustParseAddr(c.vtp)}
			why, err := p.Check(r)
			if why != c.want || (err == nil) != (c.want == 0) {
				t.Errorf("Check(%v) = %v, %v; want %v", r, why, err, c.want)
			}
		})
	}
	if why, err := testPolicy().CheckIP(netip.MustParseAddr(ip)); why != ReasonIPOutsideSubnet {
		t.Errorf("IPv4 overlay, IPv6 IP: %v, %v; want %v", why, err, ReasonIPOutsideSubnet)
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || seen[s] || s[0] == 'R' {
			t.Errorf("reason %d: %q", r, s)
		}
		seen[s] = true
	}
	if len(seen) != 17 || Reason(0).String() != "Reason(0)" || ReasonIPGateway.String() != "ip_gateway" {
		t.Errorf("reasons %v", seen)
	}
}

// TestPolicyAcceptsWithoutAllocating: accepting a sound record's FDB half
// allocates nothing, whichever prefixes the policy leaves unset (the
// resolver checks every record of its view this way, 100,000 per
// reconcile pass).
func TestPolicyAcceptsWithoutAllocating(t *testing.T) {
	mac, vtep := mustMAC("02:42:c6:33:64:05"), netip.MustParseAddr("192.0.2.3")
	for _, p := range []Policy{
		{},
		{Subnet: netip.MustParsePrefix("198.51.100.0/24")},
		{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Subnet6: netip.MustParsePrefix("fd00:42::/64")},
	} {
		if _, err := p.CheckFDB(mac, vtep); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = p.CheckFDB(mac, vtep) }); n != 0 {
			t.Errorf("policy %+v: CheckFDB allocates %v times per call", p, n)
		}
	}
}
