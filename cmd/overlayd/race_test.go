package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestConcurrentCreate: 20 rounds of two `overlayd create` of one node at
// once. In even rounds both ask for the same overlay: both succeed (the
// second finds the first's). In odd rounds they differ (MTU 1450 and
// 1400): exactly one succeeds and the other is refused naming the
// difference, without deleting anything the winner made. Each round ends
// with one working overlay (status exits 0 with no problem, a container
// attached in it reaches the gateway); after reset, status exits non-zero.
func TestConcurrentCreate(t *testing.T) {
	n := newSimNode(t, "cc", "")
	n.ip("link", "add", "u0", "type", "veth", "peer", "name", "u1")
	n.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
	n.ip("link", "set", "u0", "up")
	n.ip("link", "set", "u1", "up")
	for round := range 20 {
		mtus := []string{"1450", "1450"}
		if round%2 == 1 {
			mtus[1] = "1400"
		}
		var wg sync.WaitGroup
		res := make([]result, 2)
		for i := range 2 {
			wg.Go(func() { res[i] = n.run("create", "--local", "192.0.2.2", "--mtu", mtus[i]) })
		}
		wg.Wait()
		won := 0
		for i, r := range res {
			switch {
			case r.code == 0:
				won++
			case round%2 == 1 && strings.Contains(r.stderr, "MTU"):
			default:
				t.Fatalf("round %d: create --mtu %s: exit %d\n%s%s", round, mtus[i], r.code, r.stdout, r.stderr)
			}
		}
		if want := 2 - round%2; won != want {
			t.Fatalf("round %d: %d creates succeeded, want %d:\n%+v", round, won, want, res)
		}
		r := n.run("status", "--json")
		var st overlay.Status
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Problems) > 0 || st.Gone {
			t.Fatalf("round %d: status exit %d, problems %q\n%s%s", round, r.code, st.Problems, r.stdout, r.stderr)
		}
		n.ok("attach", "pink", "--ip", "198.51.100.2/24")
		if out, err := n.in("pink", "ping", "-c1", "-W2", "198.51.100.1"); err != nil {
			t.Fatalf("round %d: ping the gateway from a container: %v\n%s", round, err, out)
		}
		n.ok("detach", "pink")
		n.ok("reset")
		if r := n.run("status"); r.code == 0 {
			t.Fatalf("round %d: status exits 0 after reset:\n%s", round, r.stdout)
		}
	}
}

// TestStatusFailsWhenOverlayGone: status exits non-zero, naming what is
// missing, when the recorded overlay's namespace is gone from the kernel.
func TestStatusFailsWhenOverlayGone(t *testing.T) {
	n := newSimNode(t, "sg", "")
	n.ip("link", "add", "u0", "type", "veth", "peer", "name", "u1")
	n.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
	n.ip("link", "set", "u0", "up")
	n.ok("create", "--local", "192.0.2.2")
	n.ok("status")
	if err := rtnl.DeleteNetNS(n.dir, "overns"); err != nil {
		t.Fatal(err)
	}
	r := n.run("status")
	if r.code == 0 || !strings.Contains(r.stdout, "overns") || !strings.Contains(r.stderr, "not in the kernel") {
		t.Errorf("status with the overlay namespace gone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestResetStopsDaemon: reset with `overlayd run` running stops it (it
// exits, its lock is gone), and a new create and run then work with no
// manual step.
func TestResetStopsDaemon(t *testing.T) {
	n := newSimNode(t, "rs", "")
	n.ip("link", "add", "u0", "type", "veth", "peer", "name", "u1")
	n.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
	n.ip("link", "set", "u0", "up")
	n.ok("create", "--local", "192.0.2.2")
	n.ok("attach", "pink", "--ip", "198.51.100.2/24")
	d := n.startDaemon()
	pid := d.cmd.Process.Pid
	out := n.ok("reset")
	if !strings.Contains(out, "stopped overlayd run (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("reset output does not say it stopped the daemon (pid %d):\n%s", pid, out)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("the daemon stopped by reset exited with %v:\n%s", err, d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the daemon (pid %d) still runs 5 s after reset:\n%s", pid, d)
	}
	if _, err := os.Stat(filepath.Join(n.state, "run.lock")); !os.IsNotExist(err) {
		t.Errorf("run.lock after reset: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still exists after reset", pid)
	}
	n.ok("create", "--local", "192.0.2.2")
	d2 := n.startDaemon()
	if !strings.Contains(d2.String(), "overlayd running") {
		t.Errorf("the new daemon did not start:\n%s", d2)
	}
}

// TestDaemonExitsWhenOverlayGone: a daemon whose overlay disappears (its
// namespace deleted by hand, or by an older overlayd's reset) logs it and
// exits non-zero within a reconcile interval.
func TestDaemonExitsWhenOverlayGone(t *testing.T) {
	for _, how := range []string{"netns deleted", "state removed"} {
		t.Run(how, func(t *testing.T) {
			n := newSimNode(t, "og", "")
			n.ip("link", "add", "u0", "type", "veth", "peer", "name", "u1")
			n.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
			n.ip("link", "set", "u0", "up")
			n.ok("create", "--local", "192.0.2.2")
			d := n.startDaemon("--reconcile", "500ms")
			switch how {
			case "netns deleted":
				if err := rtnl.DeleteNetNS(n.dir, "overns"); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.Remove(filepath.Join(n.state, "overlay.json")); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-d.done:
				if err == nil {
					t.Errorf("the daemon exited 0 when its overlay disappeared:\n%s", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the daemon still runs 5 s after its overlay disappeared (%s):\n%s", how, d)
			}
			if !strings.Contains(d.String(), "the overlay disappeared") {
				t.Errorf("the daemon did not log why it stopped:\n%s", d)
			}
		})
	}
}
