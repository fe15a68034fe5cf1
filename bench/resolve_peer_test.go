package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// startVishvanandaResolver resolves misses the way libnetwork's overlay
// driver did (drivers/overlay/ov_network.go watchMiss + peerAdd): one
// goroutine receives RTNLGRP_NEIGH notifications through vishvananda/
// netlink's subscription and, for each L3 miss on the vxlan, looks the IP
// up synchronously and programs the neighbour entry and then the FDB entry
// with two NeighSet calls (each a request and its ACK), before it reads the
// next notification.
//
// The subscription gets the same 32 MiB forced receive buffer as rtnl's
// monitor (libnetwork kept the kernel's default, where a burst like this
// one ends the subscription within a few hundred misses: see
// TestVishvanandaSubscriptionEndsOnOverrun), and reads the same registry.
// If the subscription still dies (ENOBUFS closes its channel), the misses
// left are counted unresolved and stop reports it.
func startVishvanandaResolver(tb testing.TB, lab *missgen.Lab, reg registry.Registry) (func(), func() (string, error)) {
	nsh, err := netns.GetFromPath(lab.Overlay.Path())
	if err != nil {
		tb.Fatal(err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var subErrs, setErrs []error
	var setFailures int
	ch := make(chan netlink.NeighUpdate) // libnetwork read its socket directly: no queue
	done := make(chan struct{})
	err = netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
		Namespace: &nsh, ReceiveBufferSize: monitorBuffer, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) { mu.Lock(); subErrs = append(subErrs, err); mu.Unlock() },
	})
	if err != nil {
		h.Close()
		nsh.Close()
		tb.Fatal(err)
	}
	vxlan := int(lab.VxlanIndex)
	ctx := context.Background()
	finished := make(chan struct{})
	loop := func() {
		defer close(finished)
		for u := range ch {
			if u.Type != unix.RTM_GETNEIGH || u.LinkIndex != vxlan || u.State != netlink.NUD_STALE {
				continue
			}
			ip4 := u.IP.To4()
			if ip4 == nil {
				continue
			}
			ip, _ := netip.AddrFromSlice(ip4)
			if !resolveSubnet.Contains(ip) {
				continue
			}
			mac, err := reg.LookupMAC(ctx, ip)
			if err != nil {
				continue
			}
			vtep, err := reg.LookupVTEP(ctx, mac)
			if err != nil {
				continue
			}
			hw := net.HardwareAddr(mac[:])
			errN := h.NeighSet(&netlink.Neigh{
				LinkIndex: vxlan, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
				IP: ip4, HardwareAddr: hw,
			})
			errF := h.NeighSet(&netlink.Neigh{
				LinkIndex: vxlan, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
				IP: vtep.AsSlice(), HardwareAddr: hw,
			})
			if err := errors.Join(errN, errF); err != nil {
				mu.Lock()
				setFailures++
				if len(setErrs) < 5 {
					setErrs = append(setErrs, fmt.Errorf("%s: %w", ip, err))
				}
				mu.Unlock()
			}
		}
	}
	started := false
	run := func() { started = true; go loop() }
	return run, func() (string, error) {
		close(done)
		if started {
			<-finished // the channel closes once the socket does
		}
		h.Close()
		nsh.Close()
		mu.Lock()
		defer mu.Unlock()
		var note string
		// The subscription's socket is closed by done: its last error is
		// the receive on a closed socket, unless it died earlier.
		for _, e := range subErrs {
			if errors.Is(e, unix.ENOBUFS) {
				note = fmt.Sprintf("vishvananda: subscription ended by %v: later misses were never seen", e)
				break
			}
		}
		if setFailures > 0 {
			return note, fmt.Errorf("vishvananda: %d misses failed to program: %v", setFailures, setErrs)
		}
		return note, nil
	}
}
