package rtnl

import (
	"fmt"
	"net/netip"
)

// AddressAdd adds address p (such as 198.51.100.1/24) to link index, as `ip
// addr add` does. It fails with an error wrapping syscall.EEXIST if the link
// already has it.
func (c *Conn) AddressAdd(index int32, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("rtnl: invalid address prefix %v", p)
	}
	return c.AddressAddMessage(NewAddress(index, p))
}

// AddressAddMessage adds the address m describes (RTM_NEWADDR with
// NLM_F_CREATE|NLM_F_EXCL).
func (c *Conn) AddressAddMessage(m *AddressMessage) error {
	return c.addrRequest(MsgNewAddr, FlagCreate|FlagExcl, m)
}

// AddressReplace adds address p to link index, or updates it if present.
func (c *Conn) AddressReplace(index int32, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("rtnl: invalid address prefix %v", p)
	}
	return c.addrRequest(MsgNewAddr, FlagCreate|FlagReplace, NewAddress(index, p))
}

// AddressDelete removes address p from link index. It fails with an error
// wrapping syscall.EADDRNOTAVAIL if the link does not have it.
func (c *Conn) AddressDelete(index int32, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("rtnl: invalid address prefix %v", p)
	}
	return c.AddressDeleteMessage(NewAddress(index, p))
}

// AddressDeleteMessage removes the address m describes (RTM_DELADDR).
func (c *Conn) AddressDeleteMessage(m *AddressMessage) error {
	return c.addrRequest(MsgDelAddr, 0, m)
}

func (c *Conn) addrRequest(typ, flags uint16, m *AddressMessage) error {
	body, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return c.Execute(typ, flags, body)
}

// AddressList returns the addresses of family (AF_INET, AF_INET6, or
// AF_UNSPEC for both) on link index, or on every link if index is 0. The
// kernel filters by link (strict checking).
func (c *Conn) AddressList(family uint8, index int32) ([]AddressMessage, error) {
	req, err := (&AddressMessage{Family: family, Index: index}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	var addrs []AddressMessage
	err = c.Dump(MsgGetAddr, req, func(msg Message) error {
		if msg.Header.Type != MsgNewAddr {
			return nil
		}
		var m AddressMessage
		if err := m.UnmarshalBinary(msg.Data); err != nil {
			return err
		}
		// Without strict checking the kernel ignores the index filter.
		if index != 0 && m.Index != index {
			return nil
		}
		addrs = append(addrs, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return addrs, nil
}
