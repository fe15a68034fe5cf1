package rtnl

import (
	"fmt"
	"syscall"
)

// LinkAdd creates the link m describes (RTM_NEWLINK with NLM_F_CREATE|
// NLM_F_EXCL). It fails with an error wrapping syscall.EEXIST if a link of that
// name exists. The kernel does not report the new ifindex: read it back with
// LinkByName (in the namespace the link landed in).
func (c *Conn) LinkAdd(m *LinkMessage) error {
	return c.linkRequest(MsgNewLink, FlagCreate|FlagExcl, m)
}

// LinkSet changes an existing link, found by m.Index or else by m.Name
// (RTM_NEWLINK without NLM_F_CREATE): every attribute m carries is applied,
// and the Flags bits selected by Change.
func (c *Conn) LinkSet(m *LinkMessage) error {
	if m.Index == 0 && m.Name == "" {
		return fmt.Errorf("rtnl: LinkSet needs an index or a name")
	}
	return c.linkRequest(MsgNewLink, 0, m)
}

// LinkDelete deletes the link with ifindex index. Deleting one end of a veth
// pair deletes both.
func (c *Conn) LinkDelete(index int32) error {
	return c.linkRequest(MsgDelLink, 0, &LinkMessage{Index: index})
}

// LinkDeleteByName deletes the link named name.
func (c *Conn) LinkDeleteByName(name string) error {
	return c.linkRequest(MsgDelLink, 0, &LinkMessage{Name: name})
}

func (c *Conn) linkRequest(typ, flags uint16, m *LinkMessage) error {
	body, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return c.Execute(typ, flags, body)
}

// LinkGet returns the link with ifindex index. It fails with an error
// wrapping syscall.ENODEV if there is none.
func (c *Conn) LinkGet(index int32) (*LinkMessage, error) {
	return c.linkGet(&LinkMessage{Index: index})
}

// LinkByName returns the link named name. It fails with an error wrapping
// syscall.ENODEV if there is none.
func (c *Conn) LinkByName(name string) (*LinkMessage, error) {
	return c.linkGet(&LinkMessage{Name: name})
}

func (c *Conn) linkGet(req *LinkMessage) (*LinkMessage, error) {
	body, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var out *LinkMessage
	err = c.Request(MsgGetLink, 0, body, func(msg Message) error {
		if msg.Header.Type != MsgNewLink || out != nil {
			return nil
		}
		out = new(LinkMessage)
		return out.UnmarshalBinary(msg.Data)
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &OpError{Op: "RTM_GETLINK", Err: syscall.ENODEV}
	}
	return out, nil
}

// LinkList returns every link of the Conn's namespace.
func (c *Conn) LinkList() ([]LinkMessage, error) {
	var links []LinkMessage
	err := c.Dump(MsgGetLink, make([]byte, ifinfomsgLen), func(msg Message) error {
		if msg.Header.Type != MsgNewLink {
			return nil
		}
		var m LinkMessage
		if err := m.UnmarshalBinary(msg.Data); err != nil {
			return err
		}
		links = append(links, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return links, nil
}

// LinkSetUp brings the link up (ip link set up).
func (c *Conn) LinkSetUp(index int32) error {
	return c.LinkSet(&LinkMessage{Index: index, Flags: LinkUp, Change: LinkUp})
}

// LinkSetDown takes the link down (ip link set down).
func (c *Conn) LinkSetDown(index int32) error {
	return c.LinkSet(&LinkMessage{Index: index, Flags: 0, Change: LinkUp})
}

// LinkSetMTU sets the link's MTU.
func (c *Conn) LinkSetMTU(index int32, mtu uint32) error {
	if mtu == 0 {
		return fmt.Errorf("rtnl: link %d: MTU 0", index)
	}
	return c.LinkSet(&LinkMessage{Index: index, MTU: mtu})
}

// LinkSetAddress sets the link's hardware address.
func (c *Conn) LinkSetAddress(index int32, mac [6]byte) error {
	if mac == [6]byte{} {
		return fmt.Errorf("rtnl: link %d: zero MAC address", index)
	}
	return c.LinkSet(&LinkMessage{Index: index, Address: mac})
}

// LinkSetMaster enslaves the link to master (a bridge's ifindex); master 0
// releases it (ip link set nomaster).
func (c *Conn) LinkSetMaster(index, master int32) error {
	return c.LinkSet(&LinkMessage{Index: index, Master: master, Present: LinkHasMaster})
}

// LinkSetName renames the link; the kernel refuses while it is up (EBUSY).
func (c *Conn) LinkSetName(index int32, name string) error {
	if name == "" {
		return fmt.Errorf("rtnl: link %d: empty name", index)
	}
	return c.LinkSet(&LinkMessage{Index: index, Name: name})
}

// LinkSetNetNS moves the link into the namespace open at fd (NetNS.Fd). The
// link keeps its name and, unless it clashes there, its ifindex; it is
// brought down by the move.
func (c *Conn) LinkSetNetNS(index int32, fd int) error {
	return c.LinkSet(&LinkMessage{Index: index, NetNSFD: fd, Present: LinkHasNetNSFD})
}
