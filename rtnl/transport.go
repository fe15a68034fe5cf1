package rtnl

// Transport carries netlink datagrams between rtnl and a kernel. A Conn
// sends its requests over one and reads the replies from it; a Monitor reads
// notifications from one. Dial and DialMonitor open a NETLINK_ROUTE socket
// (Linux only) and run the same code over it that NewConn and NewMonitor run
// over any other Transport: a fake kernel that records requests and answers
// from a script (package rtnltest), a replay of captured notifications, or
// a relay to a kernel elsewhere. Transports work on every system.
//
// A Transport may also report what a socket reports, through these methods:
//
//   - PortID() uint32: the netlink port id a Conn stamps into its requests
//     (0 when absent).
//   - Buffers() (send, receive int): the buffer sizes as the kernel reports
//     them (twice what was asked for). ExecuteBatch packs requests by them.
//     Without the method a Conn assumes a socket's defaults:
//     net.core.wmem_default and twice DefaultReceiveBuffer.
//   - SetReadDeadline(time.Time) error: Monitor.Run sets a deadline in the
//     past to wake a blocked Receive when its context ends (as on a socket).
//     Without it, Run notices the end of its context between datagrams.
type Transport interface {
	// Send delivers one datagram, as one sendmsg(2) would: one or more
	// requests packed back to back, each carrying the Conn's sequence
	// number and flags.
	Send(b []byte) error
	// Receive copies the next datagram for the Conn or the Monitor into b
	// and returns its length, as recvmsg(2) would; it must not return a
	// partial datagram. For a Monitor, an error that is syscall.ENOBUFS
	// reports an overrun (notifications were lost), as on a socket, and
	// io.EOF ends Monitor.Run with nil: the stream is over.
	Receive(b []byte) (int, error)
	// Close releases the transport; the Conn or the Monitor calls it once.
	Close() error
}

// portIDer and bufferSizer are the optional Transport methods a Conn reads
// once, in NewConn.
type (
	portIDer    interface{ PortID() uint32 }
	bufferSizer interface{ Buffers() (send, receive int) }
)

// defaultSendBuffer is the send buffer a Conn assumes on a Transport that
// does not report one: the kernel's default (net.core.wmem_default), so that
// ExecuteBatch packs requests as it would on a socket.
const defaultSendBuffer = 212992
