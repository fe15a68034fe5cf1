// Package links finds, brings up and removes network devices and their
// addresses by name over rtnl, for the node's operations and their
// rollbacks: a device or an address that is already gone is not an error.
package links

import (
	"errors"
	"net/netip"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Find returns the device named name, or nil (and no error) if there is
// none.
func Find(c *rtnl.Conn, name string) (*rtnl.LinkMessage, error) {
	l, err := c.LinkByName(name)
	if errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	return l, err
}

// Delete deletes the device named name; a missing one is not an error.
func Delete(c *rtnl.Conn, name string) error {
	err := c.LinkDeleteByName(name)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// Up brings the device named name up, if it is down.
func Up(c *rtnl.Conn, name string) error {
	l, err := c.LinkByName(name)
	if err != nil {
		return err
	}
	if l.Flags&rtnl.LinkUp != 0 {
		return nil
	}
	return c.LinkSetUp(l.Index)
}

// DeleteAddress removes p from device index; a device or an address
// already gone is not an error.
func DeleteAddress(c *rtnl.Conn, index int32, p netip.Prefix) error {
	err := c.AddressDelete(index, p)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil
	}
	return err
}
