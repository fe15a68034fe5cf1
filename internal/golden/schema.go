package golden

// A kind swaps one attribute's payload.
// flagged says whether the attribute carried NLA_F_NESTED.
type kind func(s swapper, p []byte, flagged bool) error

// schema maps the attribute types of one space to their kinds.
type schema struct {
	name  string
	kinds map[uint16]kind
}

// Payload kinds. raw: bytes, strings, addresses, u8 and network-order
// fields; uint: NLA_UINT, 4 or 8 bytes as the value needs.
func raw(swapper, []byte, bool) error        { return nil }
func u16(_ swapper, p []byte, _ bool) error  { return words(p, 2) }
func u32(_ swapper, p []byte, _ bool) error  { return words(p, 4) }
func u64(_ swapper, p []byte, _ bool) error  { return words(p, 8) }
func uint(_ swapper, p []byte, _ bool) error { return words(p, len(p)) }

// nest swaps the payload as attributes of the schema sc returns (built
// when met: the schemas of a link's attributes nest a link's attributes
// again, in a veth's peer).
func nest(sc func() schema) kind {
	return func(s swapper, p []byte, _ bool) error { return s.attrs(p, sc()) }
}

// structOf swaps a struct of fields of the given sizes.
func structOf(sizes ...int) kind {
	return func(_ swapper, p []byte, _ bool) error { return fields(p, sizes...) }
}

func numbered(name string, kinds map[uint16]kind) schema { return schema{name: name, kinds: kinds} }

// NDA_* (linux/neighbour.h).
func neighAttrs() schema {
	return numbered("NDA", map[uint16]kind{
		1: raw, 2: raw, // DST, LLADDR
		3: u32, 4: u32, 5: u16, // CACHEINFO (4 x u32), PROBES, VLAN
		6: raw,                                   // PORT: network order
		7: u32, 8: u32, 9: u32, 10: u32, 11: u32, // VNI, IFINDEX, MASTER, LINK_NETNSID, SRC_VNI
		12: raw, 13: u32, 14: raw, 15: u32, 16: u16, 17: raw, // PROTOCOL, NH_ID, FDB_EXT_ATTRS, FLAGS_EXT, NDM_STATE_MASK, NDM_FLAGS_MASK
	})
}

// IFA_* (linux/if_addr.h).
func addrAttrs() schema {
	return numbered("IFA", map[uint16]kind{
		1: raw, 2: raw, 3: raw, 4: raw, 5: raw, // ADDRESS, LOCAL, LABEL, BROADCAST, ANYCAST
		6: u32, 7: raw, 8: u32, 9: u32, 10: u32, 11: raw, // CACHEINFO, MULTICAST, FLAGS, RT_PRIORITY, TARGET_NETNSID, PROTO
	})
}

// RTA_* (linux/rtnetlink.h).
func routeAttrs() schema {
	return numbered("RTA", map[uint16]kind{
		1: raw, 2: raw, 3: u32, 4: u32, 5: raw, 6: u32, 7: raw, // DST, SRC, IIF, OIF, GATEWAY, PRIORITY, PREFSRC
		8: nest(metricAttrs), 11: u32, 12: u32, 15: u32, 16: u32, // METRICS, FLOW, CACHEINFO, TABLE, MARK
		17: u64, 18: raw, 19: raw, 20: raw, 21: u16, 22: raw, 23: u64, 24: raw, // MFC_STATS, VIA, NEWDST, PREF, ENCAP_TYPE, ENCAP, EXPIRES, PAD
		25: u32, 26: raw, 27: raw, 28: raw, 29: raw, 30: u32, 31: raw, // UID, TTL_PROPAGATE, IP_PROTO, SPORT, DPORT (network order), NH_ID, FLOWLABEL (network order)
	})
}

// RTAX_*: every metric is a u32 (RTAX_CC_ALGO, a string, aside).
func metricAttrs() schema {
	m := map[uint16]kind{}
	for i := uint16(1); i <= 17; i++ {
		m[i] = u32
	}
	m[16] = raw // CC_ALGO
	return numbered("RTAX", m)
}

// NLMSGERR_ATTR_* (linux/netlink.h).
func errAttrs() schema {
	return numbered("NLMSGERR_ATTR", map[uint16]kind{
		1: raw, 2: u32, 3: raw, 4: raw, 5: u32, 6: u32, // MSG, OFFS, COOKIE, POLICY, MISS_TYPE, MISS_NEST
	})
}

// IFLA_* (linux/if_link.h).
func linkAttrs() schema {
	return numbered("IFLA", map[uint16]kind{
		1: raw, 2: raw, 3: raw, 4: u32, 5: u32, 6: raw, 7: u32, // ADDRESS, BROADCAST, IFNAME, MTU, LINK, QDISC, STATS
		8: u32, 9: u32, 10: u32, 11: raw, 12: raw, 13: u32, // COST, PRIORITY, MASTER, WIRELESS, PROTINFO, TXQLEN
		14: structOf(8, 8, 8, 2, 1, 1), 15: u32, 16: raw, 17: raw, // MAP (struct rtnl_link_ifmap), WEIGHT, OPERSTATE, LINKMODE
		18: linkInfo, 19: u32, 20: raw, 21: u32, 22: raw, 23: u64, // LINKINFO, NET_NS_PID, IFALIAS, NUM_VF, VFINFO_LIST, STATS64
		24: raw, 25: raw, 26: nest(afSpecAttrs), 27: u32, 28: u32, 29: u32, // VF_PORTS, PORT_SELF, AF_SPEC, GROUP, NET_NS_FD, EXT_MASK
		30: u32, 31: u32, 32: u32, 33: raw, 34: raw, 35: u32, 36: raw, // PROMISCUITY, NUM_TX_QUEUES, NUM_RX_QUEUES, CARRIER, PHYS_PORT_ID, CARRIER_CHANGES, PHYS_SWITCH_ID
		37: u32, 38: raw, 39: raw, 40: u32, 41: u32, 42: raw, 43: nest(xdpAttrs), // LINK_NETNSID, PHYS_PORT_NAME, PROTO_DOWN, GSO_MAX_SEGS, GSO_MAX_SIZE, PAD, XDP
		44: u32, 45: u32, 46: u32, 47: u32, 48: u32, 49: u32, 50: u32, 51: u32, // EVENT, NEW_NETNSID, IF_NETNSID, CARRIER_UP/DOWN_COUNT, NEW_IFINDEX, MIN_MTU, MAX_MTU
		52: raw, 53: raw, 54: raw, 55: raw, 56: raw, 57: raw, // PROP_LIST, ALT_IFNAME, PERM_ADDRESS, PROTO_DOWN_REASON, PARENT_DEV_NAME, PARENT_DEV_BUS_NAME
		58: u32, 59: u32, 60: u32, 61: u32, 62: raw, 63: u32, 64: u32, 65: raw, // GRO_MAX_SIZE, TSO_MAX_SIZE, TSO_MAX_SEGS, ALLMULTI, DEVLINK_PORT, GSO/GRO_IPV4_MAX_SIZE, DPLL_PIN
		66: uint, 67: raw, 68: u16, 69: u16, // MAX_PACING_OFFLOAD_HORIZON, NETNS_IMMUTABLE, HEADROOM, TAILROOM
	})
}

// IFLA_XDP_*.
func xdpAttrs() schema {
	return numbered("IFLA_XDP", map[uint16]kind{
		1: u32, 2: raw, 3: u32, 4: u32, 5: u32, 6: u32, 7: u32, 8: u32,
	})
}

// IFLA_AF_SPEC: one nest per address family.
func afSpecAttrs() schema {
	return numbered("IFLA_AF_SPEC", map[uint16]kind{
		2:  nest(inetAttrs),  // AF_INET
		7:  raw,              // AF_BRIDGE (IFLA_BRIDGE_*, not captured)
		10: nest(inet6Attrs), // AF_INET6
		45: raw,              // AF_MCTP
	})
}

// IFLA_INET_*: IFLA_INET_CONF is an array of u32 in a reply, a nest of u32
// attributes (flagged NLA_F_NESTED) in a request.
func inetAttrs() schema {
	return numbered("IFLA_INET", map[uint16]kind{
		1: func(s swapper, p []byte, flagged bool) error {
			if flagged {
				return s.attrs(p, devconfAttrs())
			}
			return words(p, 4)
		},
	})
}

// The IPV4_DEVCONF_* attributes of a request's IFLA_INET_CONF nest.
func devconfAttrs() schema {
	m := map[uint16]kind{}
	for i := uint16(1); i <= 64; i++ {
		m[i] = u32
	}
	return numbered("IPV4_DEVCONF", m)
}

// IFLA_INET6_*.
func inet6Attrs() schema {
	return numbered("IFLA_INET6", map[uint16]kind{
		1: u32, 2: u32, 3: u64, 4: raw, 5: u32, 6: u64, 7: raw, 8: raw, 9: u32, // FLAGS, CONF, STATS, MCAST, CACHEINFO, ICMP6STATS, TOKEN, ADDR_GEN_MODE, RA_MTU
	})
}

// linkInfo swaps IFLA_LINKINFO, whose data depends on the kind it names.
func linkInfo(s swapper, p []byte, _ bool) error {
	var k, slave string
	for b := p; len(b) >= 4; {
		n := int(s.order.Uint16(b))
		if n < 4 || n > len(b) {
			break
		}
		switch s.order.Uint16(b[2:]) & 0x3fff {
		case 1:
			k = cstring(b[4:n])
		case 4:
			slave = cstring(b[4:n])
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	data := raw
	switch k {
	case "vxlan":
		data = nest(vxlanAttrs)
	case "bridge":
		data = nest(bridgeAttrs)
	case "veth":
		data = nest(vethAttrs)
	case "":
	default:
		data = func(swapper, []byte, bool) error { return errKind(k) }
	}
	slaveData := raw
	switch slave {
	case "bridge":
		slaveData = nest(brportAttrs)
	case "":
	default:
		slaveData = func(swapper, []byte, bool) error { return errKind(slave) }
	}
	return s.attrs(p, numbered("IFLA_INFO", map[uint16]kind{
		1: raw, 2: data, 3: raw, 4: raw, 5: slaveData, // KIND, DATA, XSTATS, SLAVE_KIND, SLAVE_DATA
	}))
}

type errKind string

func (e errKind) Error() string { return "link kind " + string(e) + ": not in the schema" }

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// VETH_INFO_PEER: an ifinfomsg and the peer's IFLA_* attributes (which
// include IFLA_LINKINFO again).
func vethAttrs() schema {
	return numbered("VETH_INFO", map[uint16]kind{
		1: func(s swapper, p []byte, _ bool) error { return s.link(p) },
	})
}

// IFLA_VXLAN_*.
func vxlanAttrs() schema {
	return numbered("IFLA_VXLAN", map[uint16]kind{
		1: u32, 2: raw, 3: u32, 4: raw, 5: raw, 6: raw, 7: raw, 8: u32, 9: u32, // ID, GROUP, LINK, LOCAL, TTL, TOS, LEARNING, AGEING, LIMIT
		10: raw, 11: raw, 12: raw, 13: raw, 14: raw, 15: raw, 16: raw, 17: raw, // PORT_RANGE, PROXY, RSC, L2MISS, L3MISS, PORT (network order), GROUP6, LOCAL6
		18: raw, 19: raw, 20: raw, 21: raw, 22: raw, 23: raw, 24: raw, 25: raw, // UDP_CSUM, ZERO_CSUM6_TX/RX, REMCSUM_TX/RX, GBP, REMCSUM_NOPARTIAL, COLLECT_METADATA
		26: raw, 27: raw, 28: raw, 29: raw, 30: raw, 31: raw, 32: u32, 33: raw, 34: raw, // LABEL (network order), GPE, TTL_INHERIT, DF, VNIFILTER, LOCALBYPASS, LABEL_POLICY, RESERVED_BITS, MC_ROUTE
	})
}

// IFLA_BR_* (bridge).
func bridgeAttrs() schema {
	return numbered("IFLA_BR", map[uint16]kind{
		1: u32, 2: u32, 3: u32, 4: u32, 5: u32, 6: u16, 7: raw, 8: raw, 9: u16, // FORWARD_DELAY, HELLO_TIME, MAX_AGE, AGEING_TIME, STP_STATE, PRIORITY, VLAN_FILTERING, VLAN_PROTOCOL (network order), GROUP_FWD_MASK
		10: raw, 11: raw, 12: u16, 13: u32, 14: raw, 15: raw, // ROOT_ID, BRIDGE_ID, ROOT_PORT, ROOT_PATH_COST, TOPOLOGY_CHANGE(_DETECTED)
		16: u64, 17: u64, 18: u64, 19: u64, 20: raw, 21: raw, // HELLO/TCN/TOPOLOGY_CHANGE/GC_TIMER, GROUP_ADDR, FDB_FLUSH
		22: raw, 23: raw, 24: raw, 25: raw, 26: u32, 27: u32, 28: u32, 29: u32, // MCAST_ROUTER, SNOOPING, QUERY_USE_IFADDR, QUERIER, HASH_ELASTICITY, HASH_MAX, LAST_MEMBER_CNT, STARTUP_QUERY_CNT
		30: u64, 31: u64, 32: u64, 33: u64, 34: u64, 35: u64, // MCAST_*_INTVL
		36: raw, 37: raw, 38: raw, 39: u16, 40: raw, 41: raw, 42: raw, 43: raw, 44: raw, 45: raw, // NF_CALL_*, VLAN_DEFAULT_PVID, PAD, VLAN/MCAST_STATS_ENABLED, IGMP/MLD_VERSION, VLAN_STATS_PER_PORT
		46: u32, 47: raw, 48: u32, 49: u32, // MULTI_BOOLOPT (2 x u32), MCAST_QUERIER_STATE, FDB_N_LEARNED, FDB_MAX_LEARNED
	})
}

// IFLA_BRPORT_* (a bridge port's slave data).
func brportAttrs() schema {
	return numbered("IFLA_BRPORT", map[uint16]kind{
		1: raw, 2: u16, 3: u32, 4: raw, 5: raw, 6: raw, 7: raw, 8: raw, 9: raw, 10: raw, 11: raw, 12: raw, // STATE, PRIORITY, COST, MODE ... PROXYARP_WIFI
		13: raw, 14: raw, 15: u16, 16: u16, 17: u16, 18: u16, 19: raw, 20: raw, // ROOT_ID, BRIDGE_ID, DESIGNATED_PORT/COST, ID, NO, TOPOLOGY_CHANGE_ACK, CONFIG_PENDING
		21: u64, 22: u64, 23: u64, 24: raw, 25: raw, 26: raw, 27: raw, 28: raw, 29: raw, 30: raw, // *_TIMER, FLUSH, MULTICAST_ROUTER, PAD, MCAST_FLOOD, MCAST_TO_UCAST, VLAN_TUNNEL, BCAST_FLOOD
		31: u16, 32: raw, 33: raw, 34: u32, 35: raw, 36: raw, 37: u32, 38: u32, // GROUP_FWD_MASK, NEIGH_SUPPRESS, ISOLATED, BACKUP_PORT, MRP_*, MCAST_EHT_HOSTS_LIMIT/CNT
		39: raw, 40: raw, 41: u32, 42: u32, 43: raw, 44: u32, // LOCKED, MAB, MCAST_N_GROUPS, MCAST_MAX_GROUPS, NEIGH_VLAN_SUPPRESS, BACKUP_NHID
	})
}
