package overlay

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/egress"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	dual := DefaultConfig()
	dual.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
	dual.Local = netip.MustParseAddr("2001:db8::2")
	dual.MTU = 0
	if err := dual.Validate(); err != nil {
		t.Fatalf("dual-stack config on an IPv6 underlay, MTU chosen by Create: %v", err)
	}
	dual.Gateway6, dual.BlockBits6 = netip.MustParsePrefix("2001:db8:42::1/124"), 124
	if err := dual.Validate(); err != nil {
		t.Fatalf("a /124 IPv6 prefix with /124 blocks: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // substring of the error
	}{
		{"vni 0", func(c *Config) { c.VNI = 0 }, "VNI 0 out of range"},
		{"vni too big", func(c *Config) { c.VNI = 16777216 }, "VNI 16777216 out of range"},
		{"port 0", func(c *Config) { c.Port = 0 }, "port 0"},
		{"mtu 67", func(c *Config) { c.MTU = 67 }, "MTU 67 is below"},
		{"mtu huge", func(c *Config) { c.MTU = 70000 }, "MTU 70000 is above"},
		{"no gateway", func(c *Config) { c.Gateway = netip.Prefix{} }, "gateway is not set"},
		{"ipv6 gateway", func(c *Config) { c.Gateway = netip.MustParsePrefix("2001:db8::1/64") }, "not IPv4"},
		{"gateway /32", func(c *Config) { c.Gateway = netip.MustParsePrefix("198.51.100.1/32") }, "prefix /32"},
		{"gateway network", func(c *Config) { c.Gateway = netip.MustParsePrefix("198.51.100.0/24") }, "network address"},
		{"gateway broadcast", func(c *Config) { c.Gateway = netip.MustParsePrefix("198.51.100.255/24") }, "broadcast address"},
		{"local and dev", func(c *Config) { c.Local = netip.MustParseAddr("192.0.2.2"); c.Dev = "eth0" }, "exclusive"},
		{"local multicast", func(c *Config) { c.Local = netip.MustParseAddr("239.1.1.1") }, "not a unicast VTEP address"},
		{"local v6 multicast", func(c *Config) { c.Local = netip.MustParseAddr("ff02::1") }, "not a unicast VTEP address"},
		{"local v6 link-local", func(c *Config) { c.Local = netip.MustParseAddr("fe80::1") }, "link-local"},
		{"local v6 zone", func(c *Config) { c.Local = netip.MustParseAddr("2001:db8::2%eth0") }, "without a zone"},
		{"local v4-mapped", func(c *Config) { c.Local = netip.MustParseAddr("::ffff:192.0.2.2") }, "IPv4 in its IPv4 form"},
		{"local in subnet", func(c *Config) { c.Local = netip.MustParseAddr("198.51.100.7") }, "inside the overlay's prefix"},
		{"local in prefix6", func(c *Config) {
			c.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
			c.Local = netip.MustParseAddr("2001:db8:42::9")
		}, "inside the overlay's prefix 2001:db8:42::/64"},
		{"ipv6 only", func(c *Config) { c.Gateway = netip.MustParsePrefix("2001:db8:42::1/64") }, "IPv6-only overlays are not supported"},
		{"gateway6 v4", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("198.51.100.1/24") }, "not an IPv6 address"},
		{"gateway6 /127", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/127") }, "prefix /127 leaves no room"},
		{"gateway6 link-local", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("fe80::1/64") }, "link-local"},
		{"gateway6 multicast", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("ff05::1/64") }, "not a unicast"},
		{"gateway6 anycast", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("2001:db8:42::/64") }, "subnet-router anycast"},
		{"gateway6 smaller than a block", func(c *Config) { c.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/124") },
			"IPv6 prefix 2001:db8:42::/124 (/124) is smaller than one address block (/120)"},
		{"block bits6 without gateway6", func(c *Config) { c.BlockBits6 = 112 }, "without an IPv6 gateway"},
		{"block bits6 out of range", func(c *Config) {
			c.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
			c.BlockBits6 = 129
		}, "out of range"},
		{"dev too long", func(c *Config) { c.Dev = "abcdefghijklmnop" }, "longer than the kernel's 15"},
		{"netns slash", func(c *Config) { c.OverlayNetNS = "a/b" }, "'/'"},
		{"netns dotdot", func(c *Config) { c.OverlayNetNS = "a..b" }, `".."`},
		{"netns dotdot alone", func(c *Config) { c.OverlayNetNS = ".." }, "not allowed"},
		{"netns empty", func(c *Config) { c.OverlayNetNS = "" }, "empty netns name"},
		{"netns too long", func(c *Config) { c.OverlayNetNS = strings.Repeat("n", 256) }, "longer than the kernel's 255"},
		{"bridge empty", func(c *Config) { c.Bridge = "" }, "bridge name is empty"},
		{"bridge colon", func(c *Config) { c.Bridge = "br:0" }, "contains '/', ':'"},
		{"vxlan too long", func(c *Config) { c.Vxlan = "vxlan-1234567890" }, "vxlan name"},
		{"same names", func(c *Config) { c.Vxlan = "br0" }, "both named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "overlay: ") && !strings.HasPrefix(err.Error(), "rtnl: ") {
				t.Fatalf("Validate() = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateAttachRequest(t *testing.T) {
	cfg := DefaultConfig()
	ok := AttachRequest{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.2/24")}
	r := ok
	if err := validateAttach(cfg, &r); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	if r.IfName != "eth0" || r.MAC.String() != "02:42:c6:33:64:02" {
		t.Fatalf("defaults: ifname %q mac %s, want eth0 02:42:c6:33:64:02", r.IfName, r.MAC)
	}
	for _, tc := range badAttachCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := validateAttach(cfg, &r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validateAttach = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestValidateAttachRequestIPv6: on a dual-stack overlay a request gives
// an address of each family or of the one it asks for; its IPv6 address is
// checked against the IPv6 prefix; on an IPv4 overlay an IPv6 address is
// refused. An IPv6-only container's MAC derives from its IPv6 address.
func TestValidateAttachRequestIPv6(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
	ok := AttachRequest{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.2/24"), IP6: netip.MustParsePrefix("2001:db8:42::2/64")}
	r := ok
	if err := validateAttach(cfg, &r); err != nil || r.MAC.String() != "02:42:c6:33:64:02" {
		t.Fatalf("valid dual-stack request: %v (MAC %s)", err, r.MAC)
	}
	only6 := AttachRequest{Name: "skyns", IP6: netip.MustParsePrefix("2001:db8:42::3/64"), Only: IPv6}
	if err := validateAttach(cfg, &only6); err != nil || only6.MAC != DeriveMAC(only6.IP6.Addr()) {
		t.Fatalf("valid IPv6-only request: %v (MAC %s)", err, only6.MAC)
	}
	for _, tc := range []badAttachCase{
		{"no ip6", func(r *AttachRequest) { r.IP6 = netip.Prefix{} }, "no IP given (want an IPv6 address"},
		{"ip6 outside", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("2001:db8:43::2/64") }, "outside the overlay's IPv6 prefix 2001:db8:42::/64"},
		{"ip6 other length", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("2001:db8:42::2/80") }, "has prefix /80"},
		{"ip6 gateway", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("2001:db8:42::1/64") }, "IPv6 gateway's address"},
		{"ip6 anycast", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("2001:db8:42::/64") }, "subnet-router anycast"},
		{"ip6 is v4", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("198.51.100.9/24") }, "not IPv6"},
		{"ip6 link-local", func(r *AttachRequest) { r.IP6 = netip.MustParsePrefix("fe80::2/64") }, "outside the overlay's IPv6 prefix"},
		{"only v4 with v6", func(r *AttachRequest) { r.Only = IPv4 }, "IPv4 address only"},
		{"only unknown", func(r *AttachRequest) { r.Only = 5 }, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			if err := validateAttach(cfg, &r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validateAttach = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	v4 := DefaultConfig()
	r = ok
	if err := validateAttach(v4, &r); err == nil || !strings.Contains(err.Error(), "the overlay has no IPv6 prefix") {
		t.Errorf("IPv6 address on an IPv4 overlay: %v", err)
	}
	r = AttachRequest{Name: "x", Addr6: netip.MustParseAddr("2001:db8:42::5%eth0")}
	if err := r.takeAddrs(cfg); err == nil || !strings.Contains(err.Error(), "has a zone") {
		t.Errorf("zone: %v", err)
	}
	r = AttachRequest{Name: "x", Addr6: netip.MustParseAddr("2001:db8:42::5")}
	if err := r.takeAddrs(cfg); err != nil || r.IP6.String() != "2001:db8:42::5/64" {
		t.Errorf("bare IPv6 address: %v, %s", err, r.IP6)
	}
}

// badAttachCase is an invalid attach request (an edit of a valid one) and
// what its error must say.
type badAttachCase struct {
	name string
	edit func(*AttachRequest)
	want string
}

func badAttachCases() []badAttachCase {
	mac := func(s string) ethaddr.MAC { m, _ := ethaddr.Parse(s); return m }
	return []badAttachCase{
		{"no ip", func(r *AttachRequest) { r.IP = netip.Prefix{} }, "no IP given"},
		{"ipv6", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("2001:db8::2/64") }, "not IPv4"},
		{"outside subnet", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("203.0.113.2/24") }, "outside the overlay subnet 198.51.100.0/24"},
		{"other prefix", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("198.51.100.2/25") }, "has prefix /25"},
		{"gateway", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("198.51.100.1/24") }, "gateway's address"},
		{"network", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("198.51.100.0/24") }, "network address"},
		{"broadcast", func(r *AttachRequest) { r.IP = netip.MustParsePrefix("198.51.100.255/24") }, "broadcast address"},
		{"multicast mac", func(r *AttachRequest) { r.MAC = mac("03:42:c6:33:64:02") }, "multicast"},
		{"broadcast mac", func(r *AttachRequest) { r.MAC = mac("ff:ff:ff:ff:ff:ff") }, "multicast"},
		{"name slash", func(r *AttachRequest) { r.Name = "a/b" }, "'/'"},
		{"name dotdot", func(r *AttachRequest) { r.Name = ".." }, "not allowed"},
		{"name with dotdot", func(r *AttachRequest) { r.Name = "x..y" }, `".."`},
		{"name too long", func(r *AttachRequest) { r.Name = strings.Repeat("c", 256) }, "longer than the kernel's 255"},
		{"name empty", func(r *AttachRequest) { r.Name = "" }, "empty netns name"},
		{"ifname too long", func(r *AttachRequest) { r.IfName = "eth0123456789012" }, "ifname name"},
	}
}

// TestEncryptConfigValidate: each refusal of an encrypted overlay's
// settings names its problem; the defaults pass.
func TestEncryptConfigValidate(t *testing.T) {
	encrypted := func() Config {
		c := DefaultConfig()
		c.MTU = DefaultEncryptedMTU
		c.Encrypt = &EncryptConfig{Tunnel: DefaultTunnelSubnet(), Port: DefaultWireGuardPort}
		return c
	}
	if c := encrypted(); c.Validate() != nil {
		t.Fatalf("default encrypted config: %v", c.Validate())
	}
	tunnel := func(s string) func(*Config) {
		return func(c *Config) { c.Encrypt.Tunnel = netip.MustParsePrefix(s) }
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no tunnel", func(c *Config) { c.Encrypt.Tunnel = netip.Prefix{} }, "no tunnel subnet"},
		{"not masked", tunnel("10.99.0.1/16"), "is not a network prefix (10.99.0.0/16)"},
		{"too small", tunnel("10.99.0.0/31"), "leaves no room for nodes"},
		{"too small v6", tunnel("fd00::/127"), "leaves no room for nodes"},
		{"multicast", tunnel("239.1.0.0/16"), "is not unicast"},
		{"loopback", tunnel("127.1.0.0/16"), "is not unicast"},
		{"overlay subnet", tunnel("198.51.100.0/25"), "overlaps the overlay subnet"},
		{"link-local v6", tunnel("fe80::/64"), "is IPv6 link-local"},
		{"overlay prefix v6", func(c *Config) {
			c.Gateway6 = netip.MustParsePrefix("2001:db8:42::1/64")
			c.Encrypt.Tunnel = netip.MustParsePrefix("2001:db8:42::/96")
		}, "overlaps the overlay's IPv6 prefix"},
		{"egress link", func(c *Config) {
			c.Egress = &egress.Config{LinkSubnet: netip.MustParsePrefix("169.254.100.0/30")}
			c.Encrypt.Tunnel = netip.MustParsePrefix("169.254.100.0/24")
		}, "overlaps the egress link subnet"},
		{"port 0", func(c *Config) { c.Encrypt.Port = 0 }, "port 0 is not a valid"},
		{"vxlan port", func(c *Config) { c.Encrypt.Port = c.Port }, "is the VXLAN port"},
		{"device name", func(c *Config) { c.Encrypt.Device = "owg/1" }, "WireGuard device"},
		{"no vtep filter", func(c *Config) { c.NoVTEPFilter = true }, "needs the VTEP allowlist"},
		{"local inside", func(c *Config) { c.Local = netip.MustParseAddr("169.254.33.2") }, "inside the tunnel subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := encrypted()
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "overlay: ") {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
