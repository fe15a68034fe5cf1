package rtnl

import (
	"context"
	"errors"
	"time"
)

// deadliner is what a source implements for Run to wake a blocked read
// when its context ends: a socket, or a Transport that has the method.
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

// transportSource reads a Monitor's datagrams from a Transport, one per
// Receive, and applies the filter a socket's BPF program applies in the
// kernel.
type transportSource struct {
	tr     Transport
	filter MonitorFilter
	buf    []byte
	d      [1]datagram
}

var errTransportOverflow = errors.New("rtnl: transport returned more than the buffer")

// receive returns the next datagram, or none when the filter dropped it
// (Run then checks its context before reading on).
func (s *transportSource) receive() ([]datagram, error) {
	n, err := s.tr.Receive(s.buf)
	if err != nil {
		return nil, &OpError{Op: "receive", Err: err}
	}
	if n < 0 || n > len(s.buf) {
		return nil, &OpError{Op: "receive", Err: errTransportOverflow}
	}
	if !s.filter.keeps(s.buf[:n]) {
		return s.d[:0], nil
	}
	s.d[0] = datagram{b: s.buf[:n]}
	return s.d[:], nil
}

func (s *transportSource) Close() error { return s.tr.Close() }
