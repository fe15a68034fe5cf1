package daemon

import (
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/overlay/wake"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// systemKernel opens the real overlay namespace.
type systemKernel struct{}

// open opens the named namespace netns in netnsDir, two request sockets
// (programming; the reconcile's dumps) and a misses-only monitor in it, and
// the means to open the capture of requests there once the vxlan is known. The
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
	alive, err := sameNetNS(ns)
	if err != nil {
		mon.Close()
		dump.Close()
		conn.Close()
		ns.Close()
		return kernelSide{}, err
	}
	capture := func(vxlan int32) (wake.Link, error) { return wake.Open(ns, vxlan) }
	return kernelSide{conn: conn, dump: dump, mon: mon, guard: true, alive: alive, capture: capture, closeFn: func() {
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

// sameNetNS returns a check that the namespace at ns's path is still ns:
// not deleted (a reset), nor replaced by another (a new create).
func sameNetNS(ns *rtnl.NetNS) (func() error, error) {
	var was unix.Stat_t
	if err := unix.Fstat(ns.Fd(), &was); err != nil {
		return nil, fmt.Errorf("overlay netns %s: %w", ns.Path(), err)
	}
	path := ns.Path()
	return func() error {
		var now unix.Stat_t
		if err := unix.Stat(path, &now); err != nil {
			return fmt.Errorf("overlay netns %s: %w", path, err)
		}
		if now.Dev != was.Dev || now.Ino != was.Ino {
			return fmt.Errorf("overlay netns %s is another namespace than the one the daemon opened", path)
		}
		return nil
	}, nil
}
