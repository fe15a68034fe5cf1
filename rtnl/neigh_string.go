package rtnl

import (
	"strconv"
	"strings"
)

var neighStateNames = [...]string{"INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED", "NOARP", "PERMANENT"}

// String names the state bits as iproute2 does, joined by "|"
// ("REACHABLE|NOARP"); bits without a name appear in hex, 0 is "NONE".
func (s NeighState) String() string {
	if s == NeighNone {
		return "NONE"
	}
	return bitNames(uint64(s), neighStateNames[:])
}

var neighFlagNames = [...]string{"use", "self", "master", "proxy", "extern_learn", "offload", "sticky", "router"}

// String names the flags as iproute2 does, joined by "|" ("self|extern_learn");
// 0 is "none".
func (f NeighFlags) String() string {
	if f == 0 {
		return "none"
	}
	return bitNames(uint64(f), neighFlagNames[:])
}

// bitNames joins the names of the bits set in v; names[i] names bit 1<<i.
// Bits without a name are shown together in hex.
func bitNames(v uint64, names []string) string {
	var sb strings.Builder
	for i, name := range names {
		if v&(1<<i) == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString(name)
		v &^= 1 << i
	}
	if v != 0 {
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString("0x")
		sb.WriteString(strconv.FormatUint(v, 16))
	}
	return sb.String()
}

var neighAttrNames = [...]string{
	NeighAttrDst:          "NDA_DST",
	NeighAttrLLAddr:       "NDA_LLADDR",
	NeighAttrCacheInfo:    "NDA_CACHEINFO",
	NeighAttrProbes:       "NDA_PROBES",
	NeighAttrVLAN:         "NDA_VLAN",
	NeighAttrPort:         "NDA_PORT",
	NeighAttrVNI:          "NDA_VNI",
	NeighAttrIfindex:      "NDA_IFINDEX",
	NeighAttrMaster:       "NDA_MASTER",
	NeighAttrLinkNetnsID:  "NDA_LINK_NETNSID",
	NeighAttrSrcVNI:       "NDA_SRC_VNI",
	NeighAttrProtocol:     "NDA_PROTOCOL",
	NeighAttrNHID:         "NDA_NH_ID",
	NeighAttrFDBExtAttrs:  "NDA_FDB_EXT_ATTRS",
	NeighAttrFlagsExt:     "NDA_FLAGS_EXT",
	NeighAttrNDMStateMask: "NDA_NDM_STATE_MASK",
	NeighAttrNDMFlagsMask: "NDA_NDM_FLAGS_MASK",
}

// String returns the attribute's kernel name ("NDA_VNI"), or "NDA_<n>" for an
// unknown type.
func (a NeighAttr) String() string {
	if int(a) < len(neighAttrNames) && neighAttrNames[a] != "" {
		return neighAttrNames[a]
	}
	return "NDA_" + strconv.Itoa(int(a))
}

// String lists the attributes in the set ("NDA_DST|NDA_LLADDR"), or "none".
func (s NeighAttrSet) String() string {
	if s == 0 {
		return "none"
	}
	var sb strings.Builder
	for a := NeighAttr(0); a < 32; a++ {
		if !s.Has(a) {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString(a.String())
	}
	return sb.String()
}

// String formats the message much as `ip neigh` / `bridge fdb` print an
// entry: "192.0.2.3 lladdr 02:00:00:00:00:01 dev 4 vni 42 PERMANENT self".
func (m *NeighMessage) String() string {
	var sb strings.Builder
	sep := func() {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
	}
	hasLL := m.Present.Has(NeighAttrLLAddr) || len(m.LLAddr) > 0
	if m.Family == FamilyBridge {
		if hasLL {
			sb.WriteString(m.LLAddr.String())
		}
	} else {
		if m.Dst.IsValid() {
			sb.WriteString(m.Dst.String())
		}
		if hasLL {
			sep()
			sb.WriteString("lladdr ")
			sb.WriteString(m.LLAddr.String())
		}
	}
	sep()
	sb.WriteString("dev ")
	sb.WriteString(strconv.Itoa(int(m.Ifindex)))
	if m.Family == FamilyBridge && m.Dst.IsValid() {
		sb.WriteString(" dst ")
		sb.WriteString(m.Dst.String())
	}
	num := func(name string, a NeighAttr, v uint64) {
		if v != 0 || m.Present.Has(a) {
			sb.WriteString(" ")
			sb.WriteString(name)
			sb.WriteString(" ")
			sb.WriteString(strconv.FormatUint(v, 10))
		}
	}
	num("port", NeighAttrPort, uint64(m.Port))
	num("vni", NeighAttrVNI, uint64(m.VNI))
	num("src_vni", NeighAttrSrcVNI, uint64(m.SrcVNI))
	num("via", NeighAttrIfindex, uint64(m.Via))
	num("master", NeighAttrMaster, uint64(m.Master))
	num("vlan", NeighAttrVLAN, uint64(m.VLAN))
	num("nhid", NeighAttrNHID, uint64(m.NHID))
	num("probes", NeighAttrProbes, uint64(m.Probes))
	sb.WriteString(" ")
	sb.WriteString(m.State.String())
	if m.Flags != 0 {
		sb.WriteString(" ")
		sb.WriteString(m.Flags.String())
	}
	return sb.String()
}
