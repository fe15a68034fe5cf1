package rtnltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

const goldenDir = "../../testdata/kernel"

// capture reads a notification captured from the kernel (testdata/kernel),
// in host byte order.
func capture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := golden.Read(goldenDir, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventLine is a one-line summary of an event, to compare sequences.
func eventLine(ev *rtnl.Event) string {
	switch ev.Kind {
	case rtnl.EventMiss:
		m := ev.Miss
		switch m.Kind {
		case rtnl.MissL2:
			return fmt.Sprintf("%v dev %d %v vni %d", m.Kind, m.Ifindex, ethaddr.MAC(m.MAC), m.VNI)
		case rtnl.MissAppSolicit:
			return fmt.Sprintf("%v dev %d %v probes %d", m.Kind, m.Ifindex, m.IP, m.Probes)
		}
		return fmt.Sprintf("%v dev %d %v vni %d netnsid %d", m.Kind, m.Ifindex, m.IP, m.VNI, m.LinkNetnsID)
	case rtnl.EventNeighAdd, rtnl.EventNeighDelete:
		n := &ev.Neigh
		return fmt.Sprintf("%v dev %d %v %v port %d vni %d", ev.Kind, n.Ifindex, ethaddr.MAC(n.LLAddr), n.Dst, n.Port, n.VNI)
	}
	return ev.Kind.String()
}

// TestNotifierMonitor: a Monitor on a Notifier delivers the kernel's own
// miss and change notifications (captured in testdata/kernel) decoded as
// on a socket, a scripted overrun as EventOverrun between them, applies
// MissesOnly and ChangesOnly as the socket filters do, counts what it saw,
// and ends with nil at the end of the script.
func TestNotifierMonitor(t *testing.T) {
	l3 := "l3miss dev 3 198.51.100.9 vni 16777216 netnsid 1"
	l3v6 := "l3miss dev 3 fe80::42:c6ff:fe33:6409 vni 16777216 netnsid 1"
	l2 := "l2miss dev 3 02:42:c6:33:64:07 vni 0"
	app := "app_solicit dev 2 198.51.100.8 probes 3"
	fdb := "neigh_add dev 3 02:42:c6:33:64:03 192.0.2.3 port 4790 vni 43"
	for _, tc := range []struct {
		name string
		f    rtnl.MonitorFilter
		want []string
		// stats
		misses, adds, ignored, bad uint64
	}{
		{"all", rtnl.MonitorAll, []string{l3, fdb, "overrun", l2, l3v6, app}, 4, 1, 0, 1},
		{"misses_only", rtnl.MonitorMisses, []string{l3, "overrun", l2, l3v6, app}, 4, 0, 0, 1},
		{"changes_only", rtnl.MonitorChanges, []string{fdb, "overrun"}, 0, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kernel := rtnltest.NewNotifier()
			kernel.Datagram(capture(t, "l3miss"))
			kernel.Datagram(capture(t, "fdb_echo"))
			kernel.Overrun()
			kernel.Datagram(capture(t, "l2miss"))
			// Two misses packed in one datagram, then a truncated one.
			kernel.Datagram(append(capture(t, "l3miss_v6"), capture(t, "app_solicit")...))
			bad := capture(t, "l2miss")
			kernel.Datagram(bad[:len(bad)-8])
			kernel.End()

			m := rtnl.NewMonitor(kernel, tc.f)
			defer m.Close()
			var got []string
			if err := m.Run(context.Background(), func(ev *rtnl.Event) error {
				got = append(got, eventLine(ev))
				return nil
			}); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			st := m.Stats()
			if st.Misses() != tc.misses || st.NeighAdds != tc.adds || st.Overruns != 1 || st.DecodeErrors != tc.bad || st.Ignored != tc.ignored {
				t.Errorf("stats %+v: want %d misses, %d adds, 1 overrun, %d decode errors, %d ignored", st, tc.misses, tc.adds, tc.bad, tc.ignored)
			}
			if kernel.Pending() != 0 {
				t.Errorf("%d scripted notifications not received", kernel.Pending())
			}
		})
	}
}

// TestNotifierMonitorStops: Run on a Notifier with nothing scripted blocks
// until its context ends (context.Canceled) or the monitor is closed (nil),
// and after a cancelled Run the next one delivers what is scripted
// meanwhile; a callback's error ends Run as is. Resync, which needs a
// request socket, fails with a clear error.
func TestNotifierMonitorStops(t *testing.T) {
	kernel := rtnltest.NewNotifier()
	m := rtnl.NewMonitor(kernel, rtnl.MonitorAll)
	defer m.Close()
	noop := func(*rtnl.Event) error { return nil }
	if err := m.Resync(rtnl.NeighFilter{}, func(*rtnl.NeighMessage) error { return nil }); err == nil || !strings.Contains(err.Error(), "Transport") {
		t.Errorf("Resync on a Transport: %v, want an error saying it needs a socket", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, noop) }()
	time.Sleep(10 * time.Millisecond) // let it block in Receive (either order passes)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still blocked 5s after its context was cancelled")
	}

	kernel.Datagram(capture(t, "l3miss"))
	stop := errors.New("stop")
	var got []string
	err := m.Run(context.Background(), func(ev *rtnl.Event) error {
		got = append(got, eventLine(ev))
		return stop
	})
	if !errors.Is(err, stop) || len(got) != 1 || got[0] != "l3miss dev 3 198.51.100.9 vni 16777216 netnsid 1" {
		t.Fatalf("second Run: %v, events %q; want the callback's error after the l3miss", err, got)
	}

	go func() { done <- m.Run(context.Background(), noop) }()
	time.Sleep(10 * time.Millisecond)
	m.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still blocked 5s after Close")
	}
}

// TestNotifierSendFails: a Notifier carries notifications only.
func TestNotifierSendFails(t *testing.T) {
	if err := rtnltest.NewNotifier().Send(make([]byte, 16)); err == nil {
		t.Error("Send succeeded")
	}
}
