package daemon

import (
	"fmt"
	"log/slog"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Topology is what the daemon finds in the overlay namespace.
type Topology struct {
	Vxlan  int32  // ifindex of the vxlan device
	Bridge int32  // ifindex of the bridge; 0 if it is missing
	VNI    uint32 // the vxlan device's VNI
	Port   uint16 // the vxlan device's UDP port
}

// Discover finds the overlay's vxlan device and bridge (cfg.Vxlan,
// cfg.Bridge) through c, a socket in the overlay namespace. The VNI and port
// are the device's own. A device that is missing or not a vxlan device is
// an error; one without proxy, l2miss or l3miss is logged (some misses will
// never be raised). A missing bridge is not an error: the resolver then
// answers no app_solicit requests.
func Discover(c *rtnl.Conn, cfg overlay.Config, log *slog.Logger) (Topology, error) {
	vx, err := c.LinkByName(cfg.Vxlan)
	if err != nil {
		return Topology{}, fmt.Errorf("daemon: vxlan %q in netns %s: %w", cfg.Vxlan, cfg.OverlayNetNS, err)
	}
	if vx.Info == nil || vx.Info.Vxlan == nil {
		return Topology{}, fmt.Errorf("daemon: %s in netns %s is not a vxlan device (kind %q)", cfg.Vxlan, cfg.OverlayNetNS, vx.Kind())
	}
	vi := vx.Info.Vxlan
	if !vi.Proxy || !vi.L3Miss || !vi.L2Miss {
		log.Warn("vxlan lacks proxy/l2miss/l3miss: some misses will never be raised",
			"vxlan", cfg.Vxlan, "proxy", vi.Proxy, "l2miss", vi.L2Miss, "l3miss", vi.L3Miss)
	}
	t := Topology{Vxlan: vx.Index, VNI: vi.ID, Port: vi.Port}
	if br, err := c.LinkByName(cfg.Bridge); err == nil {
		t.Bridge = br.Index
	}
	return t, nil
}
