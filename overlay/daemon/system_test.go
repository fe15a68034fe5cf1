package daemon

import (
	"testing"

	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// TestMonitorConfigIsTheResolvers: the daemon opens its monitor as
// resolver.DefaultMonitorConfig says (the monitor the benchmarks measure),
// with only the receive buffer overridable.
func TestMonitorConfigIsTheResolvers(t *testing.T) {
	if got, want := monitorConfig(nil, 0), resolver.DefaultMonitorConfig(nil); got != want {
		t.Errorf("default monitor %+v, want resolver.DefaultMonitorConfig %+v", got, want)
	}
	if DefaultReceiveBuffer != resolver.DefaultMonitorConfig(nil).ReceiveBuffer {
		t.Errorf("DefaultReceiveBuffer %d, resolver.DefaultMonitorConfig's %d", DefaultReceiveBuffer, resolver.DefaultMonitorConfig(nil).ReceiveBuffer)
	}
	want := resolver.DefaultMonitorConfig(nil)
	want.ReceiveBuffer = 1 << 20
	if got := monitorConfig(nil, 1<<20); got != want {
		t.Errorf("--rcvbuf 1MiB: monitor %+v, want %+v", got, want)
	}
}
