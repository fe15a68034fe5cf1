package etcdv3

import (
	"testing"
	"time"
)

// TestBackoff: 100 ms growing by 1.6 up to 2 s, each wait within ±20 %.
func TestBackoff(t *testing.T) {
	b := newBackoff()
	base := float64(100 * time.Millisecond)
	for i := range 12 {
		d := b.Next()
		want := time.Duration(min(base, float64(2*time.Second)))
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("wait %d: %v, want %v ± 20 %%", i, d, want)
		}
		base *= 1.6
	}
}
