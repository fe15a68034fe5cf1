package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// startVishvanandaResolver resolves misses the way libnetwork's overlay
// driver did (drivers/overlay/ov_network.go watchMiss + peerAdd): one
// goroutine subscribes a socket to RTNLGRP_NEIGH with vishvananda/netlink's
// nl.SubscribeAt, reads it with Receive and, for each L3 miss on the vxlan
// (NeighDeserialize), looks the IP up synchronously and programs the
// neighbour entry and then the FDB entry with two NeighSet calls (each a
// request and its ACK), before it reads the next datagram. No goroutine or
// channel sits between the socket and the loop. Like watchMiss it keeps
// reading after ENOBUFS (counted and reported as a note).
//
// The socket gets the same 32 MiB forced receive buffer as rtnl's monitor
// (libnetwork kept the kernel's default, where a burst like these loses
// most of its misses) and reads the same registry. Unlike rtnl's monitor
// it has no kernel filter: it also receives, and skips in user space, the
// RTM_NEWNEIGH echoes of the entries it programs, as libnetwork did.
// Any receive error other than ENOBUFS, and any programming error, fails
// the benchmark.
func startVishvanandaResolver(tb testing.TB, lab *missgen.Lab, reg benchRegistry) (func(), func() (string, error)) {
	nsh, err := netns.GetFromPath(lab.Overlay.Path())
	if err != nil {
		tb.Fatal(err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		tb.Fatal(err)
	}
	sock, err := nl.SubscribeAt(nsh, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_NEIGH)
	if err == nil {
		err = sock.SetReceiveBufferSize(monitorBuffer, true)
	}
	if err != nil {
		h.Close()
		nsh.Close()
		tb.Fatal(err)
	}
	var (
		mu          sync.Mutex
		recvErr     error
		setErrs     []error
		setFailures int
		overruns    int
		closed      atomic.Bool
	)
	vxlan := int(lab.VxlanIndex)
	ctx := context.Background()
	handle := func(n *netlink.Neigh) {
		if n.LinkIndex != vxlan || n.State != netlink.NUD_STALE {
			return
		}
		ip4 := n.IP.To4()
		if ip4 == nil {
			return
		}
		ip, _ := netip.AddrFromSlice(ip4)
		if !resolveSubnet.Contains(ip) {
			return
		}
		mac, err := reg.reg.LookupMAC(ctx, ip)
		if err != nil {
			return
		}
		vtep, err := reg.reg.LookupVTEP(ctx, mac)
		if err != nil {
			return
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
	finished := make(chan struct{})
	loop := func() {
		defer close(finished)
		for {
			msgs, _, err := sock.Receive()
			if err != nil {
				if closed.Load() {
					return
				}
				if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
					mu.Lock()
					overruns++
					mu.Unlock()
					continue
				}
				mu.Lock()
				recvErr = err
				mu.Unlock()
				return
			}
			for _, m := range msgs {
				if m.Header.Type != unix.RTM_GETNEIGH {
					continue
				}
				n, err := netlink.NeighDeserialize(m.Data)
				if err != nil {
					continue
				}
				handle(n)
			}
		}
	}
	started := false
	run := func() { started = true; go loop() }
	return run, func() (string, error) {
		closed.Store(true)
		sock.Close() // wakes Receive
		if started {
			<-finished
		}
		h.Close()
		nsh.Close()
		mu.Lock()
		defer mu.Unlock()
		var note string
		if overruns > 0 {
			note = fmt.Sprintf("vishvananda: %d receive overruns (ENOBUFS): misses lost in them were never seen", overruns)
		}
		if recvErr != nil {
			return note, fmt.Errorf("vishvananda: receive: %w", recvErr)
		}
		if setFailures > 0 {
			return note, fmt.Errorf("vishvananda: %d misses failed to program: %v", setFailures, setErrs)
		}
		return note, nil
	}
}
