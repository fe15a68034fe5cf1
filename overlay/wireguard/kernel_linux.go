package wireguard

import (
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// DialKernel opens a generic netlink socket in the calling thread's
// network namespace and resolves WireGuard's family over it
// (ErrNoKernelWireGuard on a kernel without WireGuard).
func DialKernel() (*Kernel, error) {
	conn, err := rtnl.Dial(&rtnl.Config{Protocol: unix.NETLINK_GENERIC, ReceiveBuffer: -1})
	if err != nil {
		return nil, err
	}
	k, err := NewKernel(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return k, nil
}
