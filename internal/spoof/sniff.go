package spoof

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Sniffer records the frames an interface of a namespace receives (a
// packet socket; what the interface sends is left out), to tell whether a
// frame was delivered.
type Sniffer struct {
	fd int
}

// Sniff starts recording the frames ifname receives in the namespace at
// nsPath.
func Sniff(nsPath, ifname string) (*Sniffer, error) {
	ns, err := rtnl.OpenNetNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	fd := -1
	err = ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	return &Sniffer{fd: fd}, nil
}

// htons is v in network byte order, as a packet socket wants its
// protocol.
func htons(v uint16) uint16 { return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v)) }

// Frames returns the frames received so far and within d more.
func (s *Sniffer) Frames(d time.Duration) [][]byte {
	var out [][]byte
	deadline := time.Now().Add(d)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return out
		}
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return out
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

// Close stops recording.
func (s *Sniffer) Close() error { return unix.Close(s.fd) }
