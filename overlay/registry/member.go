package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// Member is a node's own record in an encrypted overlay (Network.Encrypt):
// the tunnel address it holds, which is its VTEP (claimed in the store, so
// that no two nodes hold one), who holds it, and how the other nodes reach
// it through WireGuard. The stores keep it as JSON under members/<vtep>.
type Member struct {
	// VTEP is the node's tunnel address: the VTEP of its records, inside
	// the overlay's tunnel subnet.
	VTEP netip.Addr `json:"vtep"`
	// Owner identifies the node that holds VTEP (random, made once per
	// node and kept in its state directory): only it changes or removes
	// the record.
	Owner string `json:"owner"`
	// Endpoint is the node's underlay address and WireGuard port.
	Endpoint netip.AddrPort `json:"endpoint"`
	// PublicKey is the node's WireGuard public key (base64, as wg prints
	// it).
	PublicKey string `json:"public_key"`
	// NextKey, during a rekey, is the public key the node will switch to:
	// peers accept handshakes from it before the switch.
	NextKey string `json:"next_key,omitempty"`
	// Hostname is the node's host name, for people.
	Hostname string `json:"hostname,omitempty"`
}

// MaxMemberLen bounds a member record's value in a store; a longer value
// is no record (ReasonOversized).
const MaxMemberLen = 512

// maxOwnerLen bounds Member.Owner.
const maxOwnerLen = 64

// String formats m for logs: "VTEP at ENDPOINT key KEY".
func (m Member) String() string {
	return fmt.Sprintf("%s at %s key %s", m.VTEP, m.Endpoint, m.PublicKey)
}

// Validate checks that m can be stored: a canonical VTEP and endpoint
// address (as Record.Validate), a port, an owner of 1..64 letters, digits,
// '.', '_' or '-', a public key that is the base64 of 32 bytes, and a next
// key that is empty or such a key, other than the current one.
func (m Member) Validate() error {
	if !m.VTEP.IsValid() {
		return errors.New("registry: member has no VTEP")
	}
	if err := checkCanonical("VTEP", m.VTEP); err != nil {
		return err
	}
	if err := ValidateOwner(m.Owner); err != nil {
		return err
	}
	if !m.Endpoint.Addr().IsValid() || m.Endpoint.Port() == 0 {
		return fmt.Errorf("registry: member %s: endpoint %q is no address and port", m.VTEP, m.Endpoint.String())
	}
	if err := checkCanonical("endpoint", m.Endpoint.Addr()); err != nil {
		return err
	}
	if err := ValidateKey(m.PublicKey); err != nil {
		return fmt.Errorf("registry: member %s: public key: %w", m.VTEP, err)
	}
	if m.NextKey != "" {
		if err := ValidateKey(m.NextKey); err != nil {
			return fmt.Errorf("registry: member %s: next key: %w", m.VTEP, err)
		}
		if m.NextKey == m.PublicKey {
			return fmt.Errorf("registry: member %s: next key is the current key", m.VTEP)
		}
	}
	if len(m.Hostname) > 253 {
		return fmt.Errorf("registry: member %s: host name of %d bytes", m.VTEP, len(m.Hostname))
	}
	return nil
}

// ValidateOwner checks a member's owner: 1..64 letters, digits, '.', '_'
// or '-'.
func ValidateOwner(owner string) error {
	if owner == "" || len(owner) > maxOwnerLen {
		return fmt.Errorf("registry: member owner of %d bytes (want 1..%d)", len(owner), maxOwnerLen)
	}
	for _, c := range owner {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("registry: member owner holds a character other than a letter, a digit, '.', '_' or '-'")
		}
	}
	return nil
}

// ValidateKey checks a WireGuard key's text: the standard base64 of 32
// bytes.
func ValidateKey(k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != 32 || len(k) != 44 {
		return errors.New("not the base64 of 32 bytes")
	}
	return nil
}

// MarshalMember encodes m as a store keeps it: one line of JSON.
func MarshalMember(m Member) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	return string(b), nil
}

// ParseMember decodes the value of the store's members/<vtep>: a Member
// whose VTEP is vtep (the key), valid, and no longer than MaxMemberLen. A
// value that is not one is a Rejected named by the key.
func ParseMember(vtep netip.Addr, value []byte) (Member, error) {
	key := memberKey(vtep)
	if len(value) > MaxMemberLen {
		return Member{}, Rejected{Key: key, Reason: ReasonOversized}
	}
	var m Member
	if err := json.Unmarshal(value, &m); err != nil || m.Validate() != nil || m.VTEP != vtep {
		return Member{}, Rejected{Key: key, Reason: ReasonMalformed}
	}
	return m, nil
}

// MemberKey is the key of vtep's member record as the stores lay it out
// ("members/169.254.34.2").
func MemberKey(vtep netip.Addr) string { return memberKey(vtep) }

func memberKey(vtep netip.Addr) string { return "members/" + vtep.String() }
