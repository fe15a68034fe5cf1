package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// buildOverlayd builds the binary into a temporary directory.
func buildOverlayd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "overlayd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// watchProc is a running `overlayd watch`.
type watchProc struct {
	cmd   *exec.Cmd
	lines chan string
	errc  chan string
}

func startWatch(t *testing.T, bin string, args ...string) *watchProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"watch"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watchProc{cmd: cmd, lines: make(chan string, 100), errc: make(chan string, 100)}
	pump := func(r io.Reader, c chan string) {
		s := bufio.NewScanner(r)
		for s.Scan() {
			c <- s.Text()
		}
		close(c)
	}
	go pump(stdout, p.lines)
	go pump(stderr, p.errc)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// It says so on stderr once it is subscribed.
	select {
	case l := <-p.errc:
		if !strings.Contains(l, "listening for misses") {
			t.Fatalf("overlayd watch: %s", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("overlayd watch did not start")
	}
	return p
}

// collect reads stdout lines until done says it has what it wants or d
// passed, and returns them all.
func (p *watchProc) collect(d time.Duration, done func([]string) bool) []string {
	var got []string
	timeout := time.After(d)
	for !done(got) {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-timeout:
			return got
		}
	}
	return got
}

// hasAll reports whether lines holds every one of want.
func hasAll(want ...string) func([]string) bool {
	return func(lines []string) bool {
		for _, w := range want {
			if !slices.Contains(lines, w) {
				return false
			}
		}
		return true
	}
}

// stop sends sig and returns the exit error.
func (p *watchProc) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() {
		for range p.errc {
		}
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("overlayd watch did not exit after a signal")
		return nil
	}
}

// triggerMisses makes the container's own stack send a real ARP request
// for an unknown on-link address (an L3 miss on vxlan1), and a real unicast
// frame to a MAC nobody has (an L2 miss on vxlan1).
func triggerMisses(t *testing.T, lab *missgen.Lab, ip, peerIP string, mac ethaddr.MAC) {
	t.Helper()
	c := lab.ContainerName
	nstest.Output(c, "ping", "-c", "1", "-W", "1", ip) // fails: nobody answers
	nstest.Run(t, c, "ip", "neigh", "replace", peerIP, "lladdr", mac.String(), "dev", "eth0", "nud", "permanent")
	nstest.Output(c, "ping", "-c", "1", "-W", "1", peerIP)
}

func TestWatchEndToEnd(t *testing.T) {
	lab := missgen.NewLab(t)
	bin := buildOverlayd(t)
	mac := ethaddr.MAC{0x02, 0x42, 0x0a, 0x41, 0x00, 0x66}

	t.Run("text", func(t *testing.T) {
		p := startWatch(t, bin, "--netns", lab.OverlayName, "--netns-dir", rtnl.DefaultNetNSDir)
		triggerMisses(t, lab, "10.65.0.5", "10.65.0.6", mac)
		want := []string{
			"L3 miss on vxlan1: who has 10.65.0.5?",
			"L2 miss on vxlan1: who has " + mac.String() + "?",
		}
		if got := p.collect(5*time.Second, hasAll(want...)); !hasAll(want...)(got) {
			t.Errorf("output %q lacks one of %q", got, want)
		}
		if err := p.stop(t, syscall.SIGINT); err != nil {
			t.Errorf("exit after SIGINT: %v", err)
		}
	})

	t.Run("json", func(t *testing.T) {
		p := startWatch(t, bin, "--netns", lab.OverlayName, "--json", "--dev", "vxlan1")
		triggerMisses(t, lab, "10.65.0.7", "10.65.0.8", mac)
		// The text subtest's misses may still be retried by the kernel (an
		// ARP retry arrives about a second later): only this subtest's IP
		// counts as its L3 miss.
		got := p.collect(5*time.Second, func(lines []string) bool {
			return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"l2miss"`) }) &&
				slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"10.65.0.7"`) })
		})
		kinds := map[string]watchRecord{}
		for _, l := range got {
			var r watchRecord
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if r.Kind == "l3miss" && r.IP != "10.65.0.7" {
				continue // an earlier subtest's retry
			}
			kinds[r.Kind] = r
		}
		if r := kinds["l3miss"]; r.IP != "10.65.0.7" || r.Dev != "vxlan1" || r.Ifindex != lab.VxlanIndex || r.State != "STALE" {
			t.Errorf("l3miss record %+v", r)
		}
		if r := kinds["l2miss"]; r.MAC != mac.String() || r.Dev != "vxlan1" || r.IP != "" {
			t.Errorf("l2miss record %+v", r)
		}
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	})

	t.Run("dev filter", func(t *testing.T) {
		br := startWatch(t, bin, "--netns", lab.OverlayName, "--dev", "br0")
		vx := startWatch(t, bin, "--netns", lab.OverlayName, "--dev", "vxlan1")
		triggerMisses(t, lab, "10.65.0.9", "10.65.0.10", mac)
		want := "L3 miss on vxlan1: who has 10.65.0.9?"
		if got := vx.collect(5*time.Second, hasAll(want)); !hasAll(want)(got) {
			t.Fatalf("--dev vxlan1: %q lacks %q", got, want)
		}
		if got := br.collect(500*time.Millisecond, func(l []string) bool { return len(l) > 0 }); len(got) != 0 {
			t.Errorf("--dev br0 printed vxlan1 misses: %q", got)
		}
		br.stop(t, syscall.SIGINT)
		vx.stop(t, syscall.SIGINT)
	})

	t.Run("app_solicit", func(t *testing.T) {
		o := lab.OverlayName
		nstest.Run(t, o, "ip", "addr", "add", "10.70.0.1/24", "dev", "br0")
		nstest.Run(t, o, "sysctl", "-q", "-w", "net.ipv4.neigh.br0.app_solicit=3")
		p := startWatch(t, bin, "--netns", o, "--dev", "br0")
		nstest.Output(o, "ping", "-c", "1", "-W", "1", "10.70.0.9")
		prefix := "app_solicit on br0: who has 10.70.0.9? (probes "
		got := p.collect(5*time.Second, func(l []string) bool {
			return slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, prefix) })
		})
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, prefix) }) {
			t.Errorf("output %q lacks %q...", got, prefix)
		}
		p.stop(t, syscall.SIGINT)
	})
}

func TestWatchUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"watch", "extra"}, 2},
		{[]string{"watch", "--rcvbuf", "-5"}, 2},
		{[]string{"watch", "--no-such-flag"}, 2},
		{[]string{"watch", "--netns", "a/b"}, 1},
		{[]string{"watch", "--help"}, 0},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if code := runMain(ctx, tt.args, &out, &errb); code != tt.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tt.args, code, tt.code, errb.String())
		}
	}
}

// TestLinkNamesExpire renames a device under watch's name cache: the old name
// is served until the cache entry is linkNamesTTL old, the new one after.
func TestLinkNamesExpire(t *testing.T) {
	ns, name := nstest.NetNS(t, "wn")
	c := nstest.Dial(t, ns)
	nstest.Run(t, name, "ip", "link", "add", "brA", "type", "bridge")
	l, err := c.LinkByName("brA")
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	names := newLinkNames(c)
	names.now = func() time.Time { return clock }
	if got := names.name(l.Index); got != "brA" {
		t.Fatalf("name = %q, want brA", got)
	}
	nstest.Run(t, name, "ip", "link", "set", "brA", "name", "brB")
	clock = clock.Add(linkNamesTTL - time.Second)
	if got := names.name(l.Index); got != "brA" {
		t.Fatalf("within the TTL: name = %q, want the cached brA", got)
	}
	clock = clock.Add(2 * time.Second)
	if got := names.name(l.Index); got != "brB" {
		t.Fatalf("after the TTL: name = %q, want brB", got)
	}
	if got := names.name(l.Index + 1000); got != "if"+strconv.Itoa(int(l.Index+1000)) {
		t.Fatalf("unknown index: name = %q", got)
	}
}
