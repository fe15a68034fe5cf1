package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
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

// MonitorFilter selects the notifications a Monitor delivers.
type MonitorFilter uint8

// Monitor filters.
const (
	// MonitorAll delivers misses and neighbour changes.
	MonitorAll MonitorFilter = iota
	// MonitorMisses keeps only miss notifications (nlmsg_type
	// RTM_GETNEIGH: L2/L3 misses and app_solicit requests): Run never
	// delivers EventNeighAdd or EventNeighDelete; EventOverrun still comes.
	MonitorMisses
	// MonitorChanges keeps only neighbour and FDB changes (RTM_NEWNEIGH and
	// RTM_DELNEIGH): Run never delivers EventMiss.
	MonitorChanges
)

// String returns "all", "misses" or "changes".
func (f MonitorFilter) String() string {
	switch f {
	case MonitorAll:
		return "all"
	case MonitorMisses:
		return "misses"
	case MonitorChanges:
		return "changes"
	}
	return fmt.Sprintf("MonitorFilter(%d)", uint8(f))
}

// types returns the message types f keeps; n is 0 for all.
func (f MonitorFilter) types() (t [2]uint16, n int) {
	switch f {
	case MonitorMisses:
		return [2]uint16{MsgGetNeigh}, 1
	case MonitorChanges:
		return [2]uint16{MsgNewNeigh, MsgDelNeigh}, 2
	}
	return t, 0
}

// keeps reports whether f keeps the datagram b, by the type of its first
// message: the rule of the socket filter DialMonitor attaches (the kernel
// sends each neighbour notification in a datagram of its own).
func (f MonitorFilter) keeps(b []byte) bool {
	t, n := f.types()
	if n == 0 {
		return true
	}
	if len(b) < HeaderLen {
		return false
	}
	typ := binary.NativeEndian.Uint16(b[4:6])
	for _, k := range t[:n] {
		if typ == k {
			return true
		}
	}
	return false
}

// MonitorConfig tunes the socket DialMonitor opens. The zero value watches
// the calling thread's network namespace with a 32 MiB forced receive
// buffer.
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
	// that keeps only miss notifications (MonitorMisses). The kernel then
	// drops the RTM_NEWNEIGH/RTM_DELNEIGH notifications, e.g. the echoes of
	// every entry a resolver programs, before they are queued: they cost no
	// wake-up, no receive-buffer room and no decoding.
	MissesOnly bool
	// ChangesOnly attaches the opposite filter (MonitorChanges), for a
	// watcher of the tables that has no use for misses. It cannot be
	// combined with MissesOnly.
	ChangesOnly bool
}

// Filter returns the MonitorFilter that MissesOnly and ChangesOnly select,
// and an error if both are set.
func (c MonitorConfig) Filter() (MonitorFilter, error) {
	switch {
	case c.MissesOnly && c.ChangesOnly:
		return 0, errors.New("rtnl: monitor: MissesOnly and ChangesOnly exclude each other")
	case c.MissesOnly:
		return MonitorMisses, nil
	case c.ChangesOnly:
		return MonitorChanges, nil
	}
	return MonitorAll, nil
}

// Monitor reads the RTNLGRP_NEIGH multicast group of one network namespace:
// vxlan L2/L3 misses, app_solicit requests, and neighbour/FDB changes. On a
// socket (DialMonitor) it reads in batches with recvmmsg through the Go
// runtime's poller; on a Transport (NewMonitor) one datagram per Receive.
// Either way one loop decodes misses without allocating and turns a
// receive-buffer overflow into an EventOverrun instead of an error.
type Monitor struct {
	src    datagramSource
	dl     deadliner             // wakes a blocked read; nil if the source has none
	dial   func() (*Conn, error) // opens Resync's request socket; nil on a Transport
	rcvbuf int
	mu     sync.Mutex // one Run at a time
	resync sync.Mutex // guards req
	req    *Conn
	closed atomic.Bool
	ev     Event
	llbuf  [neighMaxLLAddrLen]byte

	datagrams, messages, l3, l2, app, adds, dels, overruns, decodeErrs, ignored, syscalls atomic.Uint64
}

// datagramSource is what a Monitor reads: the socket DialMonitor opens
// (several datagrams per recvmmsg) or a Transport (one per Receive).
type datagramSource interface {
	// receive blocks for one or more datagrams. They alias the source's
	// buffers until the next call.
	receive() ([]datagram, error)
	Close() error
}

// datagram is one datagram a source read, and what the socket said of it.
type datagram struct {
	b     []byte
	pid   uint32 // the sender's port id: 0 is the kernel
	trunc bool   // longer than its buffer (MSG_TRUNC): not decodable
}

// NewMonitor returns a Monitor reading notifications from tr, each Receive
// one datagram as the kernel sends it to the group (package rtnltest
// scripts one; a relay or a replay of captured notifications is another),
// keeping what filter selects. Run runs the loop it runs on a socket;
// Resync needs a socket and fails. Close closes tr.
func NewMonitor(tr Transport, filter MonitorFilter) *Monitor {
	dl, _ := tr.(deadliner)
	return newMonitor(&transportSource{tr: tr, filter: filter, buf: make([]byte, monitorSlot)}, dl)
}

func newMonitor(src datagramSource, dl deadliner) *Monitor {
	m := &Monitor{src: src, dl: dl}
	m.ev.Neigh.LLAddr = m.llbuf[:0]
	return m
}

// ReceiveBuffer returns the socket's effective receive buffer in bytes (what
// the kernel reports, twice what was asked for); 0 on a Transport.
func (m *Monitor) ReceiveBuffer() int { return m.rcvbuf }

// errMonitorClosed is returned by Run after Close.
var errMonitorClosed = errors.New("rtnl: monitor closed")

// Run reads notifications until ctx is done, Close is called, fn returns an
// error or the socket fails, and calls fn for each event with one reused
// Event. It returns ctx.Err() when ctx ends, nil after Close (and at the end
// of a Transport's stream), and fn's error as is. An overflow of the receive
// buffer is delivered as EventOverrun and reading goes on. Only one Run may
// be active at a time; Run starts no goroutine.
func (m *Monitor) Run(ctx context.Context, fn func(*Event) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return errMonitorClosed
	}
	if m.dl != nil {
		defer wakeOnDone(ctx, m.dl)()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ds, err := m.src.receive()
		if err != nil {
			if done, err := m.readFailed(ctx, err, fn); done {
				return err
			}
			continue
		}
		if len(ds) == 0 {
			continue
		}
		m.syscalls.Add(1)
		if err := m.deliver(ds, fn); err != nil {
			return err
		}
	}
}

// readFailed says what a failed read means for Run: done, with what Run
// returns (nil once closed or at the end of the stream, ctx's error once it
// ended, the overrun callback's error, or the read error), or go on after an
// overrun (ENOBUFS) was delivered.
func (m *Monitor) readFailed(ctx context.Context, err error, fn func(*Event) error) (done bool, ret error) {
	switch {
	case m.closed.Load():
		return true, nil
	case ctx.Err() != nil:
		return true, ctx.Err()
	case errors.Is(err, syscall.ENOBUFS):
		m.overruns.Add(1)
		m.ev = Event{Kind: EventOverrun, Neigh: NeighMessage{LLAddr: m.llbuf[:0]}}
		if err := fn(&m.ev); err != nil {
			return true, err
		}
		return false, nil
	case errors.Is(err, io.EOF):
		return true, nil
	}
	return true, err
}

// deliver classifies the datagrams just read and hands events to fn.
func (m *Monitor) deliver(ds []datagram, fn func(*Event) error) error {
	m.datagrams.Add(uint64(len(ds)))
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
	for i := range ds {
		d := &ds[i]
		if d.pid != 0 {
			ignored++ // not from the kernel
			continue
		}
		if d.trunc {
			bad++
			continue
		}
		b := d.b
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
// on first use. A Monitor on a Transport has no socket to open: Resync
// fails there.
func (m *Monitor) Resync(f NeighFilter, fn func(*NeighMessage) error) error {
	m.resync.Lock()
	defer m.resync.Unlock()
	if m.closed.Load() {
		return errMonitorClosed
	}
	if m.dial == nil {
		return errors.New("rtnl: monitor: Resync needs a socket (this monitor reads a Transport)")
	}
	if m.req == nil {
		c, err := m.dial()
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
	f.Family = FamilyBridge
	return m.req.NeighDump(f, fn)
}

// Close closes the monitor's socket or Transport (and Resync's socket) and
// makes a running Run return nil.
func (m *Monitor) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	err := m.src.Close()
	m.resync.Lock()
	if m.req != nil {
		m.req.Close()
	}
	m.resync.Unlock()
	return err
}
