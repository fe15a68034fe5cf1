package guard

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestFeedVTEPs: a VTEP is listed while it has a record; synced only after
// the feed's ChangeSynced and until it starts over.
func TestFeedVTEPs(t *testing.T) {
	rec := func(ip, vtep string) registry.Record {
		return registry.Record{IP: netip.MustParseAddr(ip), MAC: ethaddr.MAC{2, 0x42, 1, 2, 3, 4}, VTEP: netip.MustParseAddr(vtep)}
	}
	put := func(r registry.Record) registry.Change { return registry.Change{Kind: registry.ChangePut, Record: r} }
	del := func(r registry.Record) registry.Change {
		return registry.Change{Kind: registry.ChangeDelete, Record: r}
	}
	synced := registry.Change{Kind: registry.ChangeSynced}
	a1, a2, b1 := rec("198.51.100.1", "192.0.2.1"), rec("198.51.100.2", "192.0.2.1"), rec("198.51.100.3", "192.0.2.2")
	moved := rec("198.51.100.3", "192.0.2.3")
	for _, tc := range []struct {
		name    string
		changes []registry.Change
		restart bool // Restart after the changes
		want    []string
		synced  bool
		signal  bool
	}{
		{"none", nil, false, nil, false, false},
		{"partial", []registry.Change{put(a1), put(b1)}, false, []string{"192.0.2.1", "192.0.2.2"}, false, true},
		{"synced", []registry.Change{put(a1), put(b1), synced}, false, []string{"192.0.2.1", "192.0.2.2"}, true, true},
		{"one of two records left", []registry.Change{put(a1), put(a2), synced, del(a1)}, false, []string{"192.0.2.1"}, true, true},
		{"last record gone", []registry.Change{put(a1), put(a2), put(b1), synced, del(a1), del(a2)}, false, []string{"192.0.2.2"}, true, true},
		{"moved", []registry.Change{put(a1), put(b1), synced, del(b1), put(moved)}, false, []string{"192.0.2.1", "192.0.2.3"}, true, true},
		{"delete of an unknown VTEP", []registry.Change{put(a1), synced, del(b1)}, false, []string{"192.0.2.1"}, true, true},
		{"started over", []registry.Change{put(a1), synced}, true, nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewFeedVTEPs()
			for _, c := range tc.changes {
				v.Apply(c)
			}
			if tc.restart {
				v.Restart()
			}
			vteps, synced := v.VTEPs()
			var got []string
			for _, x := range vteps {
				got = append(got, x.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || synced != tc.synced {
				t.Errorf("VTEPs = %v, synced %v; want %v, %v", got, synced, tc.want, tc.synced)
			}
			select {
			case <-v.Changed():
				if !tc.signal {
					t.Error("signalled, want no signal")
				}
			default:
				if tc.signal {
					t.Error("not signalled")
				}
			}
		})
	}
}

// chanFeed is a ChangeFeed of changes sent by hand.
type chanFeed chan registry.Change

func (f chanFeed) Watch(context.Context) (<-chan registry.Change, error) { return f, nil }

// TestTeeHoldsNewVTEP: while an allowlist follows the counts, Tee passes a
// record whose VTEP is new on only once the allowlist committed the VTEP;
// records of allowed VTEPs pass at once, and so does everything once
// nothing follows.
func TestTeeHoldsNewVTEP(t *testing.T) {
	rec := func(ip, vtep string) registry.Change {
		return registry.Change{Kind: registry.ChangePut, Record: registry.Record{IP: netip.MustParseAddr(ip), MAC: ethaddr.MAC{2, 0x42, 1, 2, 3, 4}, VTEP: netip.MustParseAddr(vtep)}}
	}
	v := NewFeedVTEPs()
	end := v.follow(netip.MustParseAddr("192.0.2.1"))
	in := make(chanFeed, 4)
	out, err := Tee(in, v).Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	passes := func(within time.Duration) bool {
		select {
		case <-out:
			return true
		case <-time.After(within):
			return false
		}
	}
	in <- rec("198.51.100.2", "192.0.2.7")
	if passes(50 * time.Millisecond) {
		t.Fatal("a record of a VTEP the allowlist does not hold passed")
	}
	v.commit(map[netip.Addr]bool{netip.MustParseAddr("192.0.2.7"): true})
	if !passes(time.Second) {
		t.Fatal("the record was held after its VTEP was committed")
	}
	in <- rec("198.51.100.3", "192.0.2.7") // allowed already
	if !passes(time.Second) {
		t.Fatal("a record of an allowed VTEP was held")
	}
	in <- rec("198.51.100.4", "2001:db8::1") // another family: never allowed, never held
	if !passes(time.Second) {
		t.Fatal("a record of a VTEP of another family was held")
	}
	in <- rec("198.51.100.5", "192.0.2.8")
	end() // the follower stops: waiting ends
	if !passes(time.Second) {
		t.Fatal("a record stayed held after the follower stopped")
	}
	start := time.Now()
	end = v.follow(netip.MustParseAddr("192.0.2.1"))
	defer end()
	in <- rec("198.51.100.6", "192.0.2.9") // never committed: held AllowWait at most
	if !passes(2 * AllowWait) {
		t.Fatal("a record was held beyond AllowWait")
	}
	if d := time.Since(start); d < AllowWait {
		t.Errorf("held %v, want AllowWait (%v)", d, AllowWait)
	}
}
