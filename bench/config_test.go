package bench

import (
	"io"
	"log/slog"
	"net/netip"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
)

// benchResolverConfig is the configuration `overlayd run` gives its
// resolver with no flags, wired to lab: the tunables are the defaults.
func benchResolverConfig(conn *rtnl.Conn, lab *missgen.Lab, reg registry.Registry, log *slog.Logger) resolver.ResolverConfig {
	return resolver.ResolverConfig{
		Conn: conn, Registry: reg, Vxlan: lab.VxlanIndex, Bridge: lab.BridgeIndex, VNI: 42, Port: 4789,
		Subnet: resolveSubnet, LocalVTEP: netip.MustParseAddr("192.0.2.1"), Logger: log,
	}
}

// benchMonitorConfig is the monitor `overlayd run` opens with no flags.
func benchMonitorConfig(lab *missgen.Lab) rtnl.MonitorConfig {
	return rtnl.MonitorConfig{NetNS: lab.Overlay, ReceiveBuffer: rtnl.DefaultMonitorReceiveBuffer, MissesOnly: true}
}

// daemonLogHandler is the handler `overlayd run` logs through with no
// flags, writing to w.
func daemonLogHandler(w io.Writer) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})
}

// benchScanBudget is the budget of registry lookups for addresses nobody
// registered that `overlayd run` allows with no flags: per second, and at
// once.
func benchScanBudget() (rate float64, burst int) {
	return resolver.DefaultLookupRate, resolver.DefaultLookupBurst
}
