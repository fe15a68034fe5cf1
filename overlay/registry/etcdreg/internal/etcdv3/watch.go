package etcdv3

import (
	"context"
	"errors"
	"fmt"
)

// EventType is what happened to a key (kv.proto Event.EventType).
type EventType int32

// The event types.
const (
	EventTypePut    EventType = 0
	EventTypeDelete EventType = 1
)

func (t EventType) String() string {
	switch t {
	case EventTypePut:
		return "PUT"
	case EventTypeDelete:
		return "DELETE"
	}
	return fmt.Sprintf("EventType(%d)", int32(t))
}

// Event is a change of one key.
type Event struct {
	Type EventType
	Kv   *KeyValue // the key after the change (for a delete: its key and the revision)
}

// WatchResponse is one batch of events, or the end of a watch.
type WatchResponse struct {
	Header          ResponseHeader
	Events          []*Event
	CompactRevision int64 // set when the watch's revision was compacted: the watch ended
	Canceled        bool  // the watch ended
	Created         bool

	cancelReason string
	closeErr     error
}

// Err returns why the watch ended (ErrCompacted, ErrNoLeader, ...), nil
// for a batch of events.
func (wr *WatchResponse) Err() error {
	switch {
	case wr.closeErr != nil:
		return wr.closeErr
	case wr.CompactRevision != 0:
		return ErrCompacted
	case wr.Canceled && wr.cancelReason == ErrNoLeader.Error():
		return ErrNoLeader
	case wr.Canceled && wr.cancelReason != "":
		return &Error{Canceled, wr.cancelReason}
	case wr.Canceled:
		return ErrFutureRev
	}
	return nil
}

// WatchChan delivers a watch's responses.
type WatchChan <-chan WatchResponse

// Watch watches key (a range with WithPrefix or WithRange) from revision
// WithRev (0: from now) until ctx ends or the client closes. A broken
// stream is resumed, at the next endpoint when the one in use cannot be
// reached, from the revision after the last event delivered: no event is
// lost or repeated. The channel is closed after a response that ends the
// watch (Err not nil: compaction, no leader under WithRequireLeader) or
// when ctx ends.
func (c *Client) Watch(ctx context.Context, key string, opts ...OpOption) WatchChan {
	ch := make(chan WatchResponse)
	if c.ctx.Err() != nil {
		close(ch)
		return ch
	}
	op := OpGet(key, opts...)
	wctx, cancel := c.merged(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(ch)
		defer cancel()
		c.watch(wctx, &op, ch)
	}()
	return ch
}

// watch runs watch streams until one ends the watch.
func (c *Client) watch(ctx context.Context, op *Op, ch chan<- WatchResponse) {
	b := newBackoff()
	next := op.rev
	for ctx.Err() == nil {
		ep := c.tr.endpoint()
		delivered := next
		err := c.watchStream(ctx, ep, op, &next, ch)
		switch {
		case err == nil, ctx.Err() != nil:
			return
		case ctx.Value(requireLeaderKey{}) != nil && errors.Is(err, ErrNoLeader):
			c.deliver(ctx, ch, WatchResponse{Canceled: true, closeErr: err})
			return
		case authRejected(err) && c.cfg.Username != "":
			if c.authenticate(ctx) == nil {
				continue
			}
		case !retryable(err, true):
			c.deliver(ctx, ch, WatchResponse{Canceled: true, closeErr: err})
			return
		default:
			c.tr.failed(ep)
		}
		if next != delivered {
			b = newBackoff()
		}
		b.Wait(ctx)
	}
}

// watchStream watches on one stream from *next, advancing it past each
// response delivered. It returns nil when the watch ended (the ending
// response delivered), or the error that broke the stream.
func (c *Client) watchStream(ctx context.Context, ep string, op *Op, next *int64, ch chan<- WatchResponse) error {
	s, err := c.tr.open(ctx, ep, methodWatch, c.metadata(ctx), op.appendWatchCreate(nil, *next))
	if err != nil {
		return err
	}
	defer s.close()
	for {
		b, err := s.recv()
		if err != nil {
			return err
		}
		wr, err := decodeWatchResponse(b)
		if err != nil {
			return &ConnError{Endpoint: ep, Err: err}
		}
		switch {
		case wr.Canceled || wr.CompactRevision != 0:
			if wr.cancelReason == ErrNoLeader.Error() {
				return &Error{Unavailable, wr.cancelReason} // resumed, unless WithRequireLeader
			}
			c.deliver(ctx, ch, *wr)
			return nil
		case wr.Created:
			if *next == 0 {
				*next = wr.Header.Revision + 1
			}
			continue
		case len(wr.Events) == 0:
			continue // progress
		}
		if !c.deliver(ctx, ch, *wr) {
			return nil
		}
		*next = wr.Events[len(wr.Events)-1].Kv.ModRevision + 1
	}
}

// appendWatchCreate encodes a WatchRequest creating a watch of op's keys
// from revision start.
func (op *Op) appendWatchCreate(b []byte, start int64) []byte {
	return appendMessage(b, 1, func(b []byte) []byte {
		b = appendBytes(b, 1, op.key)
		b = appendBytes(b, 2, op.end)
		return appendInt(b, 3, start)
	})
}

func (c *Client) deliver(ctx context.Context, ch chan<- WatchResponse, wr WatchResponse) bool {
	select {
	case ch <- wr:
		return true
	case <-ctx.Done():
		return false
	}
}

func decodeWatchResponse(b []byte) (*WatchResponse, error) {
	wr := &WatchResponse{}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			if h := d.header(); h != nil {
				wr.Header = *h
			}
		case 3:
			wr.Created = d.bool()
		case 4:
			wr.Canceled = d.bool()
		case 5:
			wr.CompactRevision = d.int64()
		case 6:
			wr.cancelReason = string(d.bytes())
		case 7:
			if d.bool() {
				d.check(errors.New("fragmented response not asked for"))
			}
		case 11:
			ev, err := decodeEvent(d.bytes())
			d.check(err)
			wr.Events = append(wr.Events, ev)
		}
	}
	if err := d.err(); err != nil {
		return nil, fmt.Errorf("etcdv3: WatchResponse: %w", err)
	}
	return wr, nil
}

func decodeEvent(b []byte) (*Event, error) {
	ev := &Event{Kv: &KeyValue{}}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			ev.Type = EventType(d.int64())
		case 2:
			d.check(decodeKeyValue(d.bytes(), ev.Kv))
		}
	}
	if d.err() == nil && ev.Type != EventTypePut && ev.Type != EventTypeDelete {
		d.check(fmt.Errorf("unknown event type %d", ev.Type))
	}
	return ev, d.err()
}
