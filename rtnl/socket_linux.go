package rtnl

import (
	"errors"
	"fmt"
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

// Dial opens a NETLINK_ROUTE socket (or cfg.Protocol's) as cfg says (nil means the zero Config)
// and returns a Conn over it: NewConn on the socket as a Transport.
func Dial(cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	var s *socket
	open := func() error {
		var err error
		s, err = openSocket(cfg)
		return err
	}
	if err := inNetNS(cfg.NetNS, open); err != nil {
		return nil, err
	}
	return NewConn(s), nil
}

// socket is a NETLINK_ROUTE request socket: the Transport Dial gives a Conn.
// Its methods are called under the Conn's lock.
//
// Raw calls: the calls of the sockets' hot paths that do not wait
// (MSG_DONTWAIT reads, requests the kernel handles inside the call) are
// made with unix.RawSyscall, without the runtime's syscall bookkeeping. An
// ordinary call enters the runtime's syscall state, and the first one after
// the process was idle wakes the runtime's monitor thread (sysmon), which
// then runs every 20 µs for a millisecond: for a daemon answering an
// isolated miss, one more thread to schedule (on a 2-core node it preempted
// the miss's own thread in a third of the misses) for calls that return in
// microseconds. A call that may wait or last long (a large batch) stays
// ordinary, so that the runtime gives its processor to other goroutines
// meanwhile: a raw call holds it, and the garbage collector's
// stop-the-world waits for the call to return.
type socket struct {
	fd     int
	pid    uint32
	sndbuf int
	rcvbuf int
	// kernel is the destination of every request, in its raw form (port
	// id 0: the kernel).
	kernel unix.RawSockaddrNetlink
	rh     recvHeader
}

// recvHeader is the recvmsg(2) state a socket reuses for every read.
type recvHeader struct {
	msg  unix.Msghdr
	iov  unix.Iovec
	from unix.RawSockaddrNetlink
}

var _ Transport = (*socket)(nil)

func openSocket(cfg *Config) (*socket, error) {
	proto := cfg.Protocol
	if proto == 0 {
		proto = unix.NETLINK_ROUTE
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, &OpError{Op: "socket", Err: err}
	}
	s := &socket{fd: fd}
	if err := s.setup(cfg); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

func (s *socket) setup(cfg *Config) error {
	if err := unix.Bind(s.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return &OpError{Op: "bind", Err: err}
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return &OpError{Op: "getsockname", Err: err}
	}
	s.pid = sa.(*unix.SockaddrNetlink).Pid
	for _, o := range []struct {
		opt int
		on  bool
	}{{optExtAck, true}, {optCapAck, true}, {optGetStrictCheck, !cfg.DisableStrictCheck}} {
		if !o.on {
			continue
		}
		if err := unix.SetsockoptInt(s.fd, solNetlink, o.opt, 1); err != nil {
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
		if err := setReceiveBuffer(s.fd, size); err != nil {
			return err
		}
	}
	for _, g := range cfg.Groups {
		if err := unix.SetsockoptInt(s.fd, solNetlink, optAddMembership, int(g)); err != nil {
			return &OpError{Op: fmt.Sprintf("join group %d", g), Err: err}
		}
	}
	if s.sndbuf, err = unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return &OpError{Op: "getsockopt", Err: err}
	}
	if s.rcvbuf, err = unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
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
func (s *socket) PortID() uint32 { return s.pid }

// Buffers returns the socket's send and receive buffers as the kernel
// reports them.
func (s *socket) Buffers() (send, receive int) { return s.sndbuf, s.rcvbuf }

// Close closes the socket.
func (s *socket) Close() error { return unix.Close(s.fd) }

// rawSendMax is the largest send made as a raw call: a few requests (a
// miss's neighbour and FDB entries are some 120 bytes), which the kernel
// handles in tens of microseconds. A larger batch (up to hundreds of
// changes, milliseconds of the kernel's time) is an ordinary call: the
// runtime can then give the processor to other goroutines and stop the
// world for the garbage collector meanwhile.
const rawSendMax = 512

// Send sends b to the kernel with one sendto(2), in which the kernel
// handles the requests: a raw call (see socket) up to rawSendMax bytes.
func (s *socket) Send(b []byte) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	s.kernel.Family = unix.AF_NETLINK
	for {
		// The pointers are converted in the calls' own expressions (see
		// dirstore's read path: a function value between would let a
		// caller's stack buffer move under the kernel).
		var errno unix.Errno
		if len(b) <= rawSendMax {
			_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(p), uintptr(len(b)),
				0, uintptr(unsafe.Pointer(&s.kernel)), unix.SizeofSockaddrNetlink)
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(p), uintptr(len(b)),
				0, uintptr(unsafe.Pointer(&s.kernel)), unix.SizeofSockaddrNetlink)
		}
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// Receive reads one datagram from the kernel into b, skipping datagrams from
// other senders. It calls recvmsg(2) directly on the message header kept in
// the socket, so reading a reply allocates nothing: first without waiting,
// as a raw call (see socket: the kernel queues a request's replies
// before its sendto returns, and makes the next part of a dump, at most
// one buffer's worth, inside the recvmsg that read the previous one), and
// only when nothing is queued again as an ordinary, waiting call.
func (s *socket) Receive(b []byte) (int, error) {
	h := &s.rh
	for {
		h.iov.Base = &b[0]
		h.iov.SetLen(len(b))
		h.msg = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&h.from)), Namelen: unix.SizeofSockaddrNetlink, Iov: &h.iov}
		h.msg.SetIovlen(1)
		n, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&h.msg)), unix.MSG_DONTWAIT)
		if errno == unix.EAGAIN {
			n, _, errno = unix.Syscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&h.msg)), 0)
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		if h.msg.Flags&unix.MSG_TRUNC != 0 {
			return 0, fmt.Errorf("rtnl: datagram larger than %d bytes was truncated", len(b))
		}
		if h.from.Family != unix.AF_NETLINK || h.from.Pid != 0 {
			continue // not from the kernel
		}
		return int(n), nil
	}
}
