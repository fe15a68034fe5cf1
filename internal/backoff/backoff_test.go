package backoff

import (
	"context"
	"testing"
	"time"
)

// TestNext: each wait within [Low, High) of a delay growing by Factor from
// Min up to Max, and Reset starts over.
func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
	}{
		{"etcd", Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second, Factor: 1.6, Low: 0.8, High: 1.2}},
		{"kube", Backoff{Min: 800 * time.Millisecond, Max: 30 * time.Second, Factor: 2, Low: 0.5, High: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			for round := range 2 {
				cur := float64(b.Min)
				for i := range 12 {
					d := float64(b.Next())
					if d < cur*b.Low || d > cur*b.High {
						t.Errorf("round %d, wait %d: %v, want in [%v, %v]", round, i, time.Duration(d), time.Duration(cur*b.Low), time.Duration(cur*b.High))
					}
					cur = min(cur*b.Factor, float64(b.Max))
				}
				b.Reset()
			}
		})
	}
}

// TestWaitEndsWithContext: a cancelled context ends the wait with its error.
func TestWaitEndsWithContext(t *testing.T) {
	b := Backoff{Min: time.Hour, Max: time.Hour, Factor: 1, Low: 1, High: 1}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait: %v, want context.Canceled", err)
	}
}
