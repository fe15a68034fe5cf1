package bench

import (
	"testing"

	"github.com/overlaynet/overlaynet/bench/internal/libnetwork"
	"github.com/overlaynet/overlaynet/internal/missgen"
)

// startVishvanandaResolver runs the libnetwork-way resolver (package
// bench/internal/libnetwork: one goroutine reading vishvananda/netlink's
// socket, a synchronous lookup and two NeighSet per miss) in the
// benchmark's own process, on lab, with the same 32 MiB forced receive
// buffer as rtnl's monitor and the same registry. Any receive error other
// than ENOBUFS, and any programming error, fails the benchmark.
func startVishvanandaResolver(tb testing.TB, lab *missgen.Lab, reg benchRegistry) (func(), func() (string, error)) {
	p, err := libnetwork.Start(lab.Overlay.Path(), int(lab.VxlanIndex), resolveSubnet, reg.reg, monitorBuffer)
	if err != nil {
		tb.Fatal(err)
	}
	return p.Run, p.Stop
}
