// Package missgen raises vxlan miss notifications on demand, for tests and
// benchmarks: it sends raw Ethernet frames (ARP requests for distinct IPv4
// addresses, IPv6 Neighbor Solicitations for distinct IPv6 addresses,
// unicast frames to distinct MACs) from a container's namespace into an
// overlay bridge, with AF_PACKET and sendmmsg. Each ARP request or
// Neighbor Solicitation that reaches a proxy vxlan with l3miss and finds no
// neighbour entry raises one L3 miss (AF_INET, or AF_INET6 with a 16-byte
// NDA_DST); each unicast frame that finds no FDB entry raises one L2 miss.
package missgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/arp"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

const (
	batch     = 256    // frames per sendmmsg
	frameLen  = 60     // minimum Ethernet frame without FCS
	slotLen   = 128    // room for one frame in the send buffer (a solicitation is nsLen)
	etherTest = 0x88b5 // IEEE local experimental EtherType: no stack parses it
)

// Generator sends frames out of one device. It is not safe for concurrent
// use.
type Generator struct {
	fd    int
	src   ethaddr.MAC
	srcIP netip.Addr
	buf   []byte
	iovs  []unix.Iovec
	hdrs  []unix.Mmsghdr
}

// New opens an AF_PACKET socket on device dev in ns (nil: the calling
// thread's namespace). Frames carry src as their source MAC and srcIP as
// the ARP sender address (IPv4: ARP) or the Neighbor Solicitations' source
// (IPv6: NS).
func New(ns *rtnl.NetNS, dev string, src ethaddr.MAC, srcIP netip.Addr) (*Generator, error) {
	var fd int
	open := func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("missgen: %w", err)
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("missgen: packet socket: %w", err)
		}
		// Protocol 0: the socket only sends, it receives nothing.
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("missgen: bind to %s: %w", dev, err)
		}
		return nil
	}
	var err error
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	if !srcIP.IsValid() || srcIP.Is4In6() || srcIP.Zone() != "" {
		unix.Close(fd)
		return nil, fmt.Errorf("missgen: sender address %v is neither IPv4 nor IPv6", srcIP)
	}
	g := &Generator{
		fd: fd, src: src, srcIP: srcIP,
		buf:  make([]byte, batch*slotLen),
		iovs: make([]unix.Iovec, batch),
		hdrs: make([]unix.Mmsghdr, batch),
	}
	for i := range g.hdrs {
		g.iovs[i].Base = &g.buf[i*slotLen]
		g.iovs[i].SetLen(frameLen)
		g.hdrs[i].Hdr.Iov = &g.iovs[i]
		g.hdrs[i].Hdr.SetIovlen(1)
	}
	return g, nil
}

// Close closes the socket.
func (g *Generator) Close() error { return unix.Close(g.fd) }

// ARP sends n broadcast ARP requests asking for first, first+1, ...,
// first+n-1 and returns how many the kernel accepted.
func (g *Generator) ARP(first netip.Addr, n int) (int, error) {
	if !first.Is4() {
		return 0, fmt.Errorf("missgen: ARP target %v is not IPv4", first)
	}
	if !g.srcIP.Is4() {
		return 0, fmt.Errorf("missgen: ARP sender %v is not IPv4", g.srcIP)
	}
	base := binary.BigEndian.Uint32(first.AsSlice())
	src := g.srcIP.As4()
	return g.send(n, func(f []byte, i int) int {
		clear(f[:frameLen])
		var target [4]byte
		binary.BigEndian.PutUint32(target[:], base+uint32(i))
		arp.PutRequest(f, g.src, src, target)
		return frameLen
	})
}

// NS sends n IPv6 Neighbor Solicitations asking for first, first+1, ...,
// first+n-1 (the address as a 128-bit number, its last 64 bits counting),
// each to its target's solicited-node multicast group as a host sends it,
// and returns how many the kernel accepted. The generator's address must be
// IPv6.
func (g *Generator) NS(first netip.Addr, n int) (int, error) {
	if !first.Is6() || first.Is4In6() {
		return 0, fmt.Errorf("missgen: solicitation target %v is not IPv6", first)
	}
	if !g.srcIP.Is6() {
		return 0, fmt.Errorf("missgen: solicitation source %v is not IPv6", g.srcIP)
	}
	src := g.srcIP.As16()
	return g.send(n, func(f []byte, i int) int {
		return putNS(f, g.src, src, AddrAt(first, i).As16())
	})
}

// Unicast sends n frames to first, first+1, ... (the MAC as a 48-bit
// number) and returns how many the kernel accepted.
func (g *Generator) Unicast(first ethaddr.MAC, n int) (int, error) {
	var b [8]byte
	copy(b[2:], first[:])
	base := binary.BigEndian.Uint64(b[:])
	return g.send(n, func(f []byte, i int) int {
		clear(f[:frameLen])
		binary.BigEndian.PutUint64(b[:], base+uint64(i))
		copy(f[0:6], b[2:])
		copy(f[6:12], g.src[:])
		binary.BigEndian.PutUint16(f[12:14], etherTest)
		return frameLen
	})
}

// MACAt returns first+i, the i-th MAC Unicast sends to.
func MACAt(first ethaddr.MAC, i int) ethaddr.MAC {
	var b [8]byte
	copy(b[2:], first[:])
	binary.BigEndian.PutUint64(b[:], binary.BigEndian.Uint64(b[:])+uint64(i))
	return ethaddr.MAC(b[2:])
}

// AddrAt returns first+i, the i-th address ARP (IPv4) or NS (IPv6) asks
// for; for IPv6 the last 64 bits count.
func AddrAt(first netip.Addr, i int) netip.Addr {
	if first.Is6() {
		b := first.As16()
		binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+uint64(i))
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(first.AsSlice())+uint32(i))
	return netip.AddrFrom4(b)
}

// send sends n frames, fill writing the i-th into f and returning its
// length.
func (g *Generator) send(n int, fill func(f []byte, i int) int) (int, error) {
	sent := 0
	for sent < n {
		k := min(n-sent, batch)
		for j := range k {
			g.iovs[j].SetLen(fill(g.buf[j*slotLen:(j+1)*slotLen], sent+j))
		}
		off := 0
		for off < k {
			// One frame (an isolated miss) goes in a raw call that must not
			// wait: the Go runtime's syscall bookkeeping wakes the
			// generator process's monitor thread (sysmon), whose ticks in
			// the next few hundred microseconds would preempt the resolver
			// being measured on its CPU. A batch (hundreds of microseconds
			// of the kernel's time: each frame crosses the bridge and the
			// vxlan) and a full socket buffer go in an ordinary call, which
			// lets the runtime hand this thread's processor to the
			// goroutines of a resolver in the same process meanwhile.
			r, errno := uintptr(0), unix.EAGAIN
			if k-off == 1 {
				r, _, errno = unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(g.fd),
					uintptr(unsafe.Pointer(&g.hdrs[off])), 1, unix.MSG_DONTWAIT, 0, 0)
			}
			if errno == unix.EAGAIN {
				r, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd),
					uintptr(unsafe.Pointer(&g.hdrs[off])), uintptr(k-off), 0, 0, 0)
			}
			switch errno {
			case 0:
				off += int(r)
			case unix.EINTR, unix.ENOBUFS, unix.EAGAIN:
				// Transient: retry the rest of the batch.
			default:
				return sent + off, fmt.Errorf("missgen: sendmmsg: %w", errno)
			}
		}
		sent += k
	}
	return sent, nil
}
