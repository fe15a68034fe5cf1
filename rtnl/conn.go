package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// DefaultReceiveBuffer is the receive buffer a request Conn asks for when
// Config.ReceiveBuffer is 0: large enough for the ACKs of a few thousand
// batched requests.
const DefaultReceiveBuffer = 4 << 20

// recvBufferLen is the size of the buffer one recvmsg reads into. The kernel
// caps dump datagrams at 32 KiB.
const recvBufferLen = 64 << 10

// ackTruesize is what one queued ACK costs in the receive buffer, rounded up
// from the ~830 bytes measured for a small skb; batches are cut so that an
// error reply to every request of a sendmsg would fit.
const ackTruesize = 2048

// Config tunes the socket Dial opens. The zero value dials in the calling
// thread's network namespace with strict checking, extended ACKs and a 4 MiB
// receive buffer.
type Config struct {
	// NetNS is the network namespace to open the socket in; nil means the
	// namespace of the calling thread. The socket stays bound to it.
	NetNS *NetNS
	// Groups lists multicast groups (RTNLGRP_* numbers) to join.
	Groups []uint32
	// ReceiveBuffer is the socket receive buffer in bytes (the kernel doubles
	// it). It is forced past net.core.rmem_max with SO_RCVBUFFORCE when the
	// process has CAP_NET_ADMIN. 0 means DefaultReceiveBuffer; -1 keeps the
	// kernel's default.
	ReceiveBuffer int
	// DisableStrictCheck turns off NETLINK_GET_STRICT_CHK.
	DisableStrictCheck bool
	// Protocol is the socket's netlink protocol: 0 means NETLINK_ROUTE;
	// NETLINK_GENERIC (16) opens a generic netlink socket, over which a
	// Conn's Request speaks a family's messages (the framing, ACKs and
	// dumps are netlink's).
	Protocol int
}

// Conn speaks rtnetlink over a Transport: a NETLINK_ROUTE socket (Dial) or
// any other (NewConn). Its methods are safe for concurrent use; requests are
// serialised.
type Conn struct {
	mu     sync.Mutex
	tr     Transport
	pid    uint32
	seq    uint32
	sndbuf int
	rcvbuf int
	rbuf   []byte
	wbuf   []byte
	closed bool
}

// NewConn returns a Conn over tr; Close closes tr. The Conn reads tr's
// optional PortID and Buffers methods (see Transport) once, here.
func NewConn(tr Transport) *Conn {
	c := &Conn{tr: tr, rbuf: make([]byte, recvBufferLen), sndbuf: defaultSendBuffer, rcvbuf: 2 * DefaultReceiveBuffer}
	if p, ok := tr.(portIDer); ok {
		c.pid = p.PortID()
	}
	if b, ok := tr.(bufferSizer); ok {
		c.sndbuf, c.rcvbuf = b.Buffers()
	}
	return c
}

// PortID returns the Conn's netlink port id (its socket's).
func (c *Conn) PortID() uint32 { return c.pid }

// ReceiveBuffer returns the effective receive buffer size in bytes.
func (c *Conn) ReceiveBuffer() int { return c.rcvbuf }

// Close closes the Conn's socket or Transport.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.tr.Close()
}

var errClosed = errors.New("rtnl: use of closed connection")

// Execute sends one request (typ with NLM_F_REQUEST|NLM_F_ACK|flags and
// payload body) and waits for the kernel's ACK.
func (c *Conn) Execute(typ, flags uint16, body []byte) error {
	return c.Request(typ, flags, body, nil)
}

// Dump sends a dump request (NLM_F_REQUEST|NLM_F_DUMP) and calls fn for each
// reply until NLMSG_DONE. The Message passed to fn aliases a buffer reused
// once fn returns. If the kernel flags the dump NLM_F_DUMP_INTR, every reply
// is still delivered and Dump returns ErrDumpInterrupted.
func (c *Conn) Dump(typ uint16, body []byte, fn func(Message) error) error {
	return c.Request(typ, FlagDump, body, fn)
}

// Request sends one request and delivers its replies to fn (which may be nil).
// A dump request (flags with NLM_F_DUMP) ends at NLMSG_DONE; any other request
// is sent with NLM_F_ACK and ends at its ACK. Replies from anyone but the
// kernel, and replies to other sequence numbers, are ignored. The Message
// passed to fn aliases a buffer reused once fn returns; an error from fn
// stops the delivery (the remaining replies are drained) and is returned.
func (c *Conn) Request(typ, flags uint16, body []byte, fn func(Message) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	dump := flags&FlagDump == FlagDump
	flags |= FlagRequest
	if !dump {
		flags |= FlagAck
	}
	c.seq++
	seq := c.seq
	c.wbuf = AppendHeader(c.wbuf[:0], Header{
		Length: uint32(HeaderLen + len(body)), Type: typ, Flags: flags, Sequence: seq, PID: c.pid,
	})
	c.wbuf = append(c.wbuf, body...)
	if err := c.send(c.wbuf); err != nil {
		return err
	}
	var (
		ferr        error
		interrupted bool
	)
	for {
		it, err := c.recv()
		if err != nil {
			return err
		}
		for it.Next() {
			m := it.Message()
			if m.Header.Sequence != seq {
				continue // a late reply to an abandoned request
			}
			if m.Header.Flags&FlagDumpIntr != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case MsgError:
				_, err := parseAck(m.Header, m.Data)
				if err != nil {
					return err
				}
				return ferr
			case MsgDone:
				if err := doneError(typ, m); err != nil {
					return err
				}
				if ferr == nil && interrupted {
					ferr = ErrDumpInterrupted
				}
				return ferr
			case MsgNoop:
				continue
			}
			if fn != nil && ferr == nil {
				ferr = fn(m)
			}
		}
		if err := it.Err(); err != nil {
			return &OpError{Op: MessageTypeName(typ), Err: err}
		}
	}
}

// doneError decodes the error code an NLMSG_DONE may carry.
func doneError(typ uint16, m Message) error {
	if len(m.Data) < 4 {
		return nil
	}
	code := int32(binary.NativeEndian.Uint32(m.Data))
	if code >= 0 {
		return nil
	}
	e := &OpError{Op: MessageTypeName(typ), Err: ErrnoFromLinux(uint32(-code))}
	if m.Header.Flags&flagAckTLVs != 0 {
		ad := NewAttributeDecoder(m.Data[4:])
		for ad.Next() {
			if ad.Type() == nlmsgerrAttrMsg {
				e.Message = string(trimNUL(ad.Bytes()))
			}
		}
	}
	return e
}

// send hands one datagram to the Transport.
func (c *Conn) send(b []byte) error {
	if err := c.tr.Send(b); err != nil {
		return &OpError{Op: "sendmsg", Err: err}
	}
	return nil
}

// recv reads one datagram from the Transport into c.rbuf and returns an
// iterator over its messages. A socket drops datagrams from senders other
// than the kernel and reads without allocating.
func (c *Conn) recv() (MessageIter, error) {
	n, err := c.tr.Receive(c.rbuf)
	if err != nil {
		return MessageIter{}, &OpError{Op: "recvmsg", Err: err}
	}
	if n < 0 || n > len(c.rbuf) {
		return MessageIter{}, &OpError{Op: "recvmsg", Err: fmt.Errorf("rtnl: transport returned %d bytes for a buffer of %d", n, len(c.rbuf))}
	}
	return NewMessageIter(c.rbuf[:n]), nil
}
