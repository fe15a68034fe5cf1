package rtnl

// Internals the external tests (package rtnl_test) exercise directly.

// ClassifyPayload classifies a message given as its decoded header and
// payload, as Classify does for the whole message.
func ClassifyPayload(h Header, data []byte, ev *Event) (ok bool, err error) {
	return classify(h.Type, h.Flags, h.PID, data, ev)
}

var (
	DecodeMiss  = decodeMiss
	ParseHeader = parseHeader
)

// Linux numbers under their C names, for the external tests: the codec's
// own constants are unexported, and golang.org/x/sys/unix has them on Linux
// only. TestABIMatchesUnix checks them.
const (
	ARPHRD_ETHER           = 1
	IFA_ADDRESS            = ifaAddress
	IFA_CACHEINFO          = ifaCacheInfo
	IFA_FLAGS              = ifaFlags
	IFA_F_NODAD            = 0x2
	IFA_F_NOPREFIXROUTE    = 0x200
	IFA_F_PERMANENT        = 0x80
	IFA_LABEL              = ifaLabel
	IFF_UP                 = 0x1
	IFLA_ADDRESS           = iflaAddress
	IFLA_AF_SPEC           = iflaAFSpec
	IFLA_BR_AGEING_TIME    = iflaBrAgeingTime
	IFLA_BR_FORWARD_DELAY  = iflaBrForwardDelay
	IFLA_BR_HELLO_TIME     = iflaBrHelloTime
	IFLA_BR_MAX_AGE        = iflaBrMaxAge
	IFLA_BR_MCAST_SNOOPING = iflaBrMcastSnooping
	IFLA_BR_PRIORITY       = iflaBrPriority
	IFLA_BR_STP_STATE      = iflaBrSTPState
	IFLA_BR_VLAN_FILTERING = iflaBrVLANFiltering
	IFLA_IFNAME            = iflaIfName
	IFLA_INET_CONF         = iflaInetConf
	IFLA_INET6_CONF        = iflaInet6Conf
	IFLA_INFO_DATA         = iflaInfoData
	IFLA_INFO_KIND         = iflaInfoKind
	IFLA_LINKINFO          = iflaLinkInfo
	IFLA_LINK_NETNSID      = iflaLinkNetNSID
	IFLA_MASTER            = iflaMaster
	IFLA_MTU               = iflaMTU
	IFLA_VXLAN_AGEING      = iflaVxlanAgeing
	IFLA_VXLAN_GROUP       = iflaVxlanGroup
	IFLA_VXLAN_GROUP6      = iflaVxlanGroup6
	IFLA_VXLAN_ID          = iflaVxlanID
	IFLA_VXLAN_L2MISS      = iflaVxlanL2Miss
	IFLA_VXLAN_L3MISS      = iflaVxlanL3Miss
	IFLA_VXLAN_LEARNING    = iflaVxlanLearning
	IFLA_VXLAN_LIMIT       = iflaVxlanLimit
	IFLA_VXLAN_LINK        = iflaVxlanLink
	IFLA_VXLAN_LOCAL       = iflaVxlanLocal
	IFLA_VXLAN_LOCAL6      = iflaVxlanLocal6
	IFLA_VXLAN_PORT        = iflaVxlanPort
	IFLA_VXLAN_PORT_RANGE  = iflaVxlanPortRange
	IFLA_VXLAN_PROXY       = iflaVxlanProxy
	IFLA_VXLAN_RSC         = iflaVxlanRSC
	IFLA_VXLAN_TOS         = iflaVxlanTOS
	IFLA_VXLAN_TTL         = iflaVxlanTTL
	IFNAMSIZ               = ifNameSize
	NTF_ROUTER             = 0x80
	NTF_SELF               = 0x2
	NUD_PERMANENT          = 0x80
	NUD_REACHABLE          = 0x2
	RTA_GATEWAY            = rtaGateway
	RTA_MULTIPATH          = 9
	RTA_OIF                = rtaOIF
	RTA_TABLE              = rtaTable
	RTM_F_CLONED           = 0x200
	RTN_UNICAST            = 1
	RT_SCOPE_LINK          = 253
	RT_TABLE_UNSPEC        = routeTableUnspec
	SizeofIfAddrmsg        = ifaddrmsgLen
	SizeofIfInfomsg        = ifinfomsgLen
	SizeofRtMsg            = rtmsgLen
)
