// Package libnetwork is the benchmarks' miss resolver done the way
// libnetwork's overlay driver did it (drivers/overlay/ov_network.go
// watchMiss + peerAdd), on github.com/vishvananda/netlink: one goroutine
// subscribes a socket to RTNLGRP_NEIGH with nl.SubscribeAt, reads it with
// Receive and, for each L3 miss on the vxlan (NeighDeserialize), looks the
// IP up synchronously and programs the neighbour entry and then the FDB
// entry with two NeighSet calls (each a request and its ACK), before it
// reads the next datagram. No goroutine or channel sits between the socket
// and the loop. Like watchMiss it keeps reading after ENOBUFS (counted and
// reported as a note).
//
// The socket gets a forced receive buffer (libnetwork kept the kernel's
// default, where a burst loses most of its misses). Unlike rtnl's monitor it
// has no kernel filter: it also receives, and skips in user space, the
// RTM_NEWNEIGH echoes of the entries it programs, as libnetwork did. The
// benchmarks run it in their own process (BenchmarkResolve) or as the
// command libnetworkd, in a process of its own (BenchmarkResolveIsolated).
package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Peer is a running libnetwork-way resolver.
type Peer struct {
	nsh    netns.NsHandle
	h      *netlink.Handle
	sock   *nl.NetlinkSocket
	vxlan  int
	subnet netip.Prefix
	reg    registry.Registry

	mu          sync.Mutex
	recvErr     error
	setErrs     []error
	setFailures int
	overruns    int
	closed      atomic.Bool
	started     bool
	finished    chan struct{}
}

// Start subscribes, in the network namespace at nsPath ("" for the
// calling thread's), to its neighbour notifications with a forced receive
// buffer of rcvbuf bytes, for misses of the vxlan device with ifindex
// vxlan in subnet, answered from reg. Misses queue in the socket until Run.
func Start(nsPath string, vxlan int, subnet netip.Prefix, reg registry.Registry, rcvbuf int) (*Peer, error) {
	var nsh netns.NsHandle
	var err error
	if nsPath == "" {
		nsh, err = netns.Get()
	} else {
		nsh, err = netns.GetFromPath(nsPath)
	}
	if err != nil {
		return nil, fmt.Errorf("libnetwork: netns: %w", err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return nil, fmt.Errorf("libnetwork: handle: %w", err)
	}
	sock, err := nl.SubscribeAt(nsh, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_NEIGH)
	if err == nil {
		err = sock.SetReceiveBufferSize(rcvbuf, true)
	}
	if err != nil {
		h.Close()
		nsh.Close()
		return nil, fmt.Errorf("libnetwork: subscribe: %w", err)
	}
	return &Peer{nsh: nsh, h: h, sock: sock, vxlan: vxlan, subnet: subnet, reg: reg, finished: make(chan struct{})}, nil
}

// Run starts the receive loop on a goroutine of its own.
func (p *Peer) Run() {
	p.started = true
	go p.loop()
}

// Done is closed when the receive loop has ended (after Stop, or on a
// receive error).
func (p *Peer) Done() <-chan struct{} { return p.finished }

// Err returns the first receive error or the programming failures so far.
func (p *Peer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recvErr != nil {
		return fmt.Errorf("libnetwork: receive: %w", p.recvErr)
	}
	if p.setFailures > 0 {
		return fmt.Errorf("libnetwork: %d misses failed to program: %v", p.setFailures, p.setErrs)
	}
	return nil
}

// Stop ends the loop and releases the sockets. It returns a note worth
// logging (overruns) and the error that fails a benchmark: a receive error
// other than ENOBUFS, or a programming error.
func (p *Peer) Stop() (note string, err error) {
	p.closed.Store(true)
	p.sock.Close() // wakes Receive
	if p.started {
		<-p.finished
	}
	p.h.Close()
	p.nsh.Close()
	p.mu.Lock()
	if p.overruns > 0 {
		note = fmt.Sprintf("libnetwork: %d receive overruns (ENOBUFS): misses lost in them were never seen", p.overruns)
	}
	p.mu.Unlock()
	return note, p.Err()
}

func (p *Peer) loop() {
	defer close(p.finished)
	for {
		msgs, _, err := p.sock.Receive()
		if err != nil {
			if p.closed.Load() {
				return
			}
			if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
				p.mu.Lock()
				p.overruns++
				p.mu.Unlock()
				continue
			}
			p.mu.Lock()
			p.recvErr = err
			p.mu.Unlock()
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
			p.handle(n)
		}
	}
}

// handle answers one miss: lookup, then two NeighSet.
func (p *Peer) handle(n *netlink.Neigh) {
	if n.LinkIndex != p.vxlan || n.State != netlink.NUD_STALE {
		return
	}
	ip4 := n.IP.To4()
	if ip4 == nil {
		return
	}
	ip, _ := netip.AddrFromSlice(ip4)
	if !p.subnet.Contains(ip) {
		return
	}
	ctx := context.Background()
	mac, err := p.reg.LookupMAC(ctx, ip)
	if err != nil {
		return
	}
	vtep, err := p.reg.LookupVTEP(ctx, mac)
	if err != nil {
		return
	}
	hw := net.HardwareAddr(mac[:])
	errN := p.h.NeighSet(&netlink.Neigh{
		LinkIndex: p.vxlan, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: ip4, HardwareAddr: hw,
	})
	errF := p.h.NeighSet(&netlink.Neigh{
		LinkIndex: p.vxlan, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT,
		IP: vtep.AsSlice(), HardwareAddr: hw,
	})
	if err := errors.Join(errN, errF); err != nil {
		p.mu.Lock()
		p.setFailures++
		if len(p.setErrs) < 5 {
			p.setErrs = append(p.setErrs, fmt.Errorf("%s: %w", ip, err))
		}
		p.mu.Unlock()
	}
}
