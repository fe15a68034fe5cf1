package rtnltest

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Notifier is a rtnl.Transport for a Monitor (rtnl.NewMonitor):
// it plays the kernel's side of the RTNLGRP_NEIGH group, delivering the
// notifications a test scripts, in order, one datagram per Receive, and an
// overrun (ENOBUFS, as recvmsg reports a receive-buffer overflow) where the
// script says. Receive blocks while nothing is scripted, until more is,
// the read deadline passes (the Monitor sets it when Run's context ends),
// the script is ended (End) or the Notifier is closed. It is safe for
// concurrent use: a test may script while a Monitor runs.
type Notifier struct {
	mu       sync.Mutex
	queue    []notification
	ended    bool
	closed   bool
	deadline time.Time
	wake     chan struct{} // closed and replaced on every change
}

// notification is one scripted datagram, or an overrun when b is nil.
type notification struct{ b []byte }

// NewNotifier returns a Notifier with nothing scripted.
func NewNotifier() *Notifier {
	return &Notifier{wake: make(chan struct{})}
}

// changed wakes the Receives waiting; n.mu is held.
func (n *Notifier) changed() {
	close(n.wake)
	n.wake = make(chan struct{})
}

// Notify scripts one datagram holding msgs, framed as the kernel frames a
// notification (sequence 0, port id 0, the Message's type and flags), e.g.
// Reply(rtnl.MsgGetNeigh, &miss). The kernel sends each neighbour
// notification alone: pass one Message unless a test wants a packed
// datagram.
func (n *Notifier) Notify(msgs ...Message) {
	var d []byte
	for _, m := range msgs {
		d = append(d, message(Request{}, m.Type, m.Flags, m.Data)...)
	}
	n.Datagram(d)
}

// Datagram scripts one datagram as given: netlink messages with their
// headers, e.g. a notification captured from the kernel.
func (n *Notifier) Datagram(b []byte) {
	n.push(notification{b: append([]byte{}, b...)})
}

// Overrun scripts a receive-buffer overflow: the Receive reaching it fails
// with syscall.ENOBUFS, which a Monitor delivers as rtnl.EventOverrun.
func (n *Notifier) Overrun() { n.push(notification{}) }

func (n *Notifier) push(x notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.queue = append(n.queue, x)
	n.changed()
}

// End ends the script: once what is scripted has been received, Receive
// returns io.EOF, which ends a Monitor's Run with nil.
func (n *Notifier) End() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ended = true
	n.changed()
}

// Pending returns how many scripted datagrams and overruns are not yet
// received.
func (n *Notifier) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.queue)
}

// errDeadline is what Receive returns past the read deadline (as a socket:
// os.ErrDeadlineExceeded wraps the same timeout).
var errDeadline = errors.New("rtnltest: notifier read deadline exceeded")

// Receive copies the next scripted datagram into b, or fails with
// syscall.ENOBUFS for a scripted overrun. It blocks while nothing is
// scripted; it returns io.EOF after End, ErrClosed after Close, and an
// error past the read deadline.
func (n *Notifier) Receive(b []byte) (int, error) {
	for {
		n.mu.Lock()
		switch {
		case n.closed:
			n.mu.Unlock()
			return 0, ErrClosed
		case len(n.queue) > 0:
			x := n.queue[0]
			if len(x.b) > len(b) {
				n.mu.Unlock()
				return 0, errors.New("rtnltest: scripted datagram does not fit the receive buffer")
			}
			n.queue = n.queue[1:]
			n.mu.Unlock()
			if x.b == nil {
				return 0, syscall.ENOBUFS
			}
			return copy(b, x.b), nil
		case n.ended:
			n.mu.Unlock()
			return 0, io.EOF
		}
		if !n.deadline.IsZero() && !time.Now().Before(n.deadline) {
			n.mu.Unlock()
			return 0, errDeadline
		}
		wake, deadline := n.wake, n.deadline
		n.mu.Unlock()
		if deadline.IsZero() {
			<-wake
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// SetReadDeadline sets the time after which a Receive with nothing to
// deliver fails (the zero time: none), waking a blocked one.
func (n *Notifier) SetReadDeadline(t time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deadline = t
	n.changed()
	return nil
}

// Send fails: a monitor sends nothing.
func (n *Notifier) Send([]byte) error {
	return errors.New("rtnltest: a Notifier carries notifications only (use a Transport for requests)")
}

// Close makes every Receive, blocked or later, fail with ErrClosed.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	n.changed()
	return nil
}

var _ rtnl.Transport = (*Notifier)(nil)
