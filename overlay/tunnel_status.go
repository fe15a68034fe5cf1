package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
)

// readTunnel reads the WireGuard device of ov into s.Tunnel, and lists
// what differs from the record in s.Problems.
func (n *Node) readTunnel(s *Status, ov Overlay) {
	t := ov.Tunnel
	ts := &TunnelStatus{Tunnel: *t}
	s.Tunnel = ts
	problem := func(format string, args ...any) { s.Problems = append(s.Problems, fmt.Sprintf(format, args...)) }
	if _, err := os.Stat(n.wgPath(nextKeyFile)); err == nil {
		ts.RekeyHalfMade = true
		problem("a rekey died half-way (the next rekey, overlayd run or a sweep takes it back)")
	} else if !errors.Is(err, fs.ErrNotExist) {
		problem("WireGuard next key: %v", err)
	}
	if t.Provider == wireguard.ProviderUserspace {
		pid, running, err := wireguard.ProcessRunning(n.wireguardDir())
		if err != nil {
			problem("%v", err)
		}
		ts.Pid = pid
		if !running {
			problem("WireGuard device process of %s is not running (overlayd run starts it again; so does create)", t.Device)
			return
		}
		if ts.Rejected, err = wireguard.ReadCounters(n.wireguardDir()); err != nil {
			problem("%v", err)
		}
	}
	c, err := wgClient(t.Provider)
	if err != nil {
		problem("WireGuard device %s: %v", t.Device, err)
		return
	}
	defer c.Close()
	d, err := c.Device(t.Device)
	if err != nil {
		problem("WireGuard device %s: %v", t.Device, err)
		return
	}
	ts.Running, ts.ListenPort, ts.DeviceKey, ts.Peers = true, d.ListenPort, d.PublicKey, d.Peers
	if d.PublicKey != t.PublicKey && !ts.RekeyHalfMade {
		problem("WireGuard device %s has key %s, the node's is %s", t.Device, d.PublicKey, t.PublicKey)
	}
	if e := ov.Config.Encrypt; e != nil && d.ListenPort != e.Port {
		problem("WireGuard device %s listens on port %d, not %d", t.Device, d.ListenPort, e.Port)
	}
}

// readGuardDrops reads the allowlist's drops, and in an encrypted overlay
// its WireGuard peers' addresses.
func readGuardDrops(g *GuardStatus, a *guard.Allowlist, ov Overlay) error {
	if t := ov.Tunnel; t != nil && ov.Config.Encrypt != nil {
		if err := a.Tunnel(t.Device, ov.Config.Encrypt.Port, ov.Underlay()); err != nil {
			return err
		}
		peers, err := a.PeerAddrs()
		if err != nil {
			return err
		}
		g.WireGuardPeers = peers
	}
	by, err := a.DropsBy()
	if err != nil {
		return err
	}
	g.VTEPDrops = by[guard.ReasonVTEP].Packets
	g.OutsideTunnelDrops = by[guard.ReasonOutsideTunnel].Packets
	g.WireGuardDrops = by[guard.ReasonWireGuard].Packets
	return nil
}
