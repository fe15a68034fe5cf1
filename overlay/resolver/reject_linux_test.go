package resolver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// hostileChecker is the checker of the resolver lab's overlay
// (198.51.100.0/24, gateway .1) on a node at 192.0.2.2/24.
func hostileChecker() *registry.Checker {
	return registry.NewChecker(registry.Policy{Subnet: netip.MustParsePrefix("198.51.100.0/24"),
		Gateway: netip.MustParseAddr("198.51.100.1"), Underlay: netip.MustParsePrefix("192.0.2.2/24")}, nil, time.Hour)
}

// startChecked runs a resolver with check on lab's vxlan, fed by a real
// monitor, with the feed f (nil: reactive) until the test ends.
func (lab *resolverLab) startChecked(t *testing.T, check *registry.Checker, f registry.ChangeFeed) *Resolver {
	t.Helper()
	r, _ := lab.serve(t, Config{Subnet: netip.MustParsePrefix("198.51.100.0/24"), Checker: check, Feed: f, Tuning: Tuning{ReconcileInterval: -1}})
	return r
}

// TestResolverReconcileRemovesRejected: a neighbour entry with our mark for
// a record the checker rejects (the gateway's, as an earlier version
// programmed it from a hostile record) is removed by the first pass, as a
// record that is gone; misses for the hostile records program nothing; the
// honest record is programmed.
func TestResolverReconcileRemovesRejected(t *testing.T) {
	lab := newResolverLab(t)
	lab.register(t, "198.51.100.1", "02:42:c6:33:64:01", "192.0.2.3")  // the gateway
	lab.register(t, "198.51.100.20", "02:42:c6:33:64:20", "127.0.0.1") // loopback VTEP
	lab.register(t, "198.51.100.21", "02:42:c6:33:64:21", "198.51.100.2")
	honest := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	nstest.Run(t, lab.over, "ip", "neigh", "replace", "198.51.100.1", "lladdr", "02:42:c6:33:64:01", "dev", "vx0", "nud", "permanent", "proto", "214")
	check := hostileChecker()
	r := lab.startChecked(t, check, nil)
	eventually(t, "the first pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	if n := findNeigh(lab.neighbours(t), "198.51.100.1"); n != nil {
		t.Errorf("the gateway's entry, from a rejected record, is left: %+v", n)
	}
	for _, ip := range []string{"198.51.100.20", "198.51.100.21", honest.IP.String()} {
		lab.ping(ip)
	}
	eventually(t, "the honest record programmed", func() bool { return findNeigh(lab.neighbours(t), "198.51.100.3") != nil })
	for _, ip := range []string{"198.51.100.20", "198.51.100.21"} {
		if n := findNeigh(lab.neighbours(t), ip); n != nil {
			t.Errorf("entry programmed from a rejected record: %+v", n)
		}
	}
	for _, f := range lab.fdb(t) {
		if f.Dst == "127.0.0.1" || f.Dst == "198.51.100.2" {
			t.Errorf("FDB entry to a rejected VTEP: %+v", f)
		}
	}
	for _, why := range []registry.Reason{registry.ReasonIPGateway, registry.ReasonVTEPLoopback, registry.ReasonVTEPInOverlay} {
		if check.Rejections(why) == 0 {
			t.Errorf("no rejection counted for %s", why)
		}
	}
}

// TestResolverFeedRejects: a change feed delivering hostile records and an
// entry that is no record programs only the honest record; each rejection
// is counted under its reason.
func TestResolverFeedRejects(t *testing.T) {
	lab := newResolverLab(t)
	feed := make(chanFeed, 16)
	check := hostileChecker()
	r := lab.startChecked(t, check, feed)
	rec := func(ip, mac, vtep string) registry.Record {
		return registry.Record{IP: netip.MustParseAddr(ip), MAC: mustMAC(t, mac), VTEP: netip.MustParseAddr(vtep)}
	}
	honest := rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	for _, c := range []registry.Change{
		{Kind: registry.ChangePut, Record: rec("198.51.100.255", "02:42:c6:33:64:ff", "192.0.2.3")},
		{Kind: registry.ChangePut, Record: rec("198.51.100.4", "02:42:c6:33:64:04", "255.255.255.255")},
		{Kind: registry.ChangePut, Record: rec("198.51.100.5", "01:00:5e:00:00:05", "192.0.2.3")},
		{Kind: registry.ChangeRejected, Rejected: registry.Rejected{Key: "arp/junk", Reason: registry.ReasonMalformed}},
		{Kind: registry.ChangePut, Record: honest},
		{Kind: registry.ChangeSynced},
	} {
		feed <- c
	}
	eventually(t, "the honest record programmed", func() bool {
		return findNeigh(lab.neighbours(t), "198.51.100.3") != nil && r.FeedStats().Synced
	})
	if s := r.FeedStats(); s.Programmed != 1 {
		t.Errorf("%d records programmed from the feed, want 1", s.Programmed)
	}
	for _, n := range lab.neighbours(t) {
		if n.Dst != "198.51.100.3" {
			t.Errorf("neighbour from a rejected record: %+v", n)
		}
	}
	for _, f := range lab.fdb(t) {
		if f.Dst == "255.255.255.255" {
			t.Errorf("FDB entry to the broadcast address: %+v", f)
		}
	}
	for _, why := range []registry.Reason{registry.ReasonIPBroadcast, registry.ReasonVTEPBroadcast, registry.ReasonMACNotUnicast, registry.ReasonMalformed} {
		if check.Rejections(why) != 1 {
			t.Errorf("%s: %d rejections, want 1", why, check.Rejections(why))
		}
	}
}
