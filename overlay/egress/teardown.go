package egress

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"golang.org/x/sys/unix"
)

// Teardown removes what st records, and only that: the accept rules by
// their tags, egress's table, the forwarding values (put back to what they
// were where the device still exists; IPv6's in the overlay namespace need
// p.OverlayNS) and the veth pair with its addresses and routes. It goes on
// past failures and returns them all. Running it again finds nothing to
// do.
func Teardown(p Params, st *State) error {
	if st == nil {
		return nil
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var errs []error
	err := withNFT(func(nc *nft.Conn) error {
		var errs []error
		for _, h := range st.HostAccept {
			n, err := nc.DeleteTagged(h.chain(), func(tag string) bool { return slices.Contains(h.Tags, tag) })
			if err != nil {
				errs = append(errs, fmt.Errorf("egress: teardown: accept rules in %s: %w", h.chain(), err))
				continue
			}
			log.Info("removed accept rules", "chain", h.chain(), "rules", n)
		}
		if st.CreatedTable {
			if err := nc.DeleteTable(Table()); err != nil {
				errs = append(errs, fmt.Errorf("egress: teardown: %w", err))
			} else {
				log.Info("deleted table", "table", Table())
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range st.Forwarding {
		place := forwardingPlace{c: p.Host, netns: f.NetNS, dev: f.Dev, ipv6: f.IPv6}
		if f.NetNS != HostNetNS {
			place.c, place.ns = p.Overlay, p.OverlayNS
		}
		if place.c == nil || f.NetNS != HostNetNS && f.IPv6 && place.ns == nil {
			continue // the namespace is gone, and the device with it
		}
		l, err := place.c.LinkByName(f.Dev)
		if errors.Is(err, unix.ENODEV) {
			continue
		}
		if err == nil {
			err = place.set(l.Index, f.Was)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("egress: teardown: put %s of %s back to %d: %w", place.setting(), f.Dev, f.Was, err))
			continue
		}
		log.Info("put forwarding back", "netns", f.NetNS, "dev", f.Dev, "setting", place.setting(), "value", f.Was)
	}
	if st6 := st.IPv6; st6 != nil && st6.CreatedBridgeAddr && p.Overlay != nil {
		if err := removeBridgeAddr(p, st6.BridgeAddr); err != nil {
			errs = append(errs, fmt.Errorf("egress: teardown: %w", err))
		} else {
			log.Info("removed the bridge's link-local address", "bridge", p.Bridge, "address", st6.BridgeAddr)
		}
	}
	if st.CreatedVeth {
		if err := links.Delete(p.Host, st.HostIf); err != nil {
			errs = append(errs, fmt.Errorf("egress: teardown: delete %s: %w", st.HostIf, err))
		} else {
			log.Info("deleted node path", "host_if", st.HostIf)
		}
	}
	return errors.Join(errs...)
}

// removeBridgeAddr deletes a from the bridge (gone with it: nothing to
// do).
func removeBridgeAddr(p Params, a netip.Prefix) error {
	br, err := p.Overlay.LinkByName(p.Bridge)
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return err
	}
	return links.DeleteAddress(p.Overlay, br.Index, a)
}
