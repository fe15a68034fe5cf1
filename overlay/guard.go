package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
)

// guardPort is the anti-spoofing description of e's port.
func guardPort(e Endpoint) guard.Port {
	p := guard.Port{HostIf: e.HostIf, MAC: [6]byte(e.MAC)}
	if e.IP.IsValid() {
		p.IP = e.IP.Addr()
	}
	if e.IP6.IsValid() {
		p.IP6 = e.IP6.Addr()
	}
	return p
}

// dialNft opens nftables in the overlay namespace overlayNetNS.
func (n *Node) dialNft(overlayNetNS string) (*nft.Conn, error) {
	ns, err := rtnl.OpenNamedNetNS(n.netnsDir, overlayNetNS)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return nft.Dial(ns.Fd())
}

// installAntispoof installs the anti-spoofing rules of e's port in the
// overlay namespace overlayNetNS (see overlay/guard).
func (n *Node) installAntispoof(overlayNetNS string, e Endpoint) error {
	c, err := n.dialNft(overlayNetNS)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := guard.InstallPort(c, guardPort(e)); err != nil {
		return fmt.Errorf("overlay: anti-spoofing of %s: %w", e.HostIf, err)
	}
	return nil
}

// removeAntispoof removes the anti-spoofing rules of hostIf's port; a
// missing overlay namespace holds none.
func (n *Node) removeAntispoof(overlayNetNS, hostIf string) error {
	c, err := n.dialNft(overlayNetNS)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	return guard.RemovePort(c, hostIf)
}

// restoreAntispoof installs again the anti-spoofing rules of every
// endpoint recorded in the state directory (idempotent: rules in place are
// kept with their counters), after a loss of the ruleset (a reboot, a flush).
// It returns how many ports it guarded.
func (n *Node) restoreAntispoof(cfg Config) (int, error) {
	if cfg.NoAntispoof {
		return 0, nil
	}
	eps, err := n.listEndpoints()
	if err != nil {
		return 0, err
	}
	if len(eps) == 0 {
		return 0, nil
	}
	c, err := n.dialNft(cfg.OverlayNetNS)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var errs []error
	for _, st := range eps {
		if err := guard.InstallPort(c, guardPort(st.Endpoint)); err != nil {
			errs = append(errs, fmt.Errorf("overlay: anti-spoofing of %s: %w", st.Endpoint.Name, err))
		}
	}
	return len(eps) - len(errs), errors.Join(errs...)
}

// RestoreAntispoof is restoreAntispoof for the daemon: the rules of every
// endpoint in the state directory, installed again if lost.
func (n *Node) RestoreAntispoof() (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return 0, err
	}
	return n.restoreAntispoof(ost.Overlay.Config)
}

// removeGuard deletes the guard's tables: the allowlist in the calling
// ("host") namespace and the anti-spoofing table of the overlay namespace
// (if it still exists). Nothing else of either ruleset is touched.
func (n *Node) removeGuard(cfg Config) error {
	var errs []error
	host, err := nft.Dial(-1)
	if err != nil {
		return err
	}
	defer host.Close()
	if err := guard.RemoveAllowlist(host); err != nil {
		errs = append(errs, fmt.Errorf("overlay: reset: VTEP allowlist: %w", err))
	}
	if _, err := os.Stat(filepath.Join(n.netnsDir, cfg.OverlayNetNS)); err == nil {
		c, err := n.dialNft(cfg.OverlayNetNS)
		if err == nil {
			if err := guard.RemoveAntispoof(c); err != nil {
				errs = append(errs, fmt.Errorf("overlay: reset: anti-spoofing: %w", err))
			}
			c.Close()
		}
	}
	return errors.Join(errs...)
}

// GuardPorts lists the ports with anti-spoofing rules in the overlay
// namespace and their drops by reason (for the daemon's metrics).
func (n *Node) GuardPorts(overlayNetNS string) ([]guard.PortRules, error) {
	c, err := n.dialNft(overlayNetNS)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return guard.Ports(c)
}
