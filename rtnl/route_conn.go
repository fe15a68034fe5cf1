package rtnl

// RouteAdd adds the route m describes (RTM_NEWROUTE with NLM_F_CREATE|
// NLM_F_EXCL). It fails with an error wrapping syscall.EEXIST if the table has
// the route already.
func (c *Conn) RouteAdd(m *RouteMessage) error {
	return c.routeRequest(MsgNewRoute, FlagCreate|FlagExcl, m)
}

// RouteReplace adds the route m describes, or replaces the route to the same
// destination (RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE).
func (c *Conn) RouteReplace(m *RouteMessage) error {
	return c.routeRequest(MsgNewRoute, FlagCreate|FlagReplace, m)
}

// RouteDelete deletes the route m describes (RTM_DELROUTE). The kernel
// deletes the first route matching the fields m sets. It fails with an error
// wrapping syscall.ESRCH if none matches.
func (c *Conn) RouteDelete(m *RouteMessage) error {
	return c.routeRequest(MsgDelRoute, 0, m)
}

func (c *Conn) routeRequest(typ, flags uint16, m *RouteMessage) error {
	body, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return c.Execute(typ, flags, body)
}

// RouteFilter selects the routes RouteList returns. Zero fields select all.
type RouteFilter struct {
	Table    uint32        // only this table (RouteTableMain for `ip route`)
	OIF      int32         // only routes out of this link
	Protocol RouteProtocol // only routes of this protocol
	Type     RouteType     // only routes of this type
}

// RouteList returns the routes of family (AF_INET, AF_INET6, or AF_UNSPEC for
// both) that f selects. With strict checking (the default) the kernel does
// the filtering; otherwise RouteList filters the full dump itself.
func (c *Conn) RouteList(family uint8, f RouteFilter) ([]RouteMessage, error) {
	req := RouteMessage{Family: family, Protocol: f.Protocol, Type: f.Type, Table: f.Table, OIF: f.OIF}
	body, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if f.Table != 0 && f.Table < 256 {
		// Filter by RTA_TABLE too: the kernel reads the table filter from it
		// when present, and iproute2 sends both.
		ae := NewAttributeEncoder(body)
		ae.Uint32(rtaTable, f.Table)
		body = ae.Bytes()
	}
	var routes []RouteMessage
	err = c.Dump(MsgGetRoute, body, func(msg Message) error {
		if msg.Header.Type != MsgNewRoute {
			return nil
		}
		var m RouteMessage
		if err := m.UnmarshalBinary(msg.Data); err != nil {
			return err
		}
		if (f.Table != 0 && m.Table != f.Table) || (f.OIF != 0 && m.OIF != f.OIF) ||
			(f.Protocol != 0 && m.Protocol != f.Protocol) || (f.Type != 0 && m.Type != f.Type) {
			return nil
		}
		routes = append(routes, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return routes, nil
}
