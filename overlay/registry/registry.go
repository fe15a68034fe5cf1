package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// Registry is the store shared by the nodes of an overlay: which MAC holds
// an overlay IP (arp/<ip>) and which VTEP holds a MAC (fdb/<mac>). Implementations are safe for concurrent use.
type Registry interface {
	// LookupMAC returns the MAC registered for ip, or an error wrapping
	// ErrNotFound.
	LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error)
	// LookupVTEP returns the VTEP registered for mac, or an error wrapping
	// ErrNotFound.
	LookupVTEP(ctx context.Context, mac ethaddr.MAC) (netip.Addr, error)
	// Register records ip → mac and mac → vtep. An IP already registered to
	// another MAC, or a MAC already registered at another VTEP, is refused
	// with an error wrapping ErrConflict and nothing is changed. Registering
	// the same values again succeeds.
	Register(ctx context.Context, r Record) error
	// Unregister removes ip → mac and mac → vtep, each only if it still
	// holds these values. Missing records are not an error.
	Unregister(ctx context.Context, r Record) error
	// List returns every complete record (an IP whose MAC has a VTEP), plus
	// IP → MAC records without a VTEP (VTEP invalid). Entries that are no
	// record are skipped (see RejectLister); the error says the store could
	// not be listed whole, and comes with the records that could be read.
	List(ctx context.Context) ([]Record, error)
	// Close releases the store.
	Close() error
}

// Record is one container in the registry.
type Record struct {
	// IP is the container's overlay address.
	IP netip.Addr `json:"ip"`
	// MAC is the container's MAC address.
	MAC ethaddr.MAC `json:"mac"`
	// VTEP is the underlay address of the node hosting the container.
	VTEP netip.Addr `json:"vtep,omitzero"`
}

// String formats r as "IP MAC VTEP".
func (r Record) String() string { return fmt.Sprintf("%s %s %s", r.IP, r.MAC, r.VTEP) }

// Validate checks that r can be stored: a valid IP and VTEP, each without
// an IPv6 zone and not an IPv4-mapped IPv6 address (a record's keys and
// values are the canonical text of its addresses, see CheckKeyIP), and a
// unicast non-zero MAC.
func (r Record) Validate() error {
	if err := CheckKeyIP(r.IP); err != nil {
		return err
	}
	if err := ValidateMAC(r.MAC); err != nil {
		return err
	}
	if !r.VTEP.IsValid() {
		return errors.New("registry: record has no VTEP")
	}
	if err := checkCanonical("VTEP", r.VTEP); err != nil {
		return err
	}
	return nil
}

// CheckKeyIP refuses an IP that cannot be a registry key: invalid, with an
// IPv6 zone (its text would carry the zone, "fe80::1%eth0", which could be
// anything, "/../x" included), or IPv4-mapped IPv6 (a second name of an
// IPv4 key). The text of a valid key, ip.String(), is then the canonical
// text of the address: no slash, no dot-dot, one name per address.
func CheckKeyIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return errors.New("registry: record has no IP")
	}
	return checkCanonical("IP", ip)
}

func checkCanonical(what string, ip netip.Addr) error {
	switch {
	case ip.Zone() != "":
		return fmt.Errorf("registry: %s %q has an IPv6 zone: not allowed in the registry", what, ip.String())
	case ip.Is4In6():
		return fmt.Errorf("registry: %s %s is IPv4-mapped IPv6: use the IPv4 form %s", what, ip, ip.Unmap())
	}
	return nil
}

// Registry errors.
var (
	// ErrNotFound is wrapped by lookups of a key that has no record.
	ErrNotFound = errors.New("registry: not found")
	// ErrConflict is wrapped by Register when the IP or MAC already belongs
	// to someone else.
	ErrConflict = errors.New("registry: conflict")
	// ErrUnavailable is wrapped by errors of requests the store did not
	// answer (unreachable, no leader, timed out): its state is unknown, as
	// opposed to ErrNotFound. Stores mark such errors with Unavailable.
	ErrUnavailable = errors.New("registry: store unavailable")
)

// Unavailable returns err marked as ErrUnavailable: errors.Is(err,
// ErrUnavailable) holds, its text is err's.
func Unavailable(err error) error { return marked{err, ErrUnavailable} }

// marked is an error that also matches a sentinel, without repeating the
// sentinel's text.
type marked struct {
	err error
	is  error
}

func (m marked) Error() string        { return m.err.Error() }
func (m marked) Unwrap() error        { return m.err }
func (m marked) Is(target error) bool { return target == m.is }

// ValidateMAC refuses MACs a container cannot use: all zeros, or multicast
// (the group bit set, broadcast included).
func ValidateMAC(m ethaddr.MAC) error {
	switch {
	case m.IsZero():
		return fmt.Errorf("registry: MAC %s is all zeros", m)
	case m.IsMulticast():
		return fmt.Errorf("registry: MAC %s is multicast (group bit set)", m)
	}
	return nil
}
