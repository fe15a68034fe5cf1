package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// deadliner is what a Transport implements for Run to wake a blocked
// Receive when its context ends.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// wakeOnDone clears r's read deadline and, when ctx ends, sets one in the
// past to wake a parked read. Run defers the returned func, which waits for
// that wake-up if it fired and clears the deadline again for the next Run.
func wakeOnDone(ctx context.Context, r deadliner) (undo func()) {
	r.SetReadDeadline(time.Time{})
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		r.SetReadDeadline(time.Unix(1, 0)) // wakes a parked read
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
			r.SetReadDeadline(time.Time{}) // for the next Run
		}
	}
}

// newTransportMonitor returns a Monitor reading notifications from tr, one
// datagram at a time, keeping only datagrams whose first message has one of
// the types accept lists (all when nil): the socket filter's rule.
func newTransportMonitor(tr Transport, accept []uint16) *Monitor {
	m := &Monitor{
		tr:     tr,
		accept: accept,
		hdrs:   make([]unix.Mmsghdr, 1),
		names:  make([]unix.RawSockaddrNetlink, 1),
		buf:    make([]byte, monitorSlot),
	}
	m.ev.Neigh.LLAddr = m.llbuf[:0]
	return m
}

// runTransport is Run on a Transport: Receive in place of recvmmsg, the
// same delivery.
func (m *Monitor) runTransport(ctx context.Context, fn func(*Event) error) error {
	if dl, ok := m.tr.(deadliner); ok {
		defer wakeOnDone(ctx, dl)()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := m.tr.Receive(m.buf)
		if err != nil {
			if errors.Is(err, io.EOF) && !m.closed.Load() && ctx.Err() == nil {
				return nil // the transport has no more
			}
			if done, err := m.readFailed(ctx, "receive", err, fn); done {
				return err
			}
			continue
		}
		if n > len(m.buf) {
			return &OpError{Op: "receive", Err: errors.New("transport returned more than the buffer")}
		}
		if m.accept != nil && (n < HeaderLen || !slices.Contains(m.accept, binary.NativeEndian.Uint16(m.buf[4:6]))) {
			continue // the socket filter would have dropped it
		}
		m.syscalls.Add(1)
		m.hdrs[0] = unix.Mmsghdr{Len: uint32(n)}
		if err := m.deliver(1, fn); err != nil {
			return err
		}
	}
}
