package etcdreg

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestRejectedNotIncomplete: keys and values that are no record (junk
// keys, a value over 128 bytes, garbage) are reported as rejected beside a
// listing that is complete (no error), by lookups as a registry.Rejected
// that never holds the value, and by the change feed as ChangeRejected
// before its first ChangeSynced; the honest record is listed and delivered.
func TestRejectedNotIncomplete(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "rj", Options{NoLease: true})
	ctx := ctxT(t, 30*time.Second)
	good := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := a.Register(ctx, good); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("HUGE-VALUE-NEVER-SHOWN", 20000) // 440 KB
	raw := map[string]string{
		"arp/198.51.100.9":      huge,
		"arp/198.51.100.8":      "junk",
		"fdb/02:42:c6:33:64:07": "junk",
		"arp/2001:DB8::1":       "02:42:c6:33:64:06", // not the canonical text
	}
	for i := range 50 {
		raw[fmt.Sprintf("arp/junk-%d", i)] = "x"
	}
	for k, v := range raw {
		if _, err := a.Client().Put(ctx, a.Prefix()+k, v); err != nil {
			t.Fatal(err)
		}
	}
	recs, rejected, err := a.ListRejected(ctx)
	if err != nil || !slices.Equal(recs, []registry.Record{good}) || len(rejected) != len(raw) {
		t.Fatalf("ListRejected = %v, %d rejected, %v; want the good record, %d rejected, no error", recs, len(rejected), err, len(raw))
	}
	for _, rj := range rejected {
		want := registry.ReasonMalformed
		if rj.Key == "arp/198.51.100.9" {
			want = registry.ReasonOversized
		}
		if _, ok := raw[rj.Key]; !ok || rj.Reason != want {
			t.Errorf("rejected %s (%s), want %s", rj.Key, rj.Reason, want)
		}
	}
	if l, err := a.List(ctx); err != nil || !slices.Equal(l, recs) {
		t.Errorf("List = %v, %v; want ListRejected's records, no error", l, err)
	}
	_, err = a.LookupMAC(ctx, netip.MustParseAddr("198.51.100.9"))
	var rj registry.Rejected
	if !errors.As(err, &rj) || rj.Reason != registry.ReasonOversized || strings.Contains(err.Error(), "HUGE") || len(err.Error()) > 200 {
		t.Errorf("LookupMAC of the huge value: %.300v; want a short rejection (oversized) without the value", err)
	}
	if _, err := a.LookupVTEP(ctx, mustMAC("02:42:c6:33:64:07")); !errors.Is(err, registry.ErrRejected) {
		t.Errorf("LookupVTEP of garbage: %v, want a rejection", err)
	}

	ch, err := a.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var puts []registry.Record
	seen := map[string]bool{}
	for c := range ch {
		if c.Kind == registry.ChangeSynced {
			break
		}
		switch c.Kind {
		case registry.ChangePut:
			puts = append(puts, c.Record)
		case registry.ChangeRejected:
			seen[c.Rejected.Key] = true
		}
	}
	if !slices.Equal(puts, []registry.Record{good}) || len(seen) != len(raw) {
		t.Errorf("the feed's first listing: puts %v, %d keys rejected; want the good record and %d rejected", puts, len(seen), len(raw))
	}
}
