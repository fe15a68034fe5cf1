package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket options of SOL_NETLINK not all exported by golang.org/x/sys/unix.
const (
	solNetlink        = 270 // SOL_NETLINK
	optAddMembership  = 1   // NETLINK_ADD_MEMBERSHIP
	optNoENOBUFS      = 5   // NETLINK_NO_ENOBUFS
	optListenAllNSID  = 8   // NETLINK_LISTEN_ALL_NSID
	optCapAck         = 10  // NETLINK_CAP_ACK
	optExtAck         = 11  // NETLINK_EXT_ACK
	optGetStrictCheck = 12  // NETLINK_GET_STRICT_CHK
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

// Config tunes a Conn. The zero value dials in the calling thread's network
// namespace with strict checking, extended ACKs and a 4 MiB receive buffer.
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
	// Transport, when set, carries the Conn's datagrams in place of a
	// socket (package rtnltest provides a scripted fake kernel). NetNS,
	// Groups and DisableStrictCheck are then not used; ReceiveBuffer still
	// bounds how many requests ExecuteBatch sends at once, as for a socket.
	Transport Transport
}

// Conn is a NETLINK_ROUTE socket. Its methods are safe for concurrent use;
// requests are serialised.
type Conn struct {
	mu     sync.Mutex
	fd     int
	pid    uint32
	seq    uint32
	sndbuf int
	rcvbuf int
	rbuf   []byte
	rhdr   *recvHeader
	wbuf   []byte
	closed bool
	strict bool
	tr     Transport // nil for a socket
	// kernel is the destination of every request. Each Conn has its own:
	// Sendto writes its raw form into the Sockaddr, so one shared by
	// Conns sending at once is a data race.
	kernel unix.SockaddrNetlink
}

// Dial opens a NETLINK_ROUTE socket as cfg says (nil means the zero Config).
func Dial(cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Transport != nil {
		return dialTransport(cfg), nil
	}
	var c *Conn
	open := func() error {
		var err error
		c, err = dial(cfg)
		return err
	}
	var err error
	if cfg.NetNS != nil {
		err = cfg.NetNS.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func dial(cfg *Config) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, &OpError{Op: "socket", Err: err}
	}
	c := &Conn{fd: fd, rbuf: make([]byte, recvBufferLen), strict: !cfg.DisableStrictCheck}
	if err := c.setup(cfg); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup(cfg *Config) error {
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return &OpError{Op: "bind", Err: err}
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return &OpError{Op: "getsockname", Err: err}
	}
	c.pid = sa.(*unix.SockaddrNetlink).Pid
	for _, o := range []struct {
		opt int
		on  bool
	}{{optExtAck, true}, {optCapAck, true}, {optGetStrictCheck, c.strict}} {
		if !o.on {
			continue
		}
		if err := unix.SetsockoptInt(c.fd, solNetlink, o.opt, 1); err != nil {
			// Old kernels lack these; the socket still works without them.
			if !errors.Is(err, unix.ENOPROTOOPT) {
				return &OpError{Op: "setsockopt", Err: err}
			}
		}
	}
	if size := cfg.ReceiveBuffer; size >= 0 {
		if size == 0 {
			size = DefaultReceiveBuffer
		}
		if err := setReceiveBuffer(c.fd, size); err != nil {
			return err
		}
	}
	for _, g := range cfg.Groups {
		if err := unix.SetsockoptInt(c.fd, solNetlink, optAddMembership, int(g)); err != nil {
			return &OpError{Op: fmt.Sprintf("join group %d", g), Err: err}
		}
	}
	if c.sndbuf, err = unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return &OpError{Op: "getsockopt", Err: err}
	}
	if c.rcvbuf, err = unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return &OpError{Op: "getsockopt", Err: err}
	}
	return nil
}

// setReceiveBuffer sets a socket's receive buffer to size bytes, with
// SO_RCVBUFFORCE where allowed (CAP_NET_ADMIN) and SO_RCVBUF otherwise (then
// capped by net.core.rmem_max).
func setReceiveBuffer(fd, size int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); err == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
		return &OpError{Op: "setsockopt SO_RCVBUF", Err: err}
	}
	return nil
}

// PortID returns the socket's netlink port id.
func (c *Conn) PortID() uint32 { return c.pid }

// ReceiveBuffer returns the effective receive buffer size in bytes.
func (c *Conn) ReceiveBuffer() int { return c.rcvbuf }

// Close closes the socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.tr != nil {
		return c.tr.Close()
	}
	return unix.Close(c.fd)
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
	return c.Request(typ, unix.NLM_F_DUMP, body, fn)
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
	dump := flags&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	flags |= unix.NLM_F_REQUEST
	if !dump {
		flags |= unix.NLM_F_ACK
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
		n, err := c.recv()
		if err != nil {
			return err
		}
		it := NewMessageIter(c.rbuf[:n])
		for it.Next() {
			m := it.Message()
			if m.Header.Sequence != seq {
				continue // a late reply to an abandoned request
			}
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				_, err := parseAck(m.Header, m.Data)
				if err != nil {
					return err
				}
				return ferr
			case unix.NLMSG_DONE:
				if err := doneError(typ, m); err != nil {
					return err
				}
				if ferr == nil && interrupted {
					ferr = ErrDumpInterrupted
				}
				return ferr
			case unix.NLMSG_NOOP:
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
	e := &OpError{Op: MessageTypeName(typ), Err: unix.Errno(-code)}
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

func (c *Conn) send(b []byte) error {
	if c.tr != nil {
		if err := c.tr.Send(b); err != nil {
			return &OpError{Op: "sendmsg", Err: err}
		}
		return nil
	}
	for {
		c.kernel.Family = unix.AF_NETLINK
		err := unix.Sendto(c.fd, b, 0, &c.kernel)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &OpError{Op: "sendmsg", Err: err}
		}
		return nil
	}
}

// recv reads one datagram from the kernel into c.rbuf, skipping datagrams
// from other senders. It calls recvmsg(2) directly on a message header kept
// in the Conn, so reading a reply allocates nothing.
func (c *Conn) recv() (int, error) {
	if c.tr != nil {
		n, err := c.tr.Receive(c.rbuf)
		if err != nil {
			return 0, &OpError{Op: "recvmsg", Err: err}
		}
		return n, nil
	}
	if c.rhdr == nil {
		c.rhdr = new(recvHeader)
	}
	h := c.rhdr
	for {
		h.iov.Base = &c.rbuf[0]
		h.iov.SetLen(len(c.rbuf))
		h.msg = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&h.from)), Namelen: unix.SizeofSockaddrNetlink, Iov: &h.iov}
		h.msg.SetIovlen(1)
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&h.msg)), 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, &OpError{Op: "recvmsg", Err: errno}
		}
		if h.msg.Flags&unix.MSG_TRUNC != 0 {
			return 0, &OpError{Op: "recvmsg", Err: fmt.Errorf("rtnl: datagram larger than %d bytes was truncated", len(c.rbuf))}
		}
		if h.from.Family != unix.AF_NETLINK || h.from.Pid != 0 {
			continue // not from the kernel
		}
		return int(n), nil
	}
}

// recvHeader is the recvmsg(2) state a Conn reuses for every read.
type recvHeader struct {
	msg  unix.Msghdr
	iov  unix.Iovec
	from unix.RawSockaddrNetlink
}
