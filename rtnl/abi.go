package rtnl

// The numbers of the netlink protocol as Linux defines them
// (include/uapi/linux/netlink.h, rtnetlink.h, socket.h). golang.org/x/sys/unix
// has them for Linux only; rtnl defines its own so that the codec, a Conn
// over a Transport and the Monitor build and run on every system. On Linux
// they equal the unix constants of the same names (TestABIMatchesUnix).

// Message types (nlmsg_type): netlink's control messages and the rtnetlink
// requests and replies rtnl speaks. MessageTypeName names them.
const (
	MsgNoop          = 0x1 // NLMSG_NOOP
	MsgError         = 0x2 // NLMSG_ERROR: an ACK, or a request's failure
	MsgDone          = 0x3 // NLMSG_DONE: the end of a dump
	MsgOverrun       = 0x4 // NLMSG_OVERRUN
	MsgNewLink       = 16  // RTM_NEWLINK
	MsgDelLink       = 17  // RTM_DELLINK
	MsgGetLink       = 18  // RTM_GETLINK
	MsgSetLink       = 19  // RTM_SETLINK
	MsgNewAddr       = 20  // RTM_NEWADDR
	MsgDelAddr       = 21  // RTM_DELADDR
	MsgGetAddr       = 22  // RTM_GETADDR
	MsgNewRoute      = 24  // RTM_NEWROUTE
	MsgDelRoute      = 25  // RTM_DELROUTE
	MsgGetRoute      = 26  // RTM_GETROUTE
	MsgNewNeigh      = 28  // RTM_NEWNEIGH
	MsgDelNeigh      = 29  // RTM_DELNEIGH
	MsgGetNeigh      = 30  // RTM_GETNEIGH: a dump request, or a miss notification
	MsgNewNeighTable = 64  // RTM_NEWNEIGHTBL
	MsgGetNeighTable = 66  // RTM_GETNEIGHTBL
	MsgSetNeighTable = 67  // RTM_SETNEIGHTBL
	msgBase          = 16  // RTM_BASE: the first rtnetlink type
)

// Header flags (nlmsg_flags). The high byte means one thing in a get
// request (Root, Match, Atomic; Dump is Root|Match) and another in a
// new/delete request (Replace, Excl, Create, Append).
const (
	FlagRequest  = 0x1  // NLM_F_REQUEST: a request
	FlagMulti    = 0x2  // NLM_F_MULTI: a part of a multi-part reply (a dump)
	FlagAck      = 0x4  // NLM_F_ACK: ask for an ACK
	FlagEcho     = 0x8  // NLM_F_ECHO: echo the request
	FlagDumpIntr = 0x10 // NLM_F_DUMP_INTR: the dump was interrupted by a change
	// FlagDumpFiltered (NLM_F_DUMP_FILTERED) marks dump replies the kernel
	// filtered by the request's attributes (strict checking).
	FlagDumpFiltered = 0x20
	FlagRoot         = 0x100 // NLM_F_ROOT: a get returns the whole table
	FlagMatch        = 0x200 // NLM_F_MATCH: a get returns every match
	FlagAtomic       = 0x400 // NLM_F_ATOMIC
	FlagDump         = FlagRoot | FlagMatch
	FlagReplace      = 0x100 // NLM_F_REPLACE: replace an existing object
	FlagExcl         = 0x200 // NLM_F_EXCL: fail if the object exists
	FlagCreate       = 0x400 // NLM_F_CREATE: create the object if missing
	FlagAppend       = 0x800 // NLM_F_APPEND: add to the end of a list
	flagCapped       = 0x100 // NLM_F_CAPPED: the error ACK carries no request payload
	flagAckTLVs      = 0x200 // NLM_F_ACK_TLVS: the ACK carries extended-ACK attributes
)

// Address families as rtnetlink numbers them (ndm_family, ifa_family,
// rtm_family). Other systems number AF_INET6 and AF_BRIDGE differently:
// use these, not the syscall package's, in messages.
const (
	FamilyUnspec = 0  // AF_UNSPEC
	FamilyInet   = 2  // AF_INET: IPv4 (ARP for neighbours)
	FamilyBridge = 7  // AF_BRIDGE: forwarding databases (bridge and vxlan FDB)
	FamilyInet6  = 10 // AF_INET6: IPv6 (ND for neighbours)
)

// Sizes of the fixed headers, and the interface name limit.
const (
	// HeaderLen is the size of a netlink message header (struct nlmsghdr).
	HeaderLen    = 16
	ifinfomsgLen = 16 // sizeof(struct ifinfomsg)
	ifaddrmsgLen = 8  // sizeof(struct ifaddrmsg)
	rtmsgLen     = 12 // sizeof(struct rtmsg)
	ifNameSize   = 16 // IFNAMSIZ: an interface name and its NUL
)
