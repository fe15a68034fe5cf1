package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TunnelDevice is what EnsureTunnel found or made.
type TunnelDevice struct {
	// Made is true when the device was made anew (its process started):
	// it has no peers yet.
	Made bool
	// Pid is the userspace device process (0 for the kernel's).
	Pid int
	// Exited, when this call started the process, is closed once it exits
	// (and was reaped by this process).
	Exited <-chan struct{}
}

// EnsureTunnel brings an encrypted overlay's WireGuard device up as Create
// recorded it, from the calling ("host") namespace: a userspace device
// process started if none runs (one killed, say), the kernel device made
// if missing; key, port, MTU, address and up each set only if they differ,
// so a device that is as recorded is not touched. A rekey that died
// half-way is finished or undone first. It runs under the node's state
// lock. It is what the node daemon calls at start and whenever the device
// process exits (see TunnelDevice).
func (n *Node) EnsureTunnel(ctx context.Context) (TunnelDevice, error) {
	unlock, err := n.lock()
	if err != nil {
		return TunnelDevice{}, err
	}
	defer unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return TunnelDevice{}, err
	}
	t, e := ost.Overlay.Tunnel, ost.Overlay.Config.Encrypt
	if t == nil || e == nil {
		return TunnelDevice{}, errors.New("overlay: this node's overlay is not encrypted")
	}
	if err := n.recoverRekey(ctx, &ost.Overlay); err != nil {
		n.log.Warn("a rekey that died half-way could not be taken back yet", "err", err)
	}
	key, err := wireguard.ReadKeyFile(n.wgPath(privateKeyFile))
	if err != nil {
		return TunnelDevice{}, err
	}
	host, err := rtnl.Dial(nil)
	if err != nil {
		return TunnelDevice{}, err
	}
	defer host.Close()
	ds, err := n.ensureDevice(host, t, key, e.Port)
	if err != nil {
		return TunnelDevice{}, err
	}
	if ds.made {
		n.log.Warn("WireGuard device made again", "device", t.Device, "provider", t.Provider, "pid", ds.pid)
	}
	return TunnelDevice{Made: ds.made, Pid: ds.pid, Exited: ds.exited}, nil
}

// removeTunnel takes back an encrypted overlay's WireGuard side, as
// STATE_DIR/wireguard records it (also when a create died before it
// recorded the overlay): the device (its process stopped; the kernel
// device deleted if Create made it), this node's member records (found by
// its owner), and the directory, keys included (a node that leaves keeps
// no key: a new create makes a new one).
func (n *Node) removeTunnel(ctx context.Context) error {
	if _, err := os.Stat(n.wireguardDir()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	t, err := n.loadTunnel()
	if err != nil {
		return err
	}
	if t == nil {
		t = &Tunnel{}
	}
	host, err := rtnl.Dial(nil)
	if err != nil {
		return err
	}
	defer host.Close()
	if err := n.stopDevice(host, t); err != nil {
		return fmt.Errorf("overlay: reset: %w", err)
	}
	owner, _ := os.ReadFile(n.wgPath(ownerFile))
	if o := string(trimNL(owner)); o != "" {
		if err := n.removeMembers(ctx, o); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(n.wireguardDir()); err != nil {
		return fmt.Errorf("overlay: reset: %w", err)
	}
	n.log.Info("WireGuard side removed", "device", t.Device, "address", t.Address)
	return nil
}

// removeMembers removes every member record of owner.
func (n *Node) removeMembers(ctx context.Context, owner string) error {
	ms, ok := n.reg.(registry.MemberStore)
	if !ok {
		if n.reg == nil {
			return ErrNoRegistry
		}
		return nil
	}
	mm, _, err := ms.Members(ctx)
	if err != nil {
		return fmt.Errorf("overlay: reset: list the members: %w", err)
	}
	var errs []error
	for _, m := range mm {
		if m.Owner == owner {
			if err := ms.RemoveMember(ctx, m.VTEP, owner); err != nil {
				errs = append(errs, fmt.Errorf("overlay: reset: remove member %s: %w", m.VTEP, err))
			}
		}
	}
	return errors.Join(errs...)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
