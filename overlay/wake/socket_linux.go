package wake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// captureBuffer is the capture socket's receive buffer (forced): requests
// wait there until read, a second at most when no miss reads them (about a
// thousand requests a second before the kernel drops any).
const captureBuffer = 1 << 20

// socket is the Link Open returns: an AF_PACKET socket bound to one
// device. It is a blocking socket outside the runtime poller (every call
// passes MSG_DONTWAIT): a queued request wakes no thread. Its reads and
// sends are raw calls (unix.RawSyscall6, outside the runtime's syscall
// bookkeeping): they never wait, and on the path of a miss (Answer) an
// ordinary call would wake the runtime's monitor thread after an idle
// period (see package rtnl's socket).
type socket struct {
	file *os.File
	rc   syscall.RawConn
	hdrs [batch]unix.Mmsghdr // Receive's; a Waker reads under its lock
	iovs [batch]unix.Iovec
}

// Open opens the capture of the device with ifindex in network namespace
// ns: an AF_PACKET socket that receives, through requestFilter attached
// before it is bound to the device (so that no frame gets past
// unfiltered), the ARP requests and Neighbor Solicitations the device
// transmits, and sends frames to it.
func Open(ns *rtnl.NetNS, ifindex int32) (Link, error) {
	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = openSocket(ifindex)
		return err
	}); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "wake-capture") // blocking: not in the poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wake: %w", err)
	}
	return &socket{file: f, rc: rc}, nil
}

// openSocket opens, filters and binds the packet socket.
func openSocket(ifindex int32) (int, error) {
	// Protocol 0: the socket receives nothing until bound with a protocol.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("wake: packet socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("wake: %s: %w", what, err)
	}
	prog := requestFilter()
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.code, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fail("attach socket filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer); err != nil {
			return fail("receive buffer", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: int(ifindex)}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Sprintf("bind to ifindex %d", ifindex), err)
	}
	return fd, nil
}

// htons is the network-order form of a 16-bit protocol number, as
// sockaddr_ll holds it, on a host of either byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Receive reads the queued frames with one recvmmsg (see Link). Not safe
// for concurrent use.
func (s *socket) Receive(bufs [][]byte, lens []int) (int, error) {
	k := min(len(bufs), len(lens), batch)
	if k == 0 {
		return 0, nil
	}
	for i := range k {
		s.iovs[i].Base = &bufs[i][0]
		s.iovs[i].SetLen(len(bufs[i]))
		s.hdrs[i] = unix.Mmsghdr{}
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	var n int
	var rerr error
	err := s.rc.Control(func(fd uintptr) {
		for {
			// MSG_TRUNC: each length is the frame's, also when cut. A raw
			// call (see socket).
			r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(k),
				unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
			switch errno {
			case 0:
				n = int(r)
			case unix.EINTR:
				continue
			case unix.EAGAIN:
			default:
				rerr = errno
			}
			return
		}
	})
	for i := range n {
		lens[i] = int(s.hdrs[i].Len)
	}
	return n, errors.Join(err, rerr)
}

// Send transmits frame to the device, without waiting for room in the
// socket's send buffer.
func (s *socket) Send(frame []byte) error {
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		for {
			// A raw call (see socket).
			_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)),
				unix.MSG_DONTWAIT, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				serr = errno
			}
			return
		}
	})
	return errors.Join(err, serr)
}

// Overflowed returns the frames the socket's buffer could not hold since
// the last call (PACKET_STATISTICS, which the kernel resets when read).
func (s *socket) Overflowed() (uint64, error) {
	var drops uint64
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err != nil {
			serr = err
			return
		}
		drops = uint64(st.Drops)
	})
	return drops, errors.Join(err, serr)
}

// Close closes the socket (once calls in progress are over).
func (s *socket) Close() error { return s.file.Close() }
