package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
)

// DefaultRekeySettle is Rekey's wait between publishing the next key and
// switching to it: time for every node's daemon to add it as a peer (the
// store's change reaches them in milliseconds: etcd's watch, the
// directory store's inotify; an NFS share's other machines poll it 4×/s).
const DefaultRekeySettle = 2 * time.Second

// Rekey rotates the node's WireGuard key without a gap longer than a
// handshake: it makes a new key (STATE_DIR/wireguard/next.key, 0600),
// publishes it as the member record's next key, so that every peer adds
// it (a peer with no allowed IP yet, whose handshakes it answers), waits
// settle for them, then switches the device to it and publishes it as the
// current key, when the peers move the node's tunnel address to it and
// drop the old one. Traffic from the node resumes with the first
// handshake under the new key; traffic to it, as soon as its peers have
// moved the address (their daemons follow the store, and also on seeing
// that handshake). It runs under the node's state lock; one killed
// half-way is finished (the device has the new key) or undone (it has the
// old one) by the next rekey, EnsureTunnel or sweep. It returns the old
// and new public keys.
func (n *Node) Rekey(ctx context.Context, settle time.Duration) (old, next wireguard.Key, err error) {
	unlock, err := n.lock()
	if err != nil {
		return old, next, err
	}
	defer unlock()
	ost, err := n.loadOverlayState()
	if err != nil {
		return old, next, err
	}
	t := ost.Overlay.Tunnel
	if t == nil {
		return old, next, errors.New("overlay: rekey: this node's overlay is not encrypted")
	}
	ms, ok := n.reg.(registry.MemberStore)
	if !ok {
		return old, next, errors.New("overlay: rekey: the store keeps no member records")
	}
	if err := n.recoverRekey(ctx, &ost.Overlay); err != nil {
		return old, next, err
	}
	old = t.PublicKey
	nk, err := wireguard.GenerateKey()
	if err != nil {
		return old, next, err
	}
	next = nk.PublicKey()
	if err := wireguard.WriteKeyFile(n.wgPath(nextKeyFile), nk); err != nil {
		return old, next, err
	}
	if err := ms.ClaimMember(ctx, t.member(next)); err != nil {
		os.Remove(n.wgPath(nextKeyFile))
		return old, next, fmt.Errorf("overlay: rekey: publish the next key: %w", err)
	}
	n.log.Info("rekey: next key published; waiting for the peers", "next_key", next, "settle", settle)
	select {
	case <-ctx.Done():
		return old, next, errors.Join(ctx.Err(), n.recoverRekey(context.WithoutCancel(ctx), &ost.Overlay))
	case <-time.After(settle):
	}
	c, err := wgClient(t.Provider)
	if err != nil {
		return old, next, err
	}
	defer c.Close()
	if err := c.Configure(t.Device, wireguard.Config{PrivateKey: &nk}); err != nil {
		return old, next, errors.Join(fmt.Errorf("overlay: rekey: switch the device: %w", err), n.recoverRekey(ctx, &ost.Overlay))
	}
	if err := n.finishRekey(ctx, ms, ost, nk); err != nil {
		return old, next, err
	}
	n.log.Info("rekey done", "old_key", old, "key", next)
	return old, next, nil
}

// finishRekey publishes nk as the current key and makes it the node's:
// the member record, STATE_DIR/wireguard/private.key, the records of the
// tunnel.
func (n *Node) finishRekey(ctx context.Context, ms registry.MemberStore, ost *overlayState, nk wireguard.PrivateKey) error {
	t := ost.Overlay.Tunnel
	prevKey := t.PublicKey
	t.PublicKey = nk.PublicKey()
	if err := ms.ClaimMember(ctx, t.member(wireguard.Key{})); err != nil {
		t.PublicKey = prevKey
		return fmt.Errorf("overlay: rekey: publish the new key: %w", err)
	}
	if err := os.Rename(n.wgPath(nextKeyFile), n.wgPath(privateKeyFile)); err != nil {
		return fmt.Errorf("overlay: rekey: %w", err)
	}
	syncDir(n.wireguardDir())
	if err := n.saveTunnel(t); err != nil {
		return err
	}
	return n.saveOverlayState(ost)
}

// recoverRekey takes back a rekey that died half-way (next.key is there):
// finished when the device has the next key, else undone (the member
// record's next key withdrawn, next.key removed). ov's tunnel is updated.
func (n *Node) recoverRekey(ctx context.Context, ov *Overlay) error {
	nk, err := wireguard.ReadKeyFile(n.wgPath(nextKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	t := ov.Tunnel
	ms, ok := n.reg.(registry.MemberStore)
	if !ok || t == nil {
		return errors.New("overlay: a half-made rekey needs the store's member records")
	}
	ost, err := n.loadOverlayState()
	if err != nil {
		return err
	}
	if c, err := wgClient(t.Provider); err == nil {
		d, derr := c.Device(t.Device)
		c.Close()
		if derr == nil && d.PrivateKey.Equal(nk) {
			n.log.Info("rekey killed after the switch: finished", "key", nk.PublicKey())
			if err := n.finishRekey(ctx, ms, ost, nk); err != nil {
				return err
			}
			*ov.Tunnel = *ost.Overlay.Tunnel
			return nil
		}
	}
	if err := ms.ClaimMember(ctx, t.member(wireguard.Key{})); err != nil {
		return fmt.Errorf("overlay: undo a half-made rekey: %w", err)
	}
	n.log.Info("rekey killed before the switch: undone", "key", t.PublicKey)
	return os.Remove(n.wgPath(nextKeyFile))
}
