package rtnl_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

func TestSetNeighTable(t *testing.T) {
	ns, name := nstest.NetNS(t, "nt")
	c := nstest.Dial(t, ns)
	if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, neighLinkBody("br0", "bridge", 0, nil)); err != nil {
		t.Fatalf("create br0: %v", err)
	}
	br := neighIfindex(t, name, "br0")
	proc := func(family, file string) string {
		t.Helper()
		return strings.TrimSpace(nstest.Run(t, name, "cat", "/proc/sys/net/"+family+"/neigh/br0/"+file))
	}
	// Values that differ from the kernel defaults, so a no-op cannot pass.
	if got := proc("ipv4", "app_solicit"); got != "0" {
		t.Fatalf("app_solicit starts at %s, want the default 0", got)
	}

	p := rtnl.NeighTableParams{
		Ifindex:           br,
		AppProbes:         new(uint32(3)),
		UcastProbes:       new(uint32(5)),
		McastProbes:       new(uint32(4)),
		McastReprobes:     new(uint32(2)),
		QueueLenBytes:     new(uint32(70000)),
		RetransTime:       new(1500 * time.Millisecond),
		BaseReachableTime: new(45 * time.Second),
		DelayProbeTime:    new(7 * time.Second),
	}
	if err := c.SetNeighTable(p); err != nil {
		t.Fatalf("SetNeighTable: %v", err)
	}
	for file, want := range map[string]string{
		"app_solicit":            "3",
		"ucast_solicit":          "5",
		"mcast_solicit":          "4",
		"mcast_resolicit":        "2",
		"unres_qlen_bytes":       "70000",
		"retrans_time_ms":        "1500",
		"base_reachable_time_ms": "45000",
		"delay_first_probe_time": "7",
	} {
		if got := proc("ipv4", file); got != want {
			t.Errorf("ipv4 %s = %s, want %s", file, got, want)
		}
	}
	// The IPv6 table is separate and untouched.
	if got := proc("ipv6", "app_solicit"); got != "0" {
		t.Errorf("ipv6 app_solicit = %s, want 0", got)
	}

	// The getter reads the same values back.
	got, err := c.NeighTable(unix.AF_INET, br)
	if err != nil {
		t.Fatalf("NeighTable: %v", err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"AppProbes", *got.AppProbes, uint32(3)},
		{"UcastProbes", *got.UcastProbes, uint32(5)},
		{"McastProbes", *got.McastProbes, uint32(4)},
		{"McastReprobes", *got.McastReprobes, uint32(2)},
		{"QueueLenBytes", *got.QueueLenBytes, uint32(70000)},
		{"RetransTime", *got.RetransTime, 1500 * time.Millisecond},
		{"BaseReachableTime", *got.BaseReachableTime, 45 * time.Second},
		{"DelayProbeTime", *got.DelayProbeTime, 7 * time.Second},
	} {
		if f.got != f.want {
			t.Errorf("NeighTable %s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if got.Family != unix.AF_INET || got.Ifindex != br || got.ReachableTime <= 0 {
		t.Errorf("NeighTable header: %+v", got)
	}

	// A partial update changes only what is set; IPv6 goes to ndisc_cache.
	if err := c.SetNeighTable(rtnl.NeighTableParams{Family: unix.AF_INET6, Ifindex: br, AppProbes: new(uint32(1))}); err != nil {
		t.Fatalf("SetNeighTable AF_INET6: %v", err)
	}
	if g4, g6 := proc("ipv4", "app_solicit"), proc("ipv6", "app_solicit"); g4 != "3" || g6 != "1" {
		t.Errorf("app_solicit ipv4 %s ipv6 %s, want 3 and 1", g4, g6)
	}

	// Outside the initial netns the defaults (ifindex 0) do not exist, nor
	// does a device that is not there.
	for _, ifindex := range []int32{0, 9999} {
		err := c.SetNeighTable(rtnl.NeighTableParams{Ifindex: ifindex, AppProbes: new(uint32(1))})
		var oe *rtnl.OpError
		if !errors.Is(err, unix.ENOENT) || !errors.As(err, &oe) || oe.Op != "RTM_SETNEIGHTBL" {
			t.Errorf("SetNeighTable ifindex %d: got %v, want ENOENT", ifindex, err)
		}
	}
}
