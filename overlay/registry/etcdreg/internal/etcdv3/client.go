package etcdv3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/backoff"
)

// Config says how to reach etcd.
type Config struct {
	// Endpoints are the members' client addresses, HOST:PORT; calls go to
	// one and move to the next when it cannot be reached.
	Endpoints []string
	// TLS, if set, is the client TLS configuration (CA, client
	// certificate, server name); nil speaks plain-text HTTP/2.
	TLS *tls.Config
	// Username and Password, if set, authenticate (etcd's auth); the token
	// is renewed whenever etcd rejects it.
	Username, Password string
	// DialTimeout bounds a connection attempt and New's wait for the
	// first connection.
	DialTimeout time.Duration
	// KeepAliveTime is how long a connection may be quiet before it is
	// pinged, KeepAliveTimeout how long the ping's answer may take before
	// the connection is given up.
	KeepAliveTime, KeepAliveTimeout time.Duration
}

// Client is a connection to an etcd cluster. It is safe for concurrent use.
type Client struct {
	cfg    Config
	tr     *transport
	token  atomic.Pointer[string]
	ctx    context.Context // cancelled by Close: ends watches and keep-alives
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// gRPC methods of etcd's v3 API.
const (
	methodRange        = "/etcdserverpb.KV/Range"
	methodPut          = "/etcdserverpb.KV/Put"
	methodTxn          = "/etcdserverpb.KV/Txn"
	methodCompact      = "/etcdserverpb.KV/Compact"
	methodWatch        = "/etcdserverpb.Watch/Watch"
	methodGrant        = "/etcdserverpb.Lease/LeaseGrant"
	methodRevoke       = "/etcdserverpb.Lease/LeaseRevoke"
	methodKeepAlive    = "/etcdserverpb.Lease/LeaseKeepAlive"
	methodTimeToLive   = "/etcdserverpb.Lease/LeaseTimeToLive"
	methodAuthenticate = "/etcdserverpb.Auth/Authenticate"
	methodStatus       = "/etcdserverpb.Maintenance/Status"
)

// New connects to the cluster: it waits, up to ctx and DialTimeout, until
// one endpoint answers (and, with a Username, authenticates), and returns
// why none did otherwise (refused, TLS handshake, wrong credentials).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcdv3: no endpoints")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.KeepAliveTime <= 0 {
		cfg.KeepAliveTime = cfg.DialTimeout
	}
	if cfg.KeepAliveTimeout <= 0 {
		cfg.KeepAliveTimeout = cfg.DialTimeout
	}
	c := &Client{cfg: cfg, tr: newTransport(cfg)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var err error
	if cfg.Username != "" {
		err = c.authenticate(cctx)
	} else {
		// Any answer proves the connection (Status needs no permission;
		// a refusal is an answer too).
		_, err = c.call(cctx, methodStatus, nil, callOpts{idempotent: true})
		var se *Error
		if errors.As(err, &se) && !IsUnavailable(err) {
			err = nil
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close ends the client's watches and keep-alives and its connections.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	c.tr.close()
	return nil
}

// callOpts say how a unary call may be retried.
type callOpts struct {
	// idempotent: the call may be sent again after it may have reached
	// etcd (reads, revoking, time-to-live).
	idempotent bool
	noToken    bool // Authenticate itself
}

// call makes a unary call, moving to the next endpoint (with backoff once
// all were tried) while the request could not be delivered, and
// authenticating again once if etcd rejects the token.
func (c *Client) call(ctx context.Context, method string, req []byte, o callOpts) ([]byte, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	var last error
	reauthed := o.noToken || c.cfg.Username == ""
	b := newBackoff()
	for tried := 1; ; tried++ {
		ep := c.tr.endpoint()
		md := c.metadata(ctx)
		if o.noToken {
			md.token = ""
		}
		resp, err := c.tr.unary(ctx, ep, method, md, req)
		switch {
		case err == nil:
			return resp, nil
		case ctx.Err() != nil:
			return nil, deadlineErr(ctx, last, err)
		case !reauthed && authRejected(err):
			reauthed = true
			if err := c.authenticate(ctx); err != nil {
				return nil, err
			}
			continue
		case !retryable(err, o.idempotent):
			if IsUnavailable(err) {
				c.tr.failed(ep) // this member cannot serve (no leader): the next call tries another
			}
			return nil, err
		}
		last = err
		c.tr.failed(ep)
		if tried%len(c.cfg.Endpoints) == 0 {
			if err := b.Wait(ctx); err != nil {
				return nil, deadlineErr(ctx, last, err)
			}
		}
	}
}

// deadlineErr is the error of a call whose context ended: the context's
// error, with the last reason the call could not get through.
func deadlineErr(ctx context.Context, last, err error) error {
	if last == nil {
		var ce *ConnError
		if !errors.As(err, &ce) {
			return fmt.Errorf("etcdv3: %w", ctx.Err())
		}
		last = err
	}
	return fmt.Errorf("etcdv3: %w; last error: %w", ctx.Err(), last)
}

// metadata is what calls under ctx send: the token, and whether they
// require a leader (WithRequireLeader).
func (c *Client) metadata(ctx context.Context) metadata {
	var md metadata
	if t := c.token.Load(); t != nil {
		md.token = *t
	}
	md.hasLeader = ctx.Value(requireLeaderKey{}) != nil
	return md
}

type requireLeaderKey struct{}

// WithRequireLeader marks ctx so that watches under it fail (ErrNoLeader)
// when the etcd member they talk to has no leader, rather than wait.
func WithRequireLeader(ctx context.Context) context.Context {
	return context.WithValue(ctx, requireLeaderKey{}, true)
}

// newBackoff is the wait between rounds of attempts: 100 ms growing by 1.6
// up to 2 s, each jittered by ±20 % (gRPC's reconnection backoff as
// etcdreg configured it).
func newBackoff() backoff.Backoff {
	return backoff.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second, Factor: 1.6, Low: 0.8, High: 1.2}
}

// merged returns ctx also cancelled when the client closes.
func (c *Client) merged(ctx context.Context) (context.Context, context.CancelFunc) {
	mctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return mctx, func() { stop(); cancel() }
}
