package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/overlay"
)

// listFlag is a flag given once per value (--gateway once per family).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// perFamily is a flag's value for each address family, given once per
// family.
type perFamily struct {
	v4, v6 netip.Prefix // with a prefix length
	a4, a6 netip.Addr   // bare addresses, where bare is allowed
}

// splitFamilies parses the values of --name (vals), one per address family:
// each an address with prefix, or also a bare address if bare. A family
// given again replaces the earlier value, as a flag given twice does; an
// IPv6 zone and an IPv4-mapped IPv6 address are refused.
func splitFamilies(name string, vals []string, bare bool, example string) (perFamily, error) {
	var pf perFamily
	for _, s := range vals {
		var p netip.Prefix
		var a netip.Addr
		var err error
		if strings.Contains(s, "/") || !bare {
			p, err = netip.ParsePrefix(s)
			a = p.Addr()
		} else {
			a, err = netip.ParseAddr(s)
		}
		switch {
		case strings.Contains(s, "%"):
			return pf, fmt.Errorf("%w: --%s %q: an IPv6 zone is not allowed (the overlay is one link: give the address alone)", errUsage, name, s)
		case err != nil:
			return pf, fmt.Errorf("%w: --%s %q: want an IPv4 or IPv6 address with prefix, e.g. %s", errUsage, name, s, example)
		case a.Is4In6():
			return pf, fmt.Errorf("%w: --%s %q: an IPv4-mapped IPv6 address: give IPv4 addresses in their IPv4 form", errUsage, name, s)
		}
		if overlay.FamilyOf(a) == overlay.IPv4 {
			pf.v4, pf.a4 = p, netip.Addr{}
			if !p.IsValid() {
				pf.a4 = a
			}
		} else {
			pf.v6, pf.a6 = p, netip.Addr{}
			if !p.IsValid() {
				pf.a6 = a
			}
		}
	}
	return pf, nil
}
