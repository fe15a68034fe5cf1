package rtnl

import (
	"fmt"
	"syscall"
)

// SetNeighTable sets the neighbour-table parameters of one device in the
// Conn's network namespace (RTM_SETNEIGHTBL), the netlink equivalent of
// writing /proc/sys/net/ipv4/neigh/DEV/*; only the non-nil fields change.
func (c *Conn) SetNeighTable(p NeighTableParams) error {
	var buf [128]byte
	b, err := p.AppendBinary(buf[:0])
	if err != nil {
		return err
	}
	return c.Execute(MsgSetNeighTable, 0, b)
}

// NeighTableList dumps the neighbour-table parameters of family (AF_INET,
// AF_INET6, or 0 for both): for each table, its defaults (Ifindex 0) and the
// parameters of every device in the Conn's network namespace.
func (c *Conn) NeighTableList(family uint8) ([]NeighTableParams, error) {
	req := [ndtmsgLen]byte{family}
	var out []NeighTableParams
	err := c.Dump(MsgGetNeighTable, req[:], func(m Message) error {
		if m.Header.Type != MsgNewNeighTable {
			return nil
		}
		var p NeighTableParams
		if err := p.UnmarshalBinary(m.Data); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// NeighTable returns the parameters of device ifindex in the table of family
// (0 means AF_INET).
func (c *Conn) NeighTable(family uint8, ifindex int32) (NeighTableParams, error) {
	if family == 0 {
		family = FamilyInet
	}
	all, err := c.NeighTableList(family)
	if err != nil {
		return NeighTableParams{}, err
	}
	for _, p := range all {
		if p.Ifindex == ifindex && p.AppProbes != nil {
			return p, nil
		}
	}
	return NeighTableParams{}, &OpError{Op: "RTM_GETNEIGHTBL", Err: syscall.ENOENT,
		Message: fmt.Sprintf("no parameters for device %d in family %d", ifindex, family)}
}
