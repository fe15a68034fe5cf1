package wireguard

import (
	"net/netip"
	"time"
)

// Device is a WireGuard device as its provider reports it.
type Device struct {
	// Name is the device's interface name.
	Name string `json:"name"`
	// PrivateKey is the device's key (zero: none set). It never prints.
	PrivateKey PrivateKey `json:"-"`
	// PublicKey is PrivateKey's public key.
	PublicKey Key `json:"public_key"`
	// ListenPort is the UDP port the device receives on.
	ListenPort uint16 `json:"listen_port"`
	// Peers are the device's peers, in the provider's order.
	Peers []Peer `json:"peers"`
}

// Peer is one peer of a Device.
type Peer struct {
	// PublicKey identifies the peer.
	PublicKey Key `json:"public_key"`
	// Endpoint is where the peer is reached (its last authenticated
	// source, as WireGuard roams); zero when not known yet.
	Endpoint netip.AddrPort `json:"endpoint,omitzero"`
	// AllowedIPs are the inner addresses routed to the peer and accepted
	// from it.
	AllowedIPs []netip.Prefix `json:"allowed_ips"`
	// LastHandshake is the time of the last completed handshake (zero:
	// none yet).
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	// RxBytes and TxBytes count the bytes received from and sent to the
	// peer.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
	// Keepalive is the persistent keepalive interval (0: off).
	Keepalive time.Duration `json:"keepalive,omitzero"`
}

// Peer returns the peer of d with public key k, or nil.
func (d *Device) Peer(k Key) *Peer {
	for i := range d.Peers {
		if d.Peers[i].PublicKey == k {
			return &d.Peers[i]
		}
	}
	return nil
}

// Config is a change to a Device; unset fields are left as they are.
type Config struct {
	// PrivateKey, if set, replaces the device's key.
	PrivateKey *PrivateKey
	// ListenPort, if non-zero, sets the UDP port.
	ListenPort uint16
	// ReplacePeers removes every peer not listed in Peers.
	ReplacePeers bool
	// Peers are added, changed or removed, in order.
	Peers []PeerConfig
}

// IsEmpty reports whether c changes nothing.
func (c Config) IsEmpty() bool {
	return c.PrivateKey == nil && c.ListenPort == 0 && !c.ReplacePeers && len(c.Peers) == 0
}

// PeerConfig is a change to one peer.
type PeerConfig struct {
	// PublicKey identifies the peer.
	PublicKey Key
	// Remove removes the peer (the other fields are ignored).
	Remove bool
	// UpdateOnly changes the peer only if it exists.
	UpdateOnly bool
	// Endpoint, if valid, sets where the peer is reached.
	Endpoint netip.AddrPort
	// ReplaceAllowedIPs replaces the peer's allowed IPs by AllowedIPs;
	// otherwise AllowedIPs are added to them.
	ReplaceAllowedIPs bool
	// AllowedIPs are the inner addresses of the peer.
	AllowedIPs []netip.Prefix
	// Keepalive, if positive, sets the persistent keepalive interval
	// (whole seconds; setting it on a device that is up sends a keepalive
	// at once, which starts a handshake).
	Keepalive time.Duration
}

// Client reads and configures the WireGuard devices of one provider.
type Client interface {
	// Device returns the device named name.
	Device(name string) (*Device, error)
	// Configure applies c to the device named name.
	Configure(name string, c Config) error
	// Close releases the client.
	Close() error
}
