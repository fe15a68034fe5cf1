package rtnl

// Transport carries a Conn's netlink datagrams in place of a NETLINK_ROUTE
// socket: a fake kernel that records requests and answers from a script
// (package rtnltest), or a relay to a kernel elsewhere. A Conn calls it under
// its own lock, one call at a time.
type Transport interface {
	// Send delivers one datagram, as one sendmsg(2) would: one or more
	// requests packed back to back, each carrying the Conn's sequence
	// number and flags.
	Send(b []byte) error
	// Receive copies the next datagram addressed to the Conn into b and
	// returns its length, as recvmsg(2) would; it must not return a partial
	// datagram.
	Receive(b []byte) (int, error)
	// Close releases the transport; the Conn calls it once, from Close.
	Close() error
}

// transportSendBuffer is the send buffer a Conn on a Transport assumes: the
// kernel's default (net.core.wmem_default), so that ExecuteBatch packs
// requests as it would on a socket.
const transportSendBuffer = 212992

// dialTransport returns a Conn on cfg.Transport. The buffer sizes mirror a
// socket's: ReceiveBuffer doubled (as the kernel does), and the kernel's
// defaults when it is -1.
func dialTransport(cfg *Config) *Conn {
	rcvbuf := cfg.ReceiveBuffer
	switch {
	case rcvbuf == 0:
		rcvbuf = 2 * DefaultReceiveBuffer
	case rcvbuf < 0:
		rcvbuf = transportSendBuffer
	default:
		rcvbuf *= 2
	}
	return &Conn{
		fd:     -1,
		tr:     cfg.Transport,
		rbuf:   make([]byte, recvBufferLen),
		sndbuf: transportSendBuffer,
		rcvbuf: rcvbuf,
		strict: !cfg.DisableStrictCheck,
	}
}
