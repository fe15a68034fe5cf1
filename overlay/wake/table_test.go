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
	counts := func(tb *Table, now time.Time) (uint64, [dropReasons]uint64) { return tb.counts(now) }

	t.Run("take once", func(t *testing.T) {
		tb := NewTable(4, time.Second)
		tb.Put(a, arpRequest(a), t0)
		if got := take(tb, a, t0.Add(time.Millisecond)); len(got) != 1 || !bytes.Equal(got[0], arpRequest(a)) {
			t.Fatalf("Take = %x", got)
		}
		if got := take(tb, a, t0.Add(time.Millisecond)); len(got) != 0 {
			t.Errorf("second Take = %x, want none", got)
		}
		if got := take(tb, b, t0); len(got) != 0 {
			t.Errorf("Take of a target never captured = %x", got)
		}
	})
	t.Run("latest per sender", func(t *testing.T) {
		tb := NewTable(8, time.Second)
		old := arpRequest(a)
		old[20] = 0xaa // an older request of the same sender
		tb.Put(a, old, t0)
		tb.Put(a, arpRequest(a), t0.Add(500*time.Millisecond))
		other := fromSender(arpRequest(a), 0x11)
		tb.Put(a, other, t0.Add(600*time.Millisecond))
		got := take(tb, a, t0.Add(1200*time.Millisecond))
		if len(got) != 2 || !bytes.Equal(got[0], arpRequest(a)) || !bytes.Equal(got[1], other) {
			t.Errorf("Take = %x, want each sender's latest request (alive until 1.5 s)", got)
		}
		if _, d := counts(tb, t0); d[dropSuperseded] != 1 {
			t.Errorf("superseded = %d, want 1", d[dropSuperseded])
		}
	})
	t.Run("senders per target", func(t *testing.T) {
		tb := NewTable(16, time.Second)
		for i := range SendersPerTarget + 1 { // the first sender's goes
			tb.Put(a, fromSender(arpRequest(a), byte(i)), t0.Add(time.Duration(i)*time.Millisecond))
		}
		got := take(tb, a, t0)
		if len(got) != SendersPerTarget || got[0][11] == 0 && got[1][11] == 0 {
			t.Errorf("Take = %x, want the %d latest senders", got, SendersPerTarget)
		}
		if tb.Len() != 0 {
			t.Errorf("%d left after Take", tb.Len())
		}
	})
	t.Run("expiry", func(t *testing.T) {
		tb := NewTable(4, time.Second)
		tb.Put(a, arpRequest(a), t0)
		tb.Put(b, arpRequest(b), t0)
		if got := take(tb, a, t0.Add(time.Second)); len(got) != 0 {
			t.Errorf("Take after the TTL = %x, want none", got)
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
		if tb.Len() != 2 || len(take(tb, a, t0)) != 0 || len(take(tb, b, t0)) != 1 || len(take(tb, c, t0)) != 1 {
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

// take returns copies of the frames Take passes for target.
func take(tb *Table, target netip.Addr, now time.Time) [][]byte {
	var out [][]byte
	tb.Take(target, now, func(f []byte) { out = append(out, bytes.Clone(f)) })
	return out
}

// fromSender returns f with its Ethernet source's last byte set to b.
func fromSender(f []byte, b byte) []byte {
	f = bytes.Clone(f)
	f[11] = b
	return f
}

// TestTableDoesNotAllocate: capturing and answering reuse the table's
// slots.
func TestTableDoesNotAllocate(t *testing.T) {
	tb := NewTable(8, time.Second)
	a := netip.MustParseAddr("10.65.0.1")
	f := arpRequest(a)
	now := time.Unix(1000, 0)
	sink := func([]byte) {}
	tb.Put(a, f, now)
	tb.Take(a, now, sink)
	if n := testing.AllocsPerRun(100, func() {
		tb.Put(a, f, now)
		tb.Take(a, now, sink)
	}); n != 0 {
		t.Errorf("Put+Take allocate %v times", n)
	}
}
