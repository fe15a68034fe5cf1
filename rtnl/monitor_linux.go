package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Monitor defaults.
const (
	// DefaultMonitorReceiveBuffer is the receive buffer a Monitor forces
	// when MonitorConfig.ReceiveBuffer is 0: 32 MiB (the kernel doubles it),
	// room for some 80,000 queued notifications, where the kernel's default
	// holds about 256.
	DefaultMonitorReceiveBuffer = 32 << 20
	// DefaultMonitorBatch is the default recvmmsg vector length.
	DefaultMonitorBatch = 64
	// monitorSlot is the buffer for one datagram. A neighbour notification
	// is one message of a few hundred bytes at most.
	monitorSlot = 4096
	// rtnlgrpNeigh is RTNLGRP_NEIGH.
	rtnlgrpNeigh = 3
)

// MonitorConfig tunes a Monitor. The zero value watches the calling
// thread's network namespace with a 32 MiB forced receive buffer.
type MonitorConfig struct {
	// NetNS is the network namespace to watch; nil means the calling
	// thread's. The socket stays bound to it.
	NetNS *NetNS
	// ReceiveBuffer is the socket receive buffer in bytes, forced past
	// net.core.rmem_max with SO_RCVBUFFORCE when the process has
	// CAP_NET_ADMIN (the kernel doubles it). 0 means
	// DefaultMonitorReceiveBuffer; -1 keeps the kernel's default.
	ReceiveBuffer int
	// BatchSize is how many datagrams one recvmmsg call may return; 0 means
	// DefaultMonitorBatch.
	BatchSize int
	// MissesOnly attaches a classic BPF socket filter (SO_ATTACH_FILTER)
	// that keeps only miss notifications (nlmsg_type RTM_GETNEIGH: L2/L3
	// misses and app_solicit requests). The kernel then drops the
	// RTM_NEWNEIGH/RTM_DELNEIGH notifications, e.g. the echoes of every
	// entry a resolver programs, before they are queued: they cost no
	// wake-up, no receive-buffer room and no decoding. Run never delivers
	// EventNeighAdd or EventNeighDelete then; EventOverrun still comes.
	// The filter looks at a datagram's first message only: the kernel
	// sends each neighbour notification in a datagram of its own.
	MissesOnly bool
	// ChangesOnly attaches the opposite filter: it keeps only neighbour
	// and FDB changes (RTM_NEWNEIGH and RTM_DELNEIGH), for a watcher of the
	// tables that has no use for misses. Run never delivers EventMiss then.
	// It cannot be combined with MissesOnly.
	ChangesOnly bool
	// Transport, when set, is read for notifications in place of a socket:
	// each Receive returns one datagram as the kernel would send it to the
	// group (package rtnltest scripts one; a relay or a replay of captured
	// notifications is another). A Receive error that is unix.ENOBUFS is an
	// overrun, as on a socket, and io.EOF ends Run with nil: the stream is
	// over. Run wakes a Receive blocked when ctx ends if the Transport has a
	// SetReadDeadline(time.Time) error method (as a socket does); without
	// one it notices ctx between datagrams. MissesOnly and ChangesOnly keep
	// their meaning (the monitor applies them to each datagram); NetNS,
	// ReceiveBuffer and BatchSize are not used, and Resync fails.
	Transport Transport
}

// Monitor reads the RTNLGRP_NEIGH multicast group of one network namespace:
// vxlan L2/L3 misses, app_solicit requests, and neighbour/FDB changes. It
// reads in batches with recvmmsg through the Go runtime's poller, decodes
// misses without allocating, and turns a receive-buffer overflow into an
// EventOverrun instead of an error.
type Monitor struct {
	file *os.File
	rc   interface {
		Read(func(uintptr) bool) error
	}
	netns   *NetNS
	rcvbuf  int
	mu      sync.Mutex // one Run at a time
	resync  sync.Mutex // guards req
	req     *Conn
	closed  atomic.Bool
	hdrs    []unix.Mmsghdr
	names   []unix.RawSockaddrNetlink
	iovs    []unix.Iovec
	buf     []byte
	ev      Event
	llbuf   [neighMaxLLAddrLen]byte
	readFn  func(uintptr) bool // built once: passing a fresh closure to Read allocates
	nread   int
	readErr error
	tr      Transport // nil for a socket
	accept  []uint16  // with tr: the message types MissesOnly/ChangesOnly keep

	datagrams, messages, l3, l2, app, adds, dels, overruns, decodeErrs, ignored, syscalls atomic.Uint64
}

// NewMonitor opens a NETLINK_ROUTE socket in cfg.NetNS subscribed to
// RTNLGRP_NEIGH. Close it when done.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	if cfg.MissesOnly && cfg.ChangesOnly {
		return nil, errors.New("rtnl: monitor: MissesOnly and ChangesOnly exclude each other")
	}
	var accept []uint16
	switch {
	case cfg.MissesOnly:
		accept = []uint16{unix.RTM_GETNEIGH}
	case cfg.ChangesOnly:
		accept = []uint16{unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH}
	}
	if cfg.Transport != nil {
		return newTransportMonitor(cfg.Transport, accept), nil
	}
	var filter []unix.SockFilter
	if accept != nil {
		filter = typeFilter(accept...)
	}
	batch := cfg.BatchSize
	if batch <= 0 {
		batch = DefaultMonitorBatch
	}
	var fd int
	open := func() error {
		var err error
		fd, err = openMonitorSocket(cfg.ReceiveBuffer, filter)
		return err
	}
	var err error
	if cfg.NetNS != nil {
		err = cfg.NetNS.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	rcvbuf, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "getsockopt", Err: err}
	}
	// A non-blocking descriptor joins the runtime poller: reads park the
	// goroutine instead of a thread, and deadlines and Close wake them.
	f := os.NewFile(uintptr(fd), "rtnetlink-monitor")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("rtnl: monitor: %w", err)
	}
	m := &Monitor{
		file:   f,
		rc:     rc,
		netns:  cfg.NetNS,
		rcvbuf: rcvbuf,
		hdrs:   make([]unix.Mmsghdr, batch),
		names:  make([]unix.RawSockaddrNetlink, batch),
		iovs:   make([]unix.Iovec, batch),
		buf:    make([]byte, batch*monitorSlot),
	}
	for i := range m.hdrs {
		m.iovs[i].Base = &m.buf[i*monitorSlot]
		m.iovs[i].SetLen(monitorSlot)
		m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	m.ev.Neigh.LLAddr = m.llbuf[:0]
	m.readFn = m.recvmmsg
	return m, nil
}

func openMonitorSocket(rcvbuf int, filter []unix.SockFilter) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, &OpError{Op: "socket", Err: err}
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, &OpError{Op: op, Err: err}
	}
	if rcvbuf == 0 {
		rcvbuf = DefaultMonitorReceiveBuffer
	}
	if rcvbuf > 0 {
		if err := setReceiveBuffer(fd, rcvbuf); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if len(filter) > 0 {
		// Before joining the group: no notification gets past unfiltered.
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fail("attach socket filter", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptInt(fd, solNetlink, optAddMembership, rtnlgrpNeigh); err != nil {
		return fail("join RTNLGRP_NEIGH", err)
	}
	return fd, nil
}

// typeFilter returns the classic BPF program of MonitorConfig.MissesOnly
// and ChangesOnly: accept a datagram whose first message has one of the
// nlmsg_types types, drop the rest. The packet data of a netlink skb starts
// at the nlmsghdr; BPF_LD|BPF_H|BPF_ABS reads big-endian, so each constant
// is the host-order type as such a load sees it. A datagram shorter than a
// header fails the load, which drops it.
func typeFilter(types ...uint16) []unix.SockFilter {
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 4}} // A = nlmsg_type
	for i, t := range types {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], t)
		// Jump to the accept after the remaining compares, else go on.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			Jt: uint8(len(types) - 1 - i + 1), K: uint32(binary.BigEndian.Uint16(b[:]))})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // accept all of it
	)
}

// ReceiveBuffer returns the socket's effective receive buffer in bytes (what
// the kernel reports, twice what was asked for); 0 on a Transport.
func (m *Monitor) ReceiveBuffer() int { return m.rcvbuf }

// overrun delivers EventOverrun for an ENOBUFS from the socket or the
// Transport: the kernel dropped notifications.
func (m *Monitor) overrun(fn func(*Event) error) error {
	m.overruns.Add(1)
	m.ev = Event{Kind: EventOverrun, Neigh: NeighMessage{LLAddr: m.llbuf[:0]}}
	return fn(&m.ev)
}

// recvmmsg is the poller callback: it returns false to wait for readiness.
func (m *Monitor) recvmmsg(fd uintptr) bool {
	for i := range m.hdrs {
		m.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		m.hdrs[i].Hdr.Flags = 0
		m.hdrs[i].Len = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hdrs[0])),
			uintptr(len(m.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.nread, m.readErr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.nread, m.readErr = 0, errno
		return true
	}
}

// errMonitorClosed is returned by Run after Close.
var errMonitorClosed = errors.New("rtnl: monitor closed")

// Run reads notifications until ctx is done, Close is called, fn returns an
// error or the socket fails, and calls fn for each event with one reused
// Event. It returns ctx.Err() when ctx ends, nil after Close, and fn's error
// as is. An overflow of the receive buffer is delivered as EventOverrun and
// reading goes on. Only one Run may be active at a time; Run starts no
// goroutine.
func (m *Monitor) Run(ctx context.Context, fn func(*Event) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return errMonitorClosed
	}
	if m.tr != nil {
		return m.runTransport(ctx, fn)
	}
	defer wakeOnDone(ctx, m.file)()
	for {
		err := m.rc.Read(m.readFn)
		if err == nil {
			err = m.readErr
		}
		if err != nil {
			if done, err := m.readFailed(ctx, "recvmmsg", err, fn); done {
				return err
			}
			continue
		}
		m.syscalls.Add(1)
		if err := m.deliver(m.nread, fn); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// readFailed says what a failed read (op) means for Run: done, with what
// Run returns (nil once closed, ctx's error once it ended, the overrun
// callback's error, or the read error), or go on after an overrun (ENOBUFS)
// was delivered.
func (m *Monitor) readFailed(ctx context.Context, op string, err error, fn func(*Event) error) (done bool, ret error) {
	switch {
	case m.closed.Load():
		return true, nil
	case ctx.Err() != nil:
		return true, ctx.Err()
	case errors.Is(err, unix.ENOBUFS):
		if err := m.overrun(fn); err != nil {
			return true, err
		}
		return false, nil
	}
	return true, &OpError{Op: op, Err: err}
}

// deliver classifies the n datagrams just read and hands events to fn.
func (m *Monitor) deliver(n int, fn func(*Event) error) error {
	m.datagrams.Add(uint64(n))
	var msgs, ignored, bad, l3, l2, app, adds, dels uint64
	defer func() {
		m.messages.Add(msgs)
		m.ignored.Add(ignored)
		m.decodeErrs.Add(bad)
		m.l3.Add(l3)
		m.l2.Add(l2)
		m.app.Add(app)
		m.adds.Add(adds)
		m.dels.Add(dels)
	}()
	for i := range n {
		h := &m.hdrs[i]
		if m.names[i].Pid != 0 {
			ignored++ // not from the kernel
			continue
		}
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			bad++
			continue
		}
		b := m.buf[i*monitorSlot : i*monitorSlot+int(h.Len)]
		for len(b) >= HeaderLen {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < HeaderLen || l > len(b) {
				bad++ // framing error: the rest of the datagram is lost
				break
			}
			msgs++
			ok, err := Classify(b[:l], &m.ev)
			b = b[min(Align(l), len(b)):]
			if err != nil {
				bad++
				continue
			}
			if !ok {
				ignored++
				continue
			}
			switch m.ev.Kind {
			case EventMiss:
				switch m.ev.Miss.Kind {
				case MissL3:
					l3++
				case MissL2:
					l2++
				default:
					app++
				}
			case EventNeighAdd:
				adds++
			case EventNeighDelete:
				dels++
			}
			if err := fn(&m.ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stats returns the monitor's counters.
func (m *Monitor) Stats() MonitorStats {
	return MonitorStats{
		Datagrams:    m.datagrams.Load(),
		Messages:     m.messages.Load(),
		L3Misses:     m.l3.Load(),
		L2Misses:     m.l2.Load(),
		AppSolicits:  m.app.Load(),
		NeighAdds:    m.adds.Load(),
		NeighDeletes: m.dels.Load(),
		Overruns:     m.overruns.Load(),
		DecodeErrors: m.decodeErrs.Load(),
		Ignored:      m.ignored.Load(),
		Syscalls:     m.syscalls.Load(),
	}
}

// Resync dumps the current neighbour entries (ARP and ND) and FDB entries
// (AF_BRIDGE: bridges' and vxlan devices' own) of the monitor's namespace
// that f selects, and calls fn for each, with one reused message. f.Family
// 0 means both dumps, IP neighbours first; f.Ifindex and f.Master filter
// the strict-check way (attributes). Call it after an EventOverrun, or at
// start-up, from any goroutine; it uses a request socket of its own, opened
// on first use.
func (m *Monitor) Resync(f NeighFilter, fn func(*NeighMessage) error) error {
	m.resync.Lock()
	defer m.resync.Unlock()
	if m.closed.Load() {
		return errMonitorClosed
	}
	if m.tr != nil {
		return errors.New("rtnl: monitor: Resync needs a socket (this monitor reads a Transport)")
	}
	if m.req == nil {
		c, err := Dial(&Config{NetNS: m.netns, ReceiveBuffer: -1})
		if err != nil {
			return err
		}
		m.req = c
	}
	if f.Family != 0 {
		return m.req.NeighDump(f, fn)
	}
	if err := m.req.NeighDump(f, fn); err != nil {
		return err
	}
	f.Family = unix.AF_BRIDGE
	return m.req.NeighDump(f, fn)
}

// Close closes the monitor's sockets and makes a running Run return nil.
func (m *Monitor) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	var err error
	if m.tr != nil {
		err = m.tr.Close()
	} else {
		err = m.file.Close()
	}
	m.resync.Lock()
	if m.req != nil {
		m.req.Close()
	}
	m.resync.Unlock()
	return err
}
