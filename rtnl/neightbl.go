package rtnl

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Neighbour-table attributes (NDTA_*) and parameters (NDTPA_*), which
// golang.org/x/sys/unix does not define.
const (
	ndtaName            = 1  // NDTA_NAME: string, "arp_cache" or "ndisc_cache"
	ndtaParms           = 6  // NDTA_PARMS: nested NDTPA_*
	ndtmsgLen           = 4  // sizeof(struct ndtmsg)
	ndtpaIfindex        = 1  // NDTPA_IFINDEX: u32
	ndtpaReachableTime  = 3  // NDTPA_REACHABLE_TIME: u64 ms, read-only
	ndtpaBaseReachable  = 4  // NDTPA_BASE_REACHABLE_TIME: u64 ms
	ndtpaRetransTime    = 5  // NDTPA_RETRANS_TIME: u64 ms
	ndtpaGCStaleTime    = 6  // NDTPA_GC_STALETIME: u64 ms
	ndtpaDelayProbeTime = 7  // NDTPA_DELAY_PROBE_TIME: u64 ms
	ndtpaAppProbes      = 9  // NDTPA_APP_PROBES: u32
	ndtpaUcastProbes    = 10 // NDTPA_UCAST_PROBES: u32
	ndtpaMcastProbes    = 11 // NDTPA_MCAST_PROBES: u32
	ndtpaProxyQueueLen  = 14 // NDTPA_PROXY_QLEN: u32
	ndtpaQueueLenBytes  = 16 // NDTPA_QUEUE_LENBYTES: u32
	ndtpaMcastReprobes  = 17 // NDTPA_MCAST_REPROBES: u32
)

// NeighTableParams are the parameters of one device in a neighbour table
// (/proc/sys/net/ipv4/neigh/DEV/*), set with RTM_SETNEIGHTBL. Nil fields are
// left unchanged when setting and were absent when decoding; Go 1.26's
// new(expr) makes them easy to fill: AppProbes: new(uint32(3)).
type NeighTableParams struct {
	// Family selects the table: AF_INET (arp_cache; 0 means AF_INET) or
	// AF_INET6 (ndisc_cache).
	Family uint8
	// Ifindex is the device. 0 names the table's defaults, which exist only
	// in the initial network namespace (elsewhere the kernel says ENOENT).
	Ifindex int32

	AppProbes     *uint32 // NDTPA_APP_PROBES: app_solicit, probes asked of userspace
	UcastProbes   *uint32 // NDTPA_UCAST_PROBES: ucast_solicit
	McastProbes   *uint32 // NDTPA_MCAST_PROBES: mcast_solicit
	McastReprobes *uint32 // NDTPA_MCAST_REPROBES: mcast_resolicit
	QueueLenBytes *uint32 // NDTPA_QUEUE_LENBYTES: unres_qlen_bytes
	ProxyQueueLen *uint32 // NDTPA_PROXY_QLEN: proxy_qlen

	RetransTime       *time.Duration // NDTPA_RETRANS_TIME: retrans_time_ms
	BaseReachableTime *time.Duration // NDTPA_BASE_REACHABLE_TIME: base_reachable_time_ms
	DelayProbeTime    *time.Duration // NDTPA_DELAY_PROBE_TIME: delay_first_probe_time
	GCStaleTime       *time.Duration // NDTPA_GC_STALETIME: gc_stale_time

	// ReachableTime is the current randomised reachable time
	// (NDTPA_REACHABLE_TIME); decoded only, never sent.
	ReachableTime time.Duration
}

// neighTableName returns the kernel's name for the table of family.
func neighTableName(family uint8) (string, error) {
	switch family {
	case 0, FamilyInet:
		return "arp_cache", nil
	case FamilyInet6:
		return "ndisc_cache", nil
	}
	return "", fmt.Errorf("rtnl: no neighbour table for address family %d", family)
}

// AppendBinary appends an RTM_SETNEIGHTBL body (struct ndtmsg, NDTA_NAME and
// NDTA_PARMS) for p to b.
func (p *NeighTableParams) AppendBinary(b []byte) ([]byte, error) {
	name, err := neighTableName(p.Family)
	if err != nil {
		return b, err
	}
	family := p.Family
	if family == 0 {
		family = FamilyInet
	}
	ae := NewAttributeEncoder(append(b, family, 0, 0, 0))
	ae.String(ndtaName, name)
	nest := ae.Begin(ndtaParms)
	if p.Ifindex != 0 {
		ae.Uint32(ndtpaIfindex, uint32(p.Ifindex))
	}
	for _, f := range [...]struct {
		typ uint16
		v   *uint32
	}{
		{ndtpaAppProbes, p.AppProbes}, {ndtpaUcastProbes, p.UcastProbes},
		{ndtpaMcastProbes, p.McastProbes}, {ndtpaMcastReprobes, p.McastReprobes},
		{ndtpaQueueLenBytes, p.QueueLenBytes}, {ndtpaProxyQueueLen, p.ProxyQueueLen},
	} {
		if f.v != nil {
			ae.Uint32(f.typ, *f.v)
		}
	}
	for _, f := range [...]struct {
		typ  uint16
		name string
		v    *time.Duration
	}{
		{ndtpaRetransTime, "RetransTime", p.RetransTime},
		{ndtpaBaseReachable, "BaseReachableTime", p.BaseReachableTime},
		{ndtpaDelayProbeTime, "DelayProbeTime", p.DelayProbeTime},
		{ndtpaGCStaleTime, "GCStaleTime", p.GCStaleTime},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 {
			return b, fmt.Errorf("rtnl: neighbour table %s %v is negative", f.name, *f.v)
		}
		ae.Uint64(f.typ, uint64(*f.v/time.Millisecond))
	}
	ae.End(nest)
	return ae.Bytes(), nil
}

// MarshalBinary encodes p as an RTM_SETNEIGHTBL body.
func (p *NeighTableParams) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// UnmarshalBinary decodes an RTM_NEWNEIGHTBL message (a reply to an
// RTM_GETNEIGHTBL dump): the family and the parameters in NDTA_PARMS. A
// message without NDTA_PARMS leaves every parameter nil.
func (p *NeighTableParams) UnmarshalBinary(b []byte) error {
	*p = NeighTableParams{}
	if len(b) < ndtmsgLen {
		return fmt.Errorf("rtnl: neighbour table message of %d bytes is shorter than an ndtmsg", len(b))
	}
	p.Family = b[0]
	ad := NewAttributeDecoder(b[ndtmsgLen:])
	for ad.Next() {
		if ad.Type() != ndtaParms {
			continue
		}
		nd := ad.Nest()
		for nd.Next() {
			if err := p.decodeParm(&nd); err != nil {
				return err
			}
		}
		if err := nd.Err(); err != nil {
			return fmt.Errorf("rtnl: NDTA_PARMS: %w", err)
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: neighbour table message: %w", err)
	}
	return nil
}

func (p *NeighTableParams) decodeParm(nd *AttributeDecoder) error {
	u32 := func() (*uint32, error) {
		if nd.Len() != 4 {
			return nil, fmt.Errorf("rtnl: NDTPA attribute %d: want 4 bytes, have %d", nd.Type(), nd.Len())
		}
		v := binary.NativeEndian.Uint32(nd.Bytes())
		return &v, nil
	}
	ms := func() (*time.Duration, error) {
		if nd.Len() != 8 {
			return nil, fmt.Errorf("rtnl: NDTPA attribute %d: want 8 bytes, have %d", nd.Type(), nd.Len())
		}
		v := time.Duration(binary.NativeEndian.Uint64(nd.Bytes())) * time.Millisecond
		return &v, nil
	}
	var err error
	switch nd.Type() {
	case ndtpaIfindex:
		var v *uint32
		if v, err = u32(); err == nil {
			p.Ifindex = int32(*v)
		}
	case ndtpaAppProbes:
		p.AppProbes, err = u32()
	case ndtpaUcastProbes:
		p.UcastProbes, err = u32()
	case ndtpaMcastProbes:
		p.McastProbes, err = u32()
	case ndtpaMcastReprobes:
		p.McastReprobes, err = u32()
	case ndtpaQueueLenBytes:
		p.QueueLenBytes, err = u32()
	case ndtpaProxyQueueLen:
		p.ProxyQueueLen, err = u32()
	case ndtpaRetransTime:
		p.RetransTime, err = ms()
	case ndtpaBaseReachable:
		p.BaseReachableTime, err = ms()
	case ndtpaDelayProbeTime:
		p.DelayProbeTime, err = ms()
	case ndtpaGCStaleTime:
		p.GCStaleTime, err = ms()
	case ndtpaReachableTime:
		var v *time.Duration
		if v, err = ms(); err == nil {
			p.ReachableTime = *v
		}
	}
	return err
}
