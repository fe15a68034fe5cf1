package etcdv3

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxMessage bounds a received gRPC message (a page of a listing is a few
// hundred kilobytes; etcd itself refuses requests over 1.5 MiB).
const maxMessage = 64 << 20

// transport speaks gRPC over HTTP/2 to etcd's endpoints: h2 over TLS for a
// TLS configuration, HTTP/2 with prior knowledge (h2c) otherwise. It keeps
// one connection per endpoint (net/http's pool) and which endpoint is in
// use; a call that cannot reach it moves to the next (failed).
type transport struct {
	hc        *http.Client
	tr        *http.Transport
	scheme    string
	endpoints []string // HOST:PORT
	cur       atomic.Uint32
}

func newTransport(cfg Config) *transport {
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: -1}
	tr := &http.Transport{
		Protocols: new(http.Protocols),
		// HTTP/2 pings on a quiet connection notice a dead etcd.
		HTTP2:                  &http.HTTP2Config{SendPingTimeout: cfg.KeepAliveTime, PingTimeout: cfg.KeepAliveTimeout},
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	t := &transport{hc: &http.Client{Transport: tr}, tr: tr, endpoints: cfg.Endpoints, scheme: "http"}
	if cfg.TLS == nil {
		tr.Protocols.SetUnencryptedHTTP2(true)
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		}
		return t
	}
	t.scheme = "https"
	tr.Protocols.SetHTTP2(true)
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &dialError{err}
		}
		tc := cfg.TLS.Clone()
		tc.NextProtos = []string{"h2"}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		c := tls.Client(raw, tc)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &dialError{fmt.Errorf("tls handshake: %w", err)}
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			c.Close()
			return nil, &dialError{fmt.Errorf("endpoint does not speak HTTP/2 over TLS (ALPN %q)", p)}
		}
		return c, nil
	}
	return t
}

// endpoint returns the endpoint in use.
func (t *transport) endpoint() string {
	return t.endpoints[int(t.cur.Load())%len(t.endpoints)]
}

// failed moves to the next endpoint, unless another call already moved
// away from ep.
func (t *transport) failed(ep string) {
	i := t.cur.Load()
	if t.endpoints[int(i)%len(t.endpoints)] == ep {
		t.cur.CompareAndSwap(i, i+1)
	}
}

func (t *transport) close() { t.tr.CloseIdleConnections() }

// metadata is what a call sends in its headers besides the protocol's.
type metadata struct {
	token     string
	hasLeader bool // fail (Unavailable) rather than wait while etcd has no leader
}

func (t *transport) request(ctx context.Context, ep, method string, md metadata, body io.Reader) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.scheme+"://"+ep+method, body)
	h := req.Header
	h["Content-Type"] = []string{"application/grpc"}
	h["Te"] = []string{"trailers"}
	if md.token != "" {
		h["Token"] = []string{md.token}
	}
	if md.hasLeader {
		h["Hasleader"] = []string{"true"}
	}
	if dl, ok := ctx.Deadline(); ok {
		ms := max(1, min(time.Until(dl).Milliseconds(), 99999999))
		h["Grpc-Timeout"] = []string{strconv.FormatInt(ms, 10) + "m"}
	}
	return req
}

// frame is msg as a gRPC message: uncompressed flag and length first.
func frame(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// unary sends one request message to method at ep and returns the one
// response message.
func (t *transport) unary(ctx context.Context, ep, method string, md metadata, msg []byte) ([]byte, error) {
	req := t.request(ctx, ep, method, md, bytes.NewReader(frame(msg)))
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, connErr(ctx, ep, err)
	}
	defer resp.Body.Close()
	if err := checkHeaders(resp); err != nil {
		return nil, err
	}
	out, err := readMessage(resp.Body)
	if err == io.EOF {
		if err := trailerStatus(resp.Trailer); err != nil {
			return nil, err
		}
		return nil, &Error{Internal, "etcdv3: " + method + ": no response message"}
	}
	if err != nil {
		return nil, connErr(ctx, ep, err)
	}
	if _, err := readMessage(resp.Body); err != io.EOF {
		if err == nil {
			return nil, &Error{Internal, method + ": more than one response message"}
		}
		return nil, connErr(ctx, ep, err)
	}
	return out, trailerStatus(resp.Trailer)
}

// connErr makes a transport failure a ConnError, or the context's error if
// that ended the call.
func connErr(ctx context.Context, ep string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("etcdv3: %w", ctx.Err())
	}
	var de *dialError
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the method's URL adds nothing
	}
	return &ConnError{Endpoint: ep, Unsent: errors.As(err, &de), Err: err}
}

// checkHeaders checks a response's headers: HTTP 200 with a gRPC content
// type, and no error status there (a trailers-only answer).
func checkHeaders(resp *http.Response) error {
	if err := trailerStatus(resp.Header); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		code := Unknown
		switch resp.StatusCode {
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			code = Unavailable
		case http.StatusUnauthorized:
			code = Unauthenticated
		case http.StatusForbidden:
			code = PermissionDenied
		case http.StatusNotFound:
			code = Unimplemented
		}
		return &Error{code, "HTTP status " + resp.Status}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return &Error{Internal, fmt.Sprintf("not a gRPC answer (content-type %q)", ct)}
	}
	return nil
}

// trailerStatus returns the error of a grpc-status in h, nil for OK or none.
func trailerStatus(h http.Header) error {
	s := h.Get("Grpc-Status")
	if s == "" {
		if h.Get("Content-Type") != "" {
			return nil // headers of a normal answer
		}
		return &Error{Internal, "answer without grpc-status"}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return &Error{Internal, fmt.Sprintf("bad grpc-status %q", s)}
	}
	if n == 0 {
		return nil
	}
	msg := h.Get("Grpc-Message")
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	return &Error{Code(n), msg}
}

// readMessage reads one gRPC message; io.EOF at a message boundary.
func readMessage(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, fmt.Errorf("etcdv3: compressed message (flag %d) not asked for", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxMessage {
		return nil, fmt.Errorf("etcdv3: message of %d bytes, over the limit of %d", n, maxMessage)
	}
	if n <= 1<<20 {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, noEOF(err)
		}
		return b, nil
	}
	// Large: grown as it arrives, not trusted up front.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, noEOF(err)
	}
	return buf.Bytes(), nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var errStreamClosed = errors.New("etcdv3: stream closed")

// stream is a full-duplex call (Watch, LeaseKeepAlive): requests go
// through a pipe into the request body while responses are read.
type stream struct {
	ep     string
	ctx    context.Context
	cancel context.CancelFunc
	pw     *io.PipeWriter
	resp   *http.Response
}

// open starts a stream with its first request message; it returns once
// etcd answered with its headers.
func (t *transport) open(ctx context.Context, ep, method string, md metadata, first []byte) (*stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &stream{ep: ep, ctx: sctx, cancel: cancel, pw: pw}
	// net/http notices the end of the context only between writes of the
	// body: closing the pipe ends a stream blocked reading it.
	context.AfterFunc(sctx, func() { pw.CloseWithError(errStreamClosed) })
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := t.hc.Do(t.request(sctx, ep, method, md, pr))
		done <- result{resp, err}
	}()
	// etcd sends its headers with its first answer, after this message.
	go pw.Write(frame(first))
	r := <-done
	if r.err != nil {
		s.close()
		return nil, connErr(ctx, ep, r.err)
	}
	s.resp = r.resp
	if err := checkHeaders(r.resp); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// send sends one request message.
func (s *stream) send(msg []byte) error {
	if _, err := s.pw.Write(frame(msg)); err != nil {
		return connErr(s.ctx, s.ep, err)
	}
	return nil
}

// recv returns the next response message, or the error that ended the
// stream (etcd's status, or a ConnError).
func (s *stream) recv() ([]byte, error) {
	b, err := readMessage(s.resp.Body)
	if err == io.EOF {
		if err := trailerStatus(s.resp.Trailer); err != nil {
			return nil, err
		}
		return nil, &ConnError{Endpoint: s.ep, Err: errors.New("stream ended by the server")}
	}
	if err != nil {
		return nil, connErr(s.ctx, s.ep, err)
	}
	return b, nil
}

func (s *stream) close() {
	s.cancel()
	s.pw.CloseWithError(errStreamClosed)
	if s.resp != nil {
		s.resp.Body.Close()
	}
}
