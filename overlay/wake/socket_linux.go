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

// socket is the Link Open returns: an AF_PACKET socket bound to one
// device, reading through the runtime poller.
type socket struct {
	file *os.File
	rc   syscall.RawConn
}

// Open opens the capture of the device with ifindex in network namespace
// ns (nil: the calling thread's): a non-blocking AF_PACKET socket that
// receives, through requestFilter attached before it is bound to the device
// (so that no frame gets past unfiltered), the ARP requests and Neighbor
// Solicitations the device transmits, and sends frames to it.
func Open(ns *rtnl.NetNS, ifindex int32) (Link, error) {
	var fd int
	open := func() error {
		var err error
		fd, err = openSocket(ifindex)
		return err
	}
	var err error
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "wake-capture")
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
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("wake: packet socket: %w", err)
	}
	prog := requestFilter()
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.code, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wake: attach socket filter: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: int(ifindex)}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wake: bind to ifindex %d: %w", ifindex, err)
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

// Receive reads one frame (see Link). A waiting Receive parks in the
// runtime poller, holding the descriptor's read lock; one that does not
// wait reads beside it (Control, no read lock): a datagram socket hands
// each frame to one reader.
func (s *socket) Receive(b []byte, wait bool) (int, error) {
	var n int
	var rerr error
	read := func(fd uintptr) bool {
		for {
			r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
			switch errno {
			case 0:
				n = int(r)
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return !wait
			}
			rerr = errno
			return true
		}
	}
	var err error
	if wait {
		err = s.rc.Read(read)
	} else {
		err = s.rc.Control(func(fd uintptr) { read(fd) })
	}
	if err == nil {
		err = rerr
	}
	return n, err
}

// Send transmits frame to the device, without waiting for room in the
// socket's send buffer.
func (s *socket) Send(frame []byte) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		for {
			_, _, errno := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)),
				unix.MSG_DONTWAIT, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				serr = errno
			}
			return true
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

// Close closes the socket, waking a waiting Receive.
func (s *socket) Close() error { return s.file.Close() }
