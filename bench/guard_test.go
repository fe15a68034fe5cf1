package bench

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// guardLab is two nodes (192.0.2.2, .3) on an underlay switch, each with
// an overlay made by package overlay and one container (198.51.100.2 on
// node 1, .3 on node 2), their entries wired statically (as the resolver
// would program them), with or without the guard: the VTEP allowlist
// holding both nodes (as `overlayd run` installs it) and the containers'
// anti-spoofing rules (as attach installs them).
type guardLab struct {
	ctr [2]*rtnl.NetNS
}

func newGuardLab(b *testing.B, filters bool) *guardLab {
	nstest.RequireRoot(b)
	nstest.RequireTools(b, "nft", "bridge")
	_, ul := nstest.NetNS(b, "gbu")
	nstest.Run(b, ul, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(b, ul, "ip", "link", "set", "br0", "up")
	store, err := dirstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	lab := &guardLab{}
	vteps := []string{"192.0.2.2", "192.0.2.3"}
	ips := []string{"198.51.100.2", "198.51.100.3"}
	dirs := make([]string, 2)
	for i := range 2 {
		hns, host := nstest.NetNS(b, fmt.Sprintf("gb%d", i))
		port := fmt.Sprintf("gbp%d", i)
		nstest.Run(b, ul, "ip", "link", "add", port, "type", "veth", "peer", "name", "u0", "netns", host)
		nstest.Run(b, ul, "ip", "link", "set", port, "master", "br0", "up")
		nstest.Run(b, host, "ip", "addr", "add", vteps[i]+"/24", "dev", "u0")
		nstest.Run(b, host, "ip", "link", "set", "u0", "up")
		dirs[i] = b.TempDir()
		netnsDir := filepath.Join(dirs[i], "netns")
		b.Cleanup(func() { unix.Unmount(netnsDir, unix.MNT_DETACH) }) // after the reset below
		n := overlay.NewNode(overlay.NodeOptions{NetNSDir: filepath.Join(dirs[i], "netns"), StateDir: filepath.Join(dirs[i], "state"), Registry: store})
		cfg := overlay.DefaultConfig()
		cfg.Local = netip.MustParseAddr(vteps[i])
		cfg.NoAntispoof, cfg.NoVTEPFilter = !filters, !filters
		err := hns.Do(func() error {
			ctx := b.Context()
			if _, err := n.Create(ctx, cfg); err != nil {
				return err
			}
			_, err := n.Attach(ctx, overlay.AttachRequest{Name: "c", IP: netip.MustParsePrefix(ips[i] + "/24")})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { hns.Do(func() error { return n.Reset(b.Context()) }) })
		if filters {
			c, err := nft.Dial(hns.Fd())
			if err != nil {
				b.Fatal(err)
			}
			a, err := guard.OpenAllowlist(c, cfg.Port, cfg.Local)
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Ensure([]netip.Addr{netip.MustParseAddr(vteps[0]), netip.MustParseAddr(vteps[1])}); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		if lab.ctr[i], err = rtnl.OpenNetNS(filepath.Join(dirs[i], "netns", "c")); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lab.ctr[i].Close() })
	}
	// Static wiring: each node's vxlan knows the other's container.
	for i := range 2 {
		j := 1 - i
		over := filepath.Join(dirs[i], "netns", "overns")
		mac := overlay.DeriveMAC(netip.MustParseAddr(ips[j])).String()
		for _, argv := range [][]string{
			{"ip", "neigh", "replace", ips[j], "lladdr", mac, "dev", "vxlan1", "nud", "permanent"},
			{"bridge", "fdb", "append", mac, "dev", "vxlan1", "dst", vteps[j], "self", "permanent"},
		} {
			if out, err := exec.Command("nsenter", append([]string{"--net=" + over}, argv...)...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", argv, err, out)
			}
		}
	}
	return lab
}

// BenchmarkCrossNodeTCP: TCP throughput between two containers on two
// nodes over the overlay, with the guard's filters (the defaults a user
// gets) and without (create --no-vtep-filter --no-antispoof), in the same
// run; one op is one write by the sender: 64 KiB (bulk, large segments) or
// 1 KiB with Nagle off (about one packet each, the per-packet cost).
func BenchmarkCrossNodeTCP(b *testing.B) {
	for _, tc := range []struct {
		size    int
		filters bool
	}{{64 << 10, true}, {64 << 10, false}, {1 << 10, true}, {1 << 10, false}} {
		filters := tc.filters
		b.Run(fmt.Sprintf("write=%dKiB/filters=%v", tc.size>>10, filters), func(b *testing.B) {
			lab := newGuardLab(b, filters)
			var ln net.Listener
			if err := lab.ctr[1].Do(func() error {
				var err error
				ln, err = net.Listen("tcp", "198.51.100.3:0")
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			got := make(chan int64, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- -1
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				got <- n
			}()
			var conn net.Conn
			if err := lab.ctr[0].Do(func() error {
				var err error
				conn, err = net.Dial("tcp", ln.Addr().String())
				return err
			}); err != nil {
				b.Fatal(err)
			}
			if tcp, ok := conn.(*net.TCPConn); ok {
				tcp.SetNoDelay(true) // Go's default: each write is sent at once
			}
			buf := make([]byte, tc.size)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			conn.Close()
			if n := <-got; n != int64(b.N)*int64(len(buf)) {
				b.Fatalf("received %d bytes, sent %d", n, int64(b.N)*int64(len(buf)))
			}
		})
	}
}

// BenchmarkAllowlistUpdate: the time to put 1,000 nodes into the VTEP
// allowlist (one in-place change of the set, as Follow makes it when they
// appear in the registry), and to take them out again.
func BenchmarkAllowlistUpdate(b *testing.B) {
	nstest.RequireTools(b, "nft")
	ns, _ := nstest.NetNS(b, "gba")
	c, err := nft.Dial(ns.Fd())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	local := netip.MustParseAddr("10.0.0.1")
	a, err := guard.OpenAllowlist(c, 4789, local)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Ensure([]netip.Addr{local}); err != nil {
		b.Fatal(err)
	}
	nodes := []netip.Addr{local}
	for i := range 1000 {
		nodes = append(nodes, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	only := []netip.Addr{local}
	for _, tc := range []struct {
		name     string
		from, to []netip.Addr
	}{{"add1000", only, nodes}, {"remove1000", nodes, only}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if _, _, err := a.Sync(tc.from); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				add, del, err := a.Sync(tc.to)
				if err != nil || add+del != 1000 {
					b.Fatalf("Sync: +%d -%d, %v", add, del, err)
				}
			}
		})
	}
}
