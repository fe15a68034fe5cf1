package bench

import (
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/overlay/wake"
	"github.com/overlaynet/overlaynet/rtnl"
)

// benchResolverConfig is the configuration `overlayd run` gives its
// resolver with no flags (resolver.DefaultTuning, which its flags default
// to: cmd/overlayd's TestRunDefaultsAreTheLibrarys), wired to lab.
func benchResolverConfig(conn *rtnl.Conn, lab *missgen.Lab, reg registry.Registry, log *slog.Logger) resolver.Config {
	cfg := resolver.Config{
		Conn: conn, Registry: reg, Vxlan: lab.VxlanIndex, Bridge: lab.BridgeIndex, VNI: 42, Port: 4789,
		Subnet: resolveSubnet, LocalVTEP: netip.MustParseAddr("192.0.2.1"), Logger: log,
		Tuning: resolver.DefaultTuning(),
	}
	if lab.IPv6 { // a dual-stack lab: the overlay's IPv6 prefix too
		cfg.Subnet6 = missgen.Prefix6()
	}
	return cfg
}

// benchWaker is the capture of requests `overlayd run` answers misses'
// requesters with, on lab's vxlan (package wake; its requests live the
// negative-cache TTL); its link is closed when tb ends.
func benchWaker(tb testing.TB, lab *missgen.Lab) *wake.Waker {
	link, err := wake.Open(lab.Overlay, lab.VxlanIndex)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { link.Close() })
	return wake.New(link, wake.Config{TTL: resolver.DefaultTuning().NegativeTTL})
}

// benchMonitorConfig is the monitor `overlayd run` opens with no flags.
func benchMonitorConfig(lab *missgen.Lab) rtnl.MonitorConfig {
	return resolver.DefaultMonitorConfig(lab.Overlay)
}

// daemonLogHandler is the handler `overlayd run` logs through with no
// flags (text, resolver.DefaultLogLevel), writing to w.
func daemonLogHandler(w io.Writer) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: resolver.DefaultLogLevel})
}

// benchScanBudget is the budget of registry lookups for addresses the
// registry did not list that `overlayd run` allows with no flags: per
// second, and at once.
func benchScanBudget() (rate float64, burst int) {
	def := resolver.DefaultTuning()
	return def.LookupRate, def.LookupBurst
}

// TestBenchmarkConfigIsTheDaemons fails if the resolver the benchmarks
// measure is configured otherwise than `overlayd run` with no flags: its
// tuning must be resolver.DefaultTuning (the daemon's flag defaults,
// checked by cmd/overlayd's TestRunDefaultsAreTheLibrarys), its wiring
// the lab's socket, registry, devices and addresses and nothing more, its
// monitor resolver.DefaultMonitorConfig's, its log level the default one.
func TestBenchmarkConfigIsTheDaemons(t *testing.T) {
	lab := &missgen.Lab{VxlanIndex: 7, BridgeIndex: 6, IPv6: true}
	got := benchResolverConfig(nil, lab, &memRegistry{}, slog.New(daemonLogHandler(io.Discard)))
	if want := resolver.DefaultTuning(); !reflect.DeepEqual(got.Tuning, want) {
		t.Errorf("benchmark resolver tuning differs from the daemon's:\n got %+v\nwant %+v", got.Tuning, want)
	}
	// The wiring (which socket, registry, devices, addresses) is the lab's;
	// nothing else is set.
	got.Conn, got.Registry, got.Vxlan, got.Bridge, got.VNI, got.Port = nil, nil, 0, 0, 0, 0
	got.Subnet, got.Subnet6, got.LocalVTEP, got.Logger = netip.Prefix{}, netip.Prefix{}, netip.Addr{}, nil
	if want := (resolver.Config{Tuning: resolver.DefaultTuning()}); !reflect.DeepEqual(got, want) {
		t.Errorf("benchmark resolver wiring has more than the lab's:\n got %+v\nwant %+v", got, want)
	}
	if got, want := benchMonitorConfig(lab), resolver.DefaultMonitorConfig(nil); got != want {
		t.Errorf("benchmark monitor %+v, want the daemon's %+v", got, want)
	}
	h := daemonLogHandler(io.Discard)
	if !h.Enabled(t.Context(), resolver.DefaultLogLevel) || h.Enabled(t.Context(), resolver.DefaultLogLevel-1) {
		t.Error("benchmark logger's level is not resolver.DefaultLogLevel")
	}
	if rate, burst := benchScanBudget(); rate != resolver.DefaultLookupRate || burst != resolver.DefaultLookupBurst {
		t.Errorf("scan budget %v/%d, want %v/%d", rate, burst, resolver.DefaultLookupRate, resolver.DefaultLookupBurst)
	}
}
