package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Address attributes (IFA_*, include/uapi/linux/if_addr.h).
const (
	ifaAddress   = 1 // IFA_ADDRESS
	ifaLocal     = 2 // IFA_LOCAL
	ifaLabel     = 3 // IFA_LABEL
	ifaBroadcast = 4 // IFA_BROADCAST
	ifaCacheInfo = 6 // IFA_CACHEINFO
	ifaFlags     = 8 // IFA_FLAGS
)

// Scope is an address or route scope (RT_SCOPE_*).
type Scope uint8

// Scopes (RT_SCOPE_*).
const (
	ScopeUniverse Scope = 0   // RT_SCOPE_UNIVERSE
	ScopeSite     Scope = 200 // RT_SCOPE_SITE
	ScopeLink     Scope = 253 // RT_SCOPE_LINK
	ScopeHost     Scope = 254 // RT_SCOPE_HOST
	ScopeNowhere  Scope = 255 // RT_SCOPE_NOWHERE
)

// String returns the scope as iproute2 names it ("global", "link", "host").
func (s Scope) String() string {
	switch s {
	case ScopeUniverse:
		return "global"
	case ScopeSite:
		return "site"
	case ScopeLink:
		return "link"
	case ScopeHost:
		return "host"
	case ScopeNowhere:
		return "nowhere"
	}
	return fmt.Sprintf("Scope(%d)", uint8(s))
}

// AddrFlags are an address's IFA_F_* flags.
type AddrFlags uint32

// Address flags (IFA_F_*).
const (
	AddrSecondary      AddrFlags = 0x1   // IFA_F_SECONDARY
	AddrNoDAD          AddrFlags = 0x2   // IFA_F_NODAD
	AddrOptimistic     AddrFlags = 0x4   // IFA_F_OPTIMISTIC
	AddrDADFailed      AddrFlags = 0x8   // IFA_F_DADFAILED
	AddrHomeAddress    AddrFlags = 0x10  // IFA_F_HOMEADDRESS
	AddrDeprecated     AddrFlags = 0x20  // IFA_F_DEPRECATED
	AddrTentative      AddrFlags = 0x40  // IFA_F_TENTATIVE
	AddrPermanent      AddrFlags = 0x80  // IFA_F_PERMANENT
	AddrManageTempAddr AddrFlags = 0x100 // IFA_F_MANAGETEMPADDR
	AddrNoPrefixRoute  AddrFlags = 0x200 // IFA_F_NOPREFIXROUTE
	AddrMcAutoJoin     AddrFlags = 0x400 // IFA_F_MCAUTOJOIN
	AddrStablePrivacy  AddrFlags = 0x800 // IFA_F_STABLE_PRIVACY
)

var addrFlagNames = [...]string{
	"secondary", "nodad", "optimistic", "dadfailed", "homeaddress", "deprecated", "tentative",
	"permanent", "mngtmpaddr", "noprefixroute", "autojoin", "stable-privacy",
}

// String formats the flags as iproute2 names joined by '|', unknown bits in
// hex, and "0" for none.
func (f AddrFlags) String() string {
	if f == 0 {
		return "0"
	}
	return bitNames(uint64(f), addrFlagNames[:])
}

// AddrCacheInfo is IFA_CACHEINFO (struct ifa_cacheinfo). In a request,
// Preferred and Valid set the lifetimes in seconds (0xffffffff = forever).
type AddrCacheInfo struct {
	Preferred uint32 // ifa_prefered: preferred lifetime left, seconds
	Valid     uint32 // ifa_valid: valid lifetime left, seconds
	Created   uint32 // cstamp: creation time, hundredths of a second since boot
	Updated   uint32 // tstamp: last update, hundredths of a second since boot
}

// AddressMessage is an rtnetlink address message: struct ifaddrmsg and its
// IFA_* attributes. A zero field is not sent. For an IPv4 address, Local is
// the address itself and Address the peer (equal to Local without a peer);
// IPv6 reports only Address unless there is a peer. Prefix picks the right
// one.
type AddressMessage struct {
	Family    uint8     // ifa_family: AF_INET or AF_INET6
	PrefixLen uint8     // ifa_prefixlen
	Flags     AddrFlags // ifa_flags (8 bits) widened by IFA_FLAGS (32 bits)
	Scope     Scope     // ifa_scope
	Index     int32     // ifa_index: the link the address is on

	Address   netip.Addr    // IFA_ADDRESS
	Local     netip.Addr    // IFA_LOCAL
	Broadcast netip.Addr    // IFA_BROADCAST
	Label     string        // IFA_LABEL (IPv4: "eth0" or "eth0:alias")
	CacheInfo AddrCacheInfo // IFA_CACHEINFO
}

// NewAddress returns a request for address p on link index, as `ip addr add
// p dev LINK` builds it: IFA_LOCAL and IFA_ADDRESS both set to the address,
// no broadcast, global scope.
func NewAddress(index int32, p netip.Prefix) *AddressMessage {
	a := p.Addr().Unmap()
	fam := uint8(FamilyInet)
	if a.Is6() {
		fam = FamilyInet6
	}
	return &AddressMessage{Family: fam, PrefixLen: uint8(p.Bits()), Index: index, Address: a, Local: a}
}

// Prefix returns the address with its prefix length: Local if set, else
// Address.
func (m *AddressMessage) Prefix() netip.Prefix {
	a := m.Local
	if !a.IsValid() {
		a = m.Address
	}
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, int(m.PrefixLen))
}

// MarshalBinary encodes m as an ifaddrmsg followed by its attributes.
func (m *AddressMessage) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to b.
func (m *AddressMessage) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, m.Family, m.PrefixLen, uint8(m.Flags), uint8(m.Scope))
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Index))
	ae := NewAttributeEncoder(b)
	if m.Address.IsValid() {
		ae.Addr(ifaAddress, m.Address)
	}
	if m.Local.IsValid() {
		ae.Addr(ifaLocal, m.Local)
	}
	if m.Broadcast.IsValid() {
		ae.Addr(ifaBroadcast, m.Broadcast)
	}
	if m.Label != "" {
		if len(m.Label) >= ifNameSize {
			return b[:len(b)-ifaddrmsgLen], fmt.Errorf("rtnl: address label %q longer than %d bytes", m.Label, ifNameSize-1)
		}
		ae.String(ifaLabel, m.Label)
	}
	if m.CacheInfo != (AddrCacheInfo{}) {
		var ci [16]byte
		binary.NativeEndian.PutUint32(ci[0:], m.CacheInfo.Preferred)
		binary.NativeEndian.PutUint32(ci[4:], m.CacheInfo.Valid)
		binary.NativeEndian.PutUint32(ci[8:], m.CacheInfo.Created)
		binary.NativeEndian.PutUint32(ci[12:], m.CacheInfo.Updated)
		ae.Raw(ifaCacheInfo, ci[:])
	}
	if m.Flags > 0xff {
		ae.Uint32(ifaFlags, uint32(m.Flags))
	}
	return ae.Bytes(), nil
}

var errShortIfaddrmsg = errors.New("rtnl: address message shorter than struct ifaddrmsg")

// UnmarshalBinary decodes an ifaddrmsg and its attributes into m, replacing
// its contents. It never panics; malformed input yields an error.
func (m *AddressMessage) UnmarshalBinary(b []byte) error {
	*m = AddressMessage{}
	if len(b) < ifaddrmsgLen {
		return errShortIfaddrmsg
	}
	m.Family, m.PrefixLen, m.Flags, m.Scope = b[0], b[1], AddrFlags(b[2]), Scope(b[3])
	m.Index = int32(binary.NativeEndian.Uint32(b[4:8]))
	ad := NewAttributeDecoder(b[ifaddrmsgLen:])
	for ad.Next() {
		switch ad.Type() {
		case ifaAddress:
			m.Address = ad.Addr()
		case ifaLocal:
			m.Local = ad.Addr()
		case ifaBroadcast:
			m.Broadcast = ad.Addr()
		case ifaLabel:
			m.Label = ad.String()
		case ifaFlags:
			m.Flags = AddrFlags(ad.Uint32())
		case ifaCacheInfo:
			if ad.Len() != 16 {
				ad.Fail(fmt.Errorf("rtnl: IFA_CACHEINFO has %d bytes, not 16", ad.Len()))
				break
			}
			ci := ad.Bytes()
			m.CacheInfo = AddrCacheInfo{
				Preferred: binary.NativeEndian.Uint32(ci[0:]),
				Valid:     binary.NativeEndian.Uint32(ci[4:]),
				Created:   binary.NativeEndian.Uint32(ci[8:]),
				Updated:   binary.NativeEndian.Uint32(ci[12:]),
			}
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: address on link %d: %w", m.Index, err)
	}
	return nil
}
