package etcdreg

import (
	"net/netip"

	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url       string
		opts      Options
		endpoints []string
		prefix    string
		tls       bool
		check     func(Options) bool
		err       string // substring; "" = success
	}{
		{url: "etcd://127.0.0.1:2379/overlaynet", endpoints: []string{"127.0.0.1:2379"}, prefix: "/overlaynet",
			check: func(o Options) bool {
				return o.VNI == 42 && o.TTL == DefaultTTL && o.Timeout == DefaultTimeout && !o.NoLease
			}},
		{url: "etcd://a:1,b:2,[2001:db8::1]:3/x/y/", endpoints: []string{"a:1", "b:2", "[2001:db8::1]:3"}, prefix: "/x/y"},
		{url: "etcd://etcd1", endpoints: []string{"etcd1:2379"}, prefix: DefaultPrefix},
		{url: "etcd://[2001:db8::1]/", endpoints: []string{"[2001:db8::1]:2379"}, prefix: DefaultPrefix},
		{url: "etcds://etcd1:2379/p", endpoints: []string{"etcd1:2379"}, prefix: "/p", tls: true},
		{url: "etcd://u%40x:p%3Aw@h:1/p", endpoints: []string{"h:1"}, prefix: "/p",
			check: func(o Options) bool { return o.Username == "u@x" && o.Password == "p:w" }},
		{url: "etcd://h:1/p?vni=7&ttl=3&timeout=250ms&node=192.0.2.2", endpoints: []string{"h:1"}, prefix: "/p",
			check: func(o Options) bool {
				return o.VNI == 7 && o.TTL == 3*time.Second && o.Timeout == 250*time.Millisecond && o.NodeVTEP == netip.MustParseAddr("192.0.2.2")
			}},
		{url: "etcd://h:1/p?ttl=0", endpoints: []string{"h:1"}, prefix: "/p", check: func(o Options) bool { return o.NoLease }},
		{url: "etcd://h:1/p?ca=/c.pem&cert=/a.pem&key=/k.pem&servername=etcd", endpoints: []string{"h:1"}, prefix: "/p", tls: true,
			check: func(o Options) bool {
				return o.CAFile == "/c.pem" && o.CertFile == "/a.pem" && o.KeyFile == "/k.pem" && o.ServerName == "etcd"
			}},
		{url: "etcd://h:1/p?vni=7", opts: Options{VNI: 7, CAFile: "/c.pem"}, endpoints: []string{"h:1"}, prefix: "/p", tls: true},

		{url: "dir:/tmp/x", err: "want etcd://"},
		{url: "http://h:1/p", err: `unknown scheme "http"`},
		{url: "etcd:///p", err: "no endpoint"},
		{url: "etcd://a:1,,b:2/p", err: "empty endpoint"},
		{url: "etcd://h:99999/p", err: "bad port"},
		{url: "etcd://h:x/p", err: "bad port"},
		{url: "etcd://2001:db8::1/p", err: "[ADDR]:PORT"},
		{url: "etcd://h:1/p?vni=0", err: "vni"},
		{url: "etcd://h:1/p?vni=16777216", err: "out of range"},
		{url: "etcd://h:1/p?vni=7", opts: Options{VNI: 8}, err: "disagrees"},
		{url: "etcd://h:1/p?ttl=soon", err: "ttl"},
		{url: "etcd://h:1/p?timeout=0", err: "timeout"},
		{url: "etcd://h:1/p?cert=/a.pem", err: "both cert and key"},
		{url: "etcd://h:1/p?node=nope", err: "node"},
		{url: "etcd://h:1/p?node=192.0.2.2", opts: Options{NodeVTEP: netip.MustParseAddr("192.0.2.3")}, err: "disagrees"},
		{url: "etcd://h:1/p?vni=1&vni=2", err: "given 2 times"},
		{url: "etcd://h:1/p?colour=blue", err: `unknown parameter "colour"`},
		{url: "etcd://u:a@h:1/p", opts: Options{Password: "b"}, err: "password"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parseURL(tt.url, tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "etcdreg: ") || !strings.Contains(err.Error(), registry.RedactURL(tt.url)) {
					t.Errorf("err %q does not name the package and the URL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.endpoints, tt.endpoints) || got.prefix != tt.prefix || got.tls != tt.tls {
				t.Fatalf("got endpoints %q prefix %q tls %v; want %q %q %v", got.endpoints, got.prefix, got.tls, tt.endpoints, tt.prefix, tt.tls)
			}
			if tt.check != nil && !tt.check(got.opts) {
				t.Fatalf("options %+v", got.opts)
			}
		})
	}
}

func TestTTLSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10} {
		if got := ttlSeconds(d); got != want {
			t.Errorf("ttlSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

// TestParseURLNeverQuotesPassword: no error about a store URL carries its
// password, or a part of it, whatever else is wrong with the URL.
func TestParseURLNeverQuotesPassword(t *testing.T) {
	const secret = "Sekr1t"
	for _, tc := range []struct {
		url  string
		opts Options
		want string
	}{
		{url: "etcd://alice:" + secret + "@h:1/p?bogus=1", want: `"etcd://alice:xxxxx@h:1/p?bogus=1": unknown parameter "bogus"`},
		{url: "etcd://alice:" + secret + "@h:notaport/p", want: `bad port "notaport"`},
		{url: "etcd://alice:" + secret + "@/p", want: "no endpoint"},
		{url: "etcd://alice:" + secret + "%zz@h:1/p", want: "bad %-escape in the password"},
		{url: "etcd://alice:" + secret + "/x@h:1/p", want: `holds a "/"`},
		{url: "etcd://alice:" + secret + ":x@h:1/p?vni=0", want: "vni"},
		{url: "etcd://alice:" + secret + "@h:1/p", opts: Options{Password: "other"}, want: "password in the URL disagrees"},
		{url: "etcd://alice:" + secret + "@h:1/p", opts: Options{Username: "bob"}, want: "user name"},
		{url: "etcd://alice:p@" + secret + "@h:1/p?ttl=x", want: "ttl"},
	} {
		_, err := parseURL(tc.url, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseURL(%q) = %v, want an error containing %q", tc.url, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "Sekr") {
			t.Errorf("parseURL(%q): the error carries the password: %v", tc.url, err)
		}
	}
}
