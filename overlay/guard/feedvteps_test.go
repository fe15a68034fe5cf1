package guard

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestFeedVTEPs: a VTEP is listed while it has a record; synced only after
// the feed's ChangeSynced and until it starts over.
func TestFeedVTEPs(t *testing.T) {
	rec := func(ip, vtep string) registry.Record {
		return registry.Record{IP: netip.MustParseAddr(ip), MAC: registry.MAC{2, 0x42, 1, 2, 3, 4}, VTEP: netip.MustParseAddr(vtep)}
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
