package rtnl

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DialMonitor opens a NETLINK_ROUTE socket in cfg.NetNS subscribed to
// RTNLGRP_NEIGH, with the socket filter cfg selects, and returns a Monitor
// reading it with recvmmsg. Close it when done.
func DialMonitor(cfg MonitorConfig) (*Monitor, error) {
	filter, err := cfg.Filter()
	if err != nil {
		return nil, err
	}
	var fd int
	open := func() error {
		var err error
		fd, err = openMonitorSocket(cfg.ReceiveBuffer, filter)
		return err
	}
	if err := inNetNS(cfg.NetNS, open); err != nil {
		return nil, err
	}
	s, err := newMonitorSocket(fd, cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	m := newMonitor(s, s)
	m.rcvbuf = s.rcvbuf
	m.dial = func() (*Conn, error) { return Dial(&Config{NetNS: cfg.NetNS, ReceiveBuffer: -1}) }
	return m, nil
}

func openMonitorSocket(rcvbuf int, filter MonitorFilter) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, &OpError{Op: "socket", Err: err}
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, &OpError{Op: op, Err: err}
	}
	if rcvbuf == 0 {
		rcvbuf = DefaultMonitorReceiveBuffer
	}
	if rcvbuf > 0 {
		if err := setReceiveBuffer(fd, rcvbuf); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if types, n := filter.types(); n > 0 {
		// Before joining the group: no notification gets past unfiltered.
		prog := typeFilter(types[:n]...)
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fail("attach socket filter", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptInt(fd, solNetlink, optAddMembership, rtnlgrpNeigh); err != nil {
		return fail("join RTNLGRP_NEIGH", err)
	}
	return fd, nil
}

// typeFilter returns the classic BPF program of a MonitorFilter: accept a
// datagram whose first message has one of the nlmsg_types types, drop the
// rest. The packet data of a netlink skb starts at the nlmsghdr;
// BPF_LD|BPF_H|BPF_ABS reads big-endian, so each constant is the host-order
// type as such a load sees it. A datagram shorter than a header fails the
// load, which drops it.
func typeFilter(types ...uint16) []unix.SockFilter {
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 4}} // A = nlmsg_type
	for i, t := range types {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], t)
		// Jump to the accept after the remaining compares, else go on.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			Jt: uint8(len(types) - 1 - i + 1), K: uint32(binary.BigEndian.Uint16(b[:]))})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // accept all of it
	)
}

// monitorSocket is a Monitor's datagram source on a socket: recvmmsg
// through the runtime poller into batch slots of monitorSlot bytes.
type monitorSocket struct {
	file    *os.File
	rc      syscall.RawConn
	rcvbuf  int
	hdrs    []unix.Mmsghdr
	names   []unix.RawSockaddrNetlink
	iovs    []unix.Iovec
	buf     []byte
	ds      []datagram
	readFn  func(uintptr) bool // built once: passing a fresh closure to Read allocates
	nread   int
	readErr error
}

// newMonitorSocket wraps the non-blocking socket fd; it closes fd on
// failure.
func newMonitorSocket(fd, batch int) (*monitorSocket, error) {
	if batch <= 0 {
		batch = DefaultMonitorBatch
	}
	rcvbuf, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "getsockopt", Err: err}
	}
	// A non-blocking descriptor joins the runtime poller: reads park the
	// goroutine instead of a thread, and deadlines and Close wake them.
	f := os.NewFile(uintptr(fd), "rtnetlink-monitor")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("rtnl: monitor: %w", err)
	}
	s := &monitorSocket{
		file:   f,
		rc:     rc,
		rcvbuf: rcvbuf,
		hdrs:   make([]unix.Mmsghdr, batch),
		names:  make([]unix.RawSockaddrNetlink, batch),
		iovs:   make([]unix.Iovec, batch),
		buf:    make([]byte, batch*monitorSlot),
		ds:     make([]datagram, batch),
	}
	for i := range s.hdrs {
		s.iovs[i].Base = &s.buf[i*monitorSlot]
		s.iovs[i].SetLen(monitorSlot)
		s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	s.readFn = s.recvmmsg
	return s, nil
}

// receive waits for datagrams and returns the batch one recvmmsg read.
func (s *monitorSocket) receive() ([]datagram, error) {
	err := s.rc.Read(s.readFn)
	if err == nil {
		err = s.readErr
	}
	if err != nil {
		return nil, &OpError{Op: "recvmmsg", Err: err}
	}
	for i := range s.nread {
		h := &s.hdrs[i]
		s.ds[i] = datagram{
			b:     s.buf[i*monitorSlot : i*monitorSlot+int(h.Len)],
			pid:   s.names[i].Pid,
			trunc: h.Hdr.Flags&unix.MSG_TRUNC != 0,
		}
	}
	return s.ds[:s.nread], nil
}

// recvmmsg is the poller callback: it returns false to wait for readiness.
func (s *monitorSocket) recvmmsg(fd uintptr) bool {
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrNetlink
		s.hdrs[i].Hdr.Flags = 0
		s.hdrs[i].Len = 0
	}
	for {
		// A raw call (see socket): MSG_DONTWAIT never waits.
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])),
			uintptr(len(s.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			s.nread, s.readErr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.nread, s.readErr = 0, errno
		return true
	}
}

// SetReadDeadline sets the deadline of the poller's reads.
func (s *monitorSocket) SetReadDeadline(t time.Time) error { return s.file.SetReadDeadline(t) }

// Close closes the socket, waking a parked read.
func (s *monitorSocket) Close() error { return s.file.Close() }
