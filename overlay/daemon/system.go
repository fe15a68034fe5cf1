package daemon

import (
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
)

// systemKernel opens the real overlay namespace.
type systemKernel struct{}

// open opens the named namespace netns in netnsDir, two request sockets
// (programming; the reconcile's dumps) and a misses-only monitor in it. The
// monitor's socket filter drops, in the kernel, the echoes of the entries
// the resolver programs (two per resolved address).
func (systemKernel) open(netnsDir, netns string, rcvbuf int) (kernelSide, error) {
	ns, err := rtnl.OpenNamedNetNS(netnsDir, netns)
	if err != nil {
		return kernelSide{}, fmt.Errorf("daemon: overlay netns %q: %w", netns, err)
	}
	conn, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		ns.Close()
		return kernelSide{}, err
	}
	// A second socket for the reconcile's dumps: a dump of 100,000 remote
	// entries takes over a second, during which programming goes on.
	dump, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		conn.Close()
		ns.Close()
		return kernelSide{}, err
	}
	mon, err := rtnl.DialMonitor(monitorConfig(ns, rcvbuf))
	if err != nil {
		dump.Close()
		conn.Close()
		ns.Close()
		return kernelSide{}, err
	}
	return kernelSide{conn: conn, dump: dump, mon: mon, guard: true, closeFn: func() {
		mon.Close()
		dump.Close()
		conn.Close()
		ns.Close()
	}}, nil
}

// monitorConfig is resolver.DefaultMonitorConfig in ns with the receive
// buffer rcvbuf (the default when zero).
func monitorConfig(ns *rtnl.NetNS, rcvbuf int) rtnl.MonitorConfig {
	mc := resolver.DefaultMonitorConfig(ns)
	if rcvbuf != 0 {
		mc.ReceiveBuffer = rcvbuf
	}
	return mc
}
