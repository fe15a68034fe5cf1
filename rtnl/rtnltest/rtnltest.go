// Package rtnltest is a fake rtnetlink kernel for unit tests of code built on
// package rtnl, on any system. A Transport is what rtnl.NewConn runs a Conn
// over in place of a NETLINK_ROUTE socket: it records each request (header and body, decoded enough to assert on) and
// answers it through a Handler the test scripts: ACKs, errors with an errno
// and an extended-ACK text, replies to a get, multi-part dumps ending in
// NLMSG_DONE. The replies are framed as the kernel frames them for a Conn
// (capped ACKs, ACK TLVs, NLM_F_MULTI, Linux error numbers), so Execute,
// Dump, Request and ExecuteBatch (with its per-request failures) run the
// code they run on a socket, without a socket and without privileges. A
// Notifier plays the kernel's side of a Monitor (rtnl.NewMonitor): it
// delivers scripted notifications, captured or built, and overruns.
//
// It fakes the protocol, not the kernel's tables: what a request does is
// whatever the Handler says. Tests that need the kernel's behaviour run
// against a real one (in a network namespace) in addition.
package rtnltest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/overlaynet/overlaynet/rtnl"
)

// MaxDatagram is the size up to which the Transport packs the replies to one
// request into one datagram, as the kernel does with dump replies (a
// message larger than that goes alone).
const MaxDatagram = 32 << 10

// Handler answers one request. It returns the messages to send back (parts
// of a dump, or the reply to a get), which the Transport frames with the
// request's sequence number, and an error:
//
//   - nil: success; the Transport ACKs the request if it asked for one, and
//     ends a dump with NLMSG_DONE.
//   - a syscall.Errno or an *Error: the request failed; the Transport sends an
//     NLMSG_ERROR (or, for a dump, an NLMSG_DONE) carrying that errno's
//     Linux number (rtnl.LinuxErrno) and the extended-ACK text, after the
//     messages.
//   - any other error: the transport itself fails, as a broken socket
//     would: Send returns it and the request gets no reply.
type Handler func(req Request) ([]Message, error)

// Message is one reply message a Handler scripts.
type Message struct {
	Type  uint16 // RTM_NEWNEIGH, RTM_NEWLINK, ...
	Flags uint16 // added to the flags the Transport sets (NLM_F_MULTI in a dump), e.g. NLM_F_DUMP_INTR
	Data  []byte // the payload after the netlink header
}

// Reply returns a Message of type typ whose payload is m's binary encoding
// (an *rtnl.NeighMessage, *rtnl.LinkMessage, ...). It panics if m fails to
// encode: a test scripting an unencodable reply is broken.
func Reply(typ uint16, m interface {
	AppendBinary([]byte) ([]byte, error)
}) Message {
	b, err := m.AppendBinary(nil)
	if err != nil {
		panic(fmt.Sprintf("rtnltest: encoding a %s reply: %v", rtnl.MessageTypeName(typ), err))
	}
	return Message{Type: typ, Data: b}
}

// Error is a failure a Handler returns with the kernel's extended-ACK
// details. A bare syscall.Errno does the same without them.
type Error struct {
	Errno   syscall.Errno
	Message string // NLMSGERR_ATTR_MSG, as the kernel's extended ACK
	Offset  uint32 // NLMSGERR_ATTR_OFFS: offset of the bad attribute in the request; 0 means none
}

// Error formats the errno and the message.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Errno.Error()
	}
	return e.Errno.Error() + ": " + e.Message
}

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Errno }

// ErrClosed is returned by a Transport used after Close.
var ErrClosed = errors.New("rtnltest: transport closed")

// ErrNoReply is returned by Receive when no reply is queued: a socket would
// block forever there, which in a test is a hang.
var ErrNoReply = errors.New("rtnltest: receive with no reply queued (a socket would block forever)")

// Transport is a rtnl.Transport that plays the kernel: every request sent is
// recorded and answered by its Handler, replies are queued and handed out by
// Receive one datagram at a time. It is safe for concurrent use (a test may
// read Requests while a Conn runs).
type Transport struct {
	// ReceiveBuffer is the receive buffer the Transport reports to a Conn,
	// as the kernel reports a socket's (twice what was asked for): a Conn's
	// ExecuteBatch sends at most ReceiveBuffer/2048 requests per datagram.
	// 0 means the default of Dial's socket, 2 × rtnl.DefaultReceiveBuffer.
	// Set it before rtnl.NewConn, which reads it once.
	ReceiveBuffer int

	mu        sync.Mutex
	h         Handler
	reqs      []Request
	queue     [][]byte
	datagrams int
	closed    bool
}

// New returns a Transport answering with h (nil: every request succeeds
// with no data, as AckAll).
func New(h Handler) *Transport {
	if h == nil {
		h = AckAll
	}
	return &Transport{h: h}
}

// Dial returns a Conn on a new Transport answering with h, and the
// Transport, to read back the requests.
func Dial(h Handler) (*rtnl.Conn, *Transport) {
	t := New(h)
	return rtnl.NewConn(t), t
}

// sendBuffer is the send buffer the Transport reports: the kernel's default
// (net.core.wmem_default), as a socket has.
const sendBuffer = 212992

// Buffers reports the send buffer of a socket and ReceiveBuffer, for
// rtnl.NewConn.
func (t *Transport) Buffers() (send, receive int) {
	if t.ReceiveBuffer == 0 {
		return sendBuffer, 2 * rtnl.DefaultReceiveBuffer
	}
	return sendBuffer, t.ReceiveBuffer
}

var _ rtnl.Transport = (*Transport)(nil)

// Send records each request packed in b, calls the Handler for it and queues
// the replies. It fails on a malformed datagram, when the Transport is
// closed, and with whatever non-errno error the Handler returns (the
// requests after that one are not processed, as after a socket error).
func (t *Transport) Send(b []byte) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	dg := t.datagrams
	t.datagrams++
	h := t.h
	t.mu.Unlock()
	// The Handler runs unlocked: it may read the Transport (Requests).
	it := rtnl.NewMessageIter(b)
	for it.Next() {
		m := it.Message()
		req := Request{Header: m.Header, Body: slices.Clone(m.Data), Datagram: dg}
		t.mu.Lock()
		t.reqs = append(t.reqs, req)
		t.mu.Unlock()
		msgs, err := h(req)
		errno, ext, err := linuxErrno(req, err)
		if err != nil {
			return err
		}
		replies := frame(req, msgs, errno, ext)
		t.mu.Lock()
		t.queue = append(t.queue, replies...)
		t.mu.Unlock()
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("rtnltest: malformed datagram: %w", err)
	}
	return nil
}

// linuxErrno returns the Linux error number of a Handler's error (0 for
// none) and its extended-ACK details, or the error the Transport fails with:
// a Handler error that is no errno, or an errno Linux has no number for.
func linuxErrno(req Request, err error) (uint32, *Error, error) {
	var (
		errno syscall.Errno
		ext   *Error
	)
	switch {
	case err == nil:
		return 0, nil, nil
	case errors.As(err, &ext):
		errno = ext.Errno
	case errors.As(err, &errno):
	default:
		return 0, nil, err
	}
	n, ok := rtnl.LinuxErrno(errno)
	if !ok {
		return 0, nil, fmt.Errorf("rtnltest: handler for %v failed with errno %d, which Linux has no number for", req, errno)
	}
	return n, ext, nil
}

// Receive copies the next queued datagram into b. It returns ErrNoReply when
// nothing is queued.
func (t *Transport) Receive(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, ErrClosed
	}
	if len(t.queue) == 0 {
		return 0, ErrNoReply
	}
	d := t.queue[0]
	if len(d) > len(b) {
		return 0, fmt.Errorf("rtnltest: datagram of %d bytes does not fit a buffer of %d", len(d), len(b))
	}
	t.queue = t.queue[1:]
	return copy(b, d), nil
}

// Close marks the Transport closed; later Sends and Receives fail.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

// Requests returns the requests recorded so far, oldest first.
func (t *Transport) Requests() []Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.reqs)
}

// Datagrams returns how many datagrams (sendmsg calls) were sent.
func (t *Transport) Datagrams() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.datagrams
}

// Pending returns how many reply datagrams are queued and not yet received.
func (t *Transport) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}

// Reset forgets the recorded requests and the datagram count (the queue of
// replies is kept).
func (t *Transport) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reqs, t.datagrams = nil, 0
}
