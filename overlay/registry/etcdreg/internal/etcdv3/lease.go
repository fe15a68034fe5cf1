package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LeaseID names a lease; 0 is none.
type LeaseID int64

// LeaseGrantResponse is the answer to Grant.
type LeaseGrantResponse struct {
	Header *ResponseHeader
	ID     LeaseID
	TTL    int64 // seconds, as granted
	Error  string
}

// LeaseRevokeResponse is the answer to Revoke.
type LeaseRevokeResponse struct{ Header *ResponseHeader }

// LeaseTimeToLiveResponse is the answer to TimeToLive.
type LeaseTimeToLiveResponse struct {
	Header     *ResponseHeader
	ID         LeaseID
	TTL        int64 // seconds left; -1 for a lease that is gone
	GrantedTTL int64
}

// LeaseKeepAliveResponse is one renewal of a lease.
type LeaseKeepAliveResponse struct {
	Header *ResponseHeader
	ID     LeaseID
	TTL    int64 // seconds; 0 or less: the lease is gone
}

// Grant grants a lease of ttl seconds.
func (c *Client) Grant(ctx context.Context, ttl int64) (*LeaseGrantResponse, error) {
	b, err := c.call(ctx, methodGrant, appendInt(nil, 1, ttl), callOpts{})
	if err != nil {
		return nil, err
	}
	r, err := decodeGrantResponse(b)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, fmt.Errorf("etcdv3: grant lease: %s", r.Error)
	}
	return r, nil
}

// Revoke revokes the lease id, deleting the keys attached to it.
func (c *Client) Revoke(ctx context.Context, id LeaseID) (*LeaseRevokeResponse, error) {
	b, err := c.call(ctx, methodRevoke, appendInt(nil, 1, int64(id)), callOpts{})
	if err != nil {
		return nil, err
	}
	h, err := decodeHeaderOnly(b)
	if err != nil {
		return nil, fmt.Errorf("etcdv3: LeaseRevokeResponse: %w", err)
	}
	return &LeaseRevokeResponse{Header: h}, nil
}

// TimeToLive returns the time left of the lease id (TTL -1 once it is
// gone).
func (c *Client) TimeToLive(ctx context.Context, id LeaseID) (*LeaseTimeToLiveResponse, error) {
	b, err := c.call(ctx, methodTimeToLive, appendInt(nil, 1, int64(id)), callOpts{idempotent: true})
	if err != nil {
		return nil, err
	}
	return decodeTimeToLiveResponse(b)
}

func decodeGrantResponse(b []byte) (*LeaseGrantResponse, error) {
	l, err := decodeLease(b, "LeaseGrantResponse")
	if err != nil {
		return nil, err
	}
	return &LeaseGrantResponse{Header: l.header, ID: l.id, TTL: l.ttl, Error: l.errText}, nil
}

func decodeTimeToLiveResponse(b []byte) (*LeaseTimeToLiveResponse, error) {
	l, err := decodeLease(b, "LeaseTimeToLiveResponse")
	if err != nil {
		return nil, err
	}
	return &LeaseTimeToLiveResponse{Header: l.header, ID: l.id, TTL: l.ttl, GrantedTTL: l.granted}, nil
}

func decodeKeepAliveResponse(b []byte) (*LeaseKeepAliveResponse, error) {
	l, err := decodeLease(b, "LeaseKeepAliveResponse")
	if err != nil {
		return nil, err
	}
	return &LeaseKeepAliveResponse{Header: l.header, ID: l.id, TTL: l.ttl}, nil
}

// leaseFields are the fields the lease responses share: header, ID and
// TTL (1 to 3), and the fourth of two of them (LeaseGrantResponse's error
// text, LeaseTimeToLiveResponse's granted TTL).
type leaseFields struct {
	header  *ResponseHeader
	id      LeaseID
	ttl     int64
	granted int64
	errText string
}

func decodeLease(b []byte, what string) (leaseFields, error) {
	l := leaseFields{header: &ResponseHeader{}}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			l.header = d.header()
		case 2:
			l.id = LeaseID(d.int64())
		case 3:
			l.ttl = d.int64()
		case 4:
			if d.wt == wireBytes {
				l.errText = string(d.bytes())
			} else {
				l.granted = d.int64()
			}
		}
	}
	if err := d.err(); err != nil {
		return l, fmt.Errorf("etcdv3: %s: %w", what, err)
	}
	return l, nil
}

// KeepAlive keeps the lease id alive until ctx ends or the client closes,
// renewing it every third of its TTL, from the endpoint in use and then
// the next ones while etcd cannot be reached. The channel gets each
// renewal (dropped if the last is still unread) and is closed when ctx
// ends, when the lease is gone, or when no renewal got through for the
// lease's TTL (it may have expired).
func (c *Client) KeepAlive(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	ch := make(chan *LeaseKeepAliveResponse, 1)
	kctx, cancel := c.merged(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(ch)
		defer cancel()
		c.keepAlive(kctx, id, ch)
	}()
	return ch, nil
}

// keepAlive runs keep-alive streams until the lease is gone or its
// deadline (the last renewal's TTL) passes without one.
func (c *Client) keepAlive(ctx context.Context, id LeaseID, ch chan *LeaseKeepAliveResponse) {
	ka := &keeper{id: id, ch: ch, deadline: time.Now().Add(c.cfg.DialTimeout + time.Second)}
	b := newBackoff()
	for ctx.Err() == nil && time.Now().Before(ka.deadline) {
		// The stream lives as long as its renewals keep the lease: a
		// deadline fixed when it opened would end a healthy stream one TTL
		// later (a new stream per TTL, its endpoint marked failed).
		sctx, cancel := context.WithCancel(ctx)
		ka.lapse = time.AfterFunc(time.Until(ka.deadline), cancel)
		ep := c.tr.endpoint()
		renewed := ka.renewals
		err := c.keepAliveStream(sctx, ep, ka)
		ka.lapse.Stop()
		cancel()
		if ka.gone || ctx.Err() != nil || !time.Now().Before(ka.deadline) {
			return
		}
		if authRejected(err) && c.cfg.Username != "" {
			c.authenticate(ctx) // on failure the next stream fails again
		} else {
			c.tr.failed(ep)
		}
		if ka.renewals != renewed {
			b = newBackoff()
		}
		wctx, cancel := context.WithDeadline(ctx, ka.deadline)
		b.Wait(wctx)
		cancel()
	}
}

// keeper is the state of one lease's keep-alive.
type keeper struct {
	id       LeaseID
	ch       chan *LeaseKeepAliveResponse
	deadline time.Time // the lease may have expired after this
	renewals int
	gone     bool        // etcd said the lease is no more
	lapse    *time.Timer // ends the stream at deadline, reset by each renewal
}

// keepAliveStream renews the lease on one stream until it breaks.
func (c *Client) keepAliveStream(ctx context.Context, ep string, ka *keeper) error {
	req := appendInt(nil, 1, int64(ka.id))
	s, err := c.tr.open(ctx, ep, methodKeepAlive, c.metadata(ctx), req)
	if err != nil {
		return err
	}
	defer s.close()
	type recvd struct {
		b   []byte
		err error
	}
	in := make(chan recvd, 1)
	go func() {
		for {
			b, err := s.recv()
			select {
			case in <- recvd{b, err}:
			case <-s.ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	next := time.NewTimer(time.Hour) // set by the first answer
	defer next.Stop()
	for {
		select {
		case r := <-in:
			if r.err != nil {
				return r.err
			}
			resp, err := decodeKeepAliveResponse(r.b)
			if err != nil {
				return &ConnError{Endpoint: ep, Err: err}
			}
			if resp.TTL <= 0 {
				ka.gone = true
				return errors.New("etcdv3: lease gone")
			}
			ka.renewals++
			ka.deadline = time.Now().Add(time.Duration(resp.TTL) * time.Second)
			ka.lapse.Reset(time.Until(ka.deadline))
			next.Reset(max(time.Duration(resp.TTL)*time.Second/3, 500*time.Millisecond))
			select {
			case ka.ch <- resp:
			default:
			}
		case <-next.C:
			if err := s.send(req); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
