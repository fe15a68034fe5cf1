package wake

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a, b, c := netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("10.65.0.2"), netip.MustParseAddr("fd00::3")
	buf := make([]byte, MaxFrame)
	counts := func(tb *Table, now time.Time) (uint64, [dropReasons]uint64) { return tb.counts(now) }

	t.Run("take once", func(t *testing.T) {
		tb := NewTable(4, time.Second)
		tb.Put(a, arpRequest(a), t0)
		if n := tb.Take(a, t0.Add(time.Millisecond), buf); n != 60 || !bytes.Equal(buf[:n], arpRequest(a)) {
			t.Fatalf("Take = %d bytes %x", n, buf[:n])
		}
		if n := tb.Take(a, t0.Add(time.Millisecond), buf); n != 0 {
			t.Errorf("second Take = %d, want 0", n)
		}
		if n := tb.Take(b, t0, buf); n != 0 {
			t.Errorf("Take of a target never captured = %d", n)
		}
	})
	t.Run("latest per target", func(t *testing.T) {
		tb := NewTable(4, time.Second)
		old := arpRequest(a)
		old[6] = 0xaa
		tb.Put(a, old, t0)
		tb.Put(a, arpRequest(a), t0.Add(500*time.Millisecond))
		if n := tb.Take(a, t0.Add(1200*time.Millisecond), buf); !bytes.Equal(buf[:n], arpRequest(a)) {
			t.Errorf("Take = %x, want the newer request (alive until 1.5 s)", buf[:n])
		}
		if _, d := counts(tb, t0); d[dropSuperseded] != 1 {
			t.Errorf("superseded = %d, want 1", d[dropSuperseded])
		}
	})
	t.Run("expiry", func(t *testing.T) {
		tb := NewTable(4, time.Second)
		tb.Put(a, arpRequest(a), t0)
		tb.Put(b, arpRequest(b), t0)
		if n := tb.Take(a, t0.Add(time.Second), buf); n != 0 {
			t.Errorf("Take after the TTL = %d, want 0", n)
		}
		if e, _ := counts(tb, t0.Add(2*time.Second)); e != 2 || tb.Len() != 0 {
			t.Errorf("expired %d, %d held; want 2, 0", e, tb.Len())
		}
	})
	t.Run("full", func(t *testing.T) {
		tb := NewTable(2, time.Second)
		tb.Put(a, arpRequest(a), t0)
		tb.Put(b, arpRequest(b), t0.Add(time.Millisecond))
		tb.Put(c, neighborSolicitation(c), t0.Add(2*time.Millisecond)) // a, the oldest, goes
		if tb.Len() != 2 || tb.Take(a, t0, buf) != 0 || tb.Take(b, t0, buf) == 0 || tb.Take(c, t0, buf) == 0 {
			t.Errorf("after eviction: want b and c held, a gone")
		}
		tb.Put(a, arpRequest(a), t0)
		tb.Put(b, arpRequest(b), t0)
		tb.Put(c, arpRequest(b), t0.Add(3*time.Second)) // both expired: swept, none evicted
		e, d := counts(tb, t0.Add(3*time.Second))
		if d[dropEvicted] != 1 || e != 2 {
			t.Errorf("evicted %d expired %d, want 1 and 2", d[dropEvicted], e)
		}
	})
	t.Run("oversize", func(t *testing.T) {
		tb := NewTable(2, time.Second)
		if tb.Put(a, make([]byte, MaxFrame+1), t0) || tb.Len() != 0 {
			t.Error("an oversize frame was kept")
		}
		if _, d := counts(tb, t0); d[dropOversize] != 1 {
			t.Errorf("oversize = %d", d[dropOversize])
		}
	})
}

// TestTableDoesNotAllocate: capturing and answering reuse the table's
// slots.
func TestTableDoesNotAllocate(t *testing.T) {
	tb := NewTable(8, time.Second)
	a := netip.MustParseAddr("10.65.0.1")
	f := arpRequest(a)
	buf := make([]byte, MaxFrame)
	now := time.Unix(1000, 0)
	tb.Put(a, f, now)
	tb.Take(a, now, buf)
	if n := testing.AllocsPerRun(100, func() {
		tb.Put(a, f, now)
		tb.Take(a, now, buf)
	}); n != 0 {
		t.Errorf("Put+Take allocate %v times", n)
	}
}
