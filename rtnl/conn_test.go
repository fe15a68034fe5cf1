package rtnl_test

import (
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// portTransport is a Transport that reports a port id, as a socket does.
type portTransport struct{ *rtnltest.Transport }

func (portTransport) PortID() uint32 { return 4242 }

// bareTransport has none of the optional methods.
type bareTransport struct{ rtnl.Transport }

// TestNewConnReadsTransport: NewConn takes the port id and the buffer sizes
// from a Transport that reports them, and a socket's defaults otherwise;
// requests carry the port id.
func TestNewConnReadsTransport(t *testing.T) {
	fake := rtnltest.New(nil)
	fake.ReceiveBuffer = 8192
	c := rtnl.NewConn(portTransport{fake})
	if c.PortID() != 4242 || c.ReceiveBuffer() != 8192 {
		t.Errorf("port %d, receive buffer %d; want 4242 and 8192", c.PortID(), c.ReceiveBuffer())
	}
	if err := c.LinkSetUp(1); err != nil {
		t.Fatal(err)
	}
	if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Header.PID != 4242 {
		t.Errorf("requests %v: want one from port 4242", reqs)
	}
	bare := rtnl.NewConn(bareTransport{rtnltest.New(nil)})
	if bare.PortID() != 0 || bare.ReceiveBuffer() != 2*rtnl.DefaultReceiveBuffer {
		t.Errorf("bare transport: port %d, receive buffer %d; want 0 and %d", bare.PortID(), bare.ReceiveBuffer(), 2*rtnl.DefaultReceiveBuffer)
	}
	if err := bare.Close(); err != nil {
		t.Fatal(err)
	}
}
