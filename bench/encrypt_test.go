package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/testbin"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// overlaydBin is the overlayd binary as `make build` makes it: the
// userspace WireGuard device process of the encrypted labs.
var overlaydBin = &testbin.Set{Pkgs: map[string]string{"overlayd": "../cmd/overlayd"}}

// encLab is two nodes (192.0.2.2, .3) on an underlay switch with one
// container each (198.51.100.2, .3), made by package overlay as create
// makes them: encrypted by provider (0: not encrypted), its WireGuard
// peers and the containers' entries wired as the daemon would program
// them. pids are the userspace device processes (the shipped binary).
type encLab struct {
	ctr  [2]*rtnl.NetNS
	pids []int
}

// encMode is one variant of the benchmark.
type encMode struct {
	name     string
	encrypt  bool
	provider wireguard.Provider
}

func newEncLab(b *testing.B, m encMode) *encLab {
	nstest.RequireRoot(b)
	nstest.RequireTools(b, "bridge")
	_, ul := nstest.NetNS(b, "ebu")
	nstest.Run(b, ul, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(b, ul, "ip", "link", "set", "br0", "up")
	store, err := dirstore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	lab := &encLab{}
	vteps := []string{"192.0.2.2", "192.0.2.3"}
	ips := []string{"198.51.100.2", "198.51.100.3"}
	var ovs [2]*overlay.Overlay
	var dirs [2]string
	for i := range 2 {
		hns, host := nstest.NetNS(b, fmt.Sprintf("eb%d", i))
		port := fmt.Sprintf("ebp%d", i)
		nstest.Run(b, ul, "ip", "link", "add", port, "type", "veth", "peer", "name", "u0", "netns", host)
		nstest.Run(b, ul, "ip", "link", "set", port, "master", "br0", "up")
		nstest.Run(b, host, "ip", "addr", "add", vteps[i]+"/24", "dev", "u0")
		nstest.Run(b, host, "ip", "link", "set", "u0", "up")
		dirs[i] = b.TempDir()
		netnsDir := filepath.Join(dirs[i], "netns")
		b.Cleanup(func() { unix.Unmount(netnsDir, unix.MNT_DETACH) }) // after the reset below
		n := overlay.NewNode(overlay.NodeOptions{NetNSDir: netnsDir, StateDir: filepath.Join(dirs[i], "state"), Registry: store,
			WireGuardCommand: []string{filepath.Join(overlaydBin.Dir(b), "overlayd"), "wireguard"}})
		cfg := overlay.DefaultConfig()
		cfg.Local = netip.MustParseAddr(vteps[i])
		if m.encrypt {
			cfg.MTU = overlay.DefaultEncryptedMTU
			cfg.Encrypt = &overlay.EncryptConfig{Tunnel: netip.MustParsePrefix("10.99.0.0/16"), Port: overlay.DefaultWireGuardPort, Provider: m.provider}
		}
		err := hns.Do(func() error {
			ctx := b.Context()
			var err error
			if ovs[i], err = n.Create(ctx, cfg); err != nil {
				return err
			}
			_, err = n.Attach(ctx, overlay.AttachRequest{Name: "c", IP: netip.MustParsePrefix(ips[i] + "/24")})
			return err
		})
		if errors.Is(err, errNoKernelWireGuard(err)) {
			b.Skipf("the kernel has no WireGuard (RTM_NEWLINK of kind wireguard refused): %v", err)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { hns.Do(func() error { return n.Reset(b.Context()) }) })
		if lab.ctr[i], err = rtnl.OpenNetNS(filepath.Join(netnsDir, "c")); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lab.ctr[i].Close() })
		if m.encrypt && m.provider == wireguard.ProviderUserspace {
			pid, _, _ := wireguard.ProcessRunning(filepath.Join(dirs[i], "state", "wireguard"))
			lab.pids = append(lab.pids, pid)
		}
	}
	for i := range 2 {
		j := 1 - i
		if m.encrypt {
			peerWith(b, vteps[i], ovs[i], ovs[j])
		}
		over := filepath.Join(dirs[i], "netns", "overns")
		mac := overlay.DeriveMAC(netip.MustParseAddr(ips[j])).String()
		for _, argv := range [][]string{
			{"ip", "neigh", "replace", ips[j], "lladdr", mac, "dev", "vxlan1", "nud", "permanent"},
			{"bridge", "fdb", "append", mac, "dev", "vxlan1", "dst", ovs[j].VTEP.String(), "self", "permanent"},
		} {
			if out, err := exec.Command("nsenter", append([]string{"--net=" + over}, argv...)...).CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", argv, err, out)
			}
		}
	}
	return lab
}

// errNoKernelWireGuard returns err when it says the kernel refused a
// WireGuard link, else a sentinel nothing matches.
func errNoKernelWireGuard(err error) error {
	if err != nil && strings.Contains(err.Error(), "the kernel has no WireGuard") {
		return err
	}
	return errors.New("(none)")
}

// peerWith gives node ov (in the netns named by its underlay address's
// node) the peer other, as the daemon's Plan would.
func peerWith(b *testing.B, underlay string, ov, other *overlay.Overlay) {
	t := other.Tunnel
	w := wireguard.Want{Key: t.PublicKey, Endpoint: t.Endpoint, VTEP: t.Address.Addr()}
	cfg, _ := wireguard.Plan(&wireguard.Device{}, []wireguard.Want{w}, false, map[wireguard.Key]netip.AddrPort{})
	var c wireguard.Client = &wireguard.UAPI{}
	if ov.Tunnel.Provider == wireguard.ProviderKernel {
		k, err := wireguard.DialKernel()
		if err != nil {
			b.Fatal(err)
		}
		defer k.Close()
		c = k
	}
	if err := c.Configure(ov.Tunnel.Device, cfg); err != nil {
		b.Fatalf("peer of %s: %v", underlay, err)
	}
}

// cpuTime is the CPU time (user and system) of this process and of pids.
func cpuTime(pids []int) time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	tick := int64(100) // USER_HZ
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d += time.Duration((ut + st) * int64(time.Second) / tick)
	}
	return d
}

// encModes are the benchmark's variants, in one run: VXLAN in clear, and
// inside WireGuard by each provider (the kernel's skips on a kernel
// without it, as this project's machines are).
func encModes() []encMode {
	return []encMode{{"off", false, 0}, {"userspace", true, wireguard.ProviderUserspace}, {"kernel", true, wireguard.ProviderKernel}}
}

// BenchmarkEncryptTCP: TCP throughput between two containers on two nodes,
// the overlay in clear (encrypt=off) and inside WireGuard (userspace: the
// shipped overlayd's device process; kernel where the kernel has it), in
// one run; one op is one 64 KiB write by the sender. cpu-s/GB is the CPU
// time of the benchmark process (sender and receiver) and of the device
// processes per GB sent.
func BenchmarkEncryptTCP(b *testing.B) {
	for _, m := range encModes() {
		b.Run("encrypt="+m.name, func(b *testing.B) {
			lab := newEncLab(b, m)
			conn, got := lab.tcp(b)
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			cpu0 := cpuTime(lab.pids)
			b.ResetTimer()
			for b.Loop() {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			conn.Close()
			if n := <-got; n != int64(b.N)*int64(len(buf)) {
				b.Fatalf("received %d bytes, sent %d", n, int64(b.N)*int64(len(buf)))
			}
			gb := float64(b.N) * float64(len(buf)) / 1e9
			b.ReportMetric((cpuTime(lab.pids)-cpu0).Seconds()/gb, "cpu-s/GB")
		})
	}
}

// BenchmarkEncryptLatency: the round trip of one byte over TCP between the
// two containers (a request and its answer), in clear and inside
// WireGuard, in one run; one op is one round trip.
func BenchmarkEncryptLatency(b *testing.B) {
	for _, m := range encModes() {
		b.Run("encrypt="+m.name, func(b *testing.B) {
			lab := newEncLab(b, m)
			var ln net.Listener
			if err := lab.ctr[1].Do(func() (err error) { ln, err = net.Listen("tcp", "198.51.100.3:0"); return err }); err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c) // echo
			})
			var conn net.Conn
			if err := lab.ctr[0].Do(func() (err error) { conn, err = net.Dial("tcp", ln.Addr().String()); return err }); err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			one := []byte{1}
			for b.Loop() {
				if _, err := conn.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// tcp opens a connection from container 0 to a sink in container 1; got
// delivers what the sink read once the connection closes.
func (lab *encLab) tcp(b *testing.B) (net.Conn, chan int64) {
	var ln net.Listener
	if err := lab.ctr[1].Do(func() (err error) { ln, err = net.Listen("tcp", "198.51.100.3:0"); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
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
	if err := lab.ctr[0].Do(func() (err error) { conn, err = net.Dial("tcp", ln.Addr().String()); return err }); err != nil {
		b.Fatal(err)
	}
	return conn, got
}
