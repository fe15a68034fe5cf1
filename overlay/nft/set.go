package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// KeyType is the type of a set's keys.
type KeyType uint8

// Key types.
const (
	KeyIPv4   KeyType = iota + 1 // ipv4_addr, 4 bytes
	KeyIPv6                      // ipv6_addr, 16 bytes
	KeyEther                     // ether_addr, 6 bytes
	KeyIfName                    // ifname, 16 bytes
)

// String returns the type's nft name.
func (k KeyType) String() string {
	switch k {
	case KeyIPv4:
		return "ipv4_addr"
	case KeyIPv6:
		return "ipv6_addr"
	case KeyEther:
		return "ether_addr"
	case KeyIfName:
		return "ifname"
	}
	return fmt.Sprintf("keytype(%d)", uint8(k))
}

// Len returns the key length in bytes.
func (k KeyType) Len() int {
	switch k {
	case KeyIPv4:
		return 4
	case KeyIPv6:
		return 16
	case KeyEther:
		return 6
	case KeyIfName:
		return 16
	}
	return 0
}

func (k KeyType) lib() (nftables.SetDatatype, error) {
	switch k {
	case KeyIPv4:
		return nftables.TypeIPAddr, nil
	case KeyIPv6:
		return nftables.TypeIP6Addr, nil
	case KeyEther:
		return nftables.TypeEtherAddr, nil
	case KeyIfName:
		return nftables.TypeIFName, nil
	}
	return nftables.TypeInvalid, fmt.Errorf("nft: unknown set key type %d", uint8(k))
}

// Set is a named set of a table.
type Set struct {
	Table Table   `json:"table"`
	Name  string  `json:"name"`
	Key   KeyType `json:"key"`
	// Counter gives every element a counter, read back by Elements.
	Counter bool `json:"counter,omitempty"`
}

// String returns "family table set".
func (s Set) String() string { return s.Table.String() + " " + s.Name }

func (s Set) lib() (*nftables.Set, error) {
	kt, err := s.Key.lib()
	if err != nil {
		return nil, err
	}
	return &nftables.Set{Table: s.Table.lib(), Name: s.Name, KeyType: kt, Counter: s.Counter}, nil
}

// Element is a set element read back from the kernel.
type Element struct {
	Key     []byte `json:"key"`
	Packets uint64 `json:"packets,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
}

// AddrKey returns the key of an address in a KeyIPv4 or KeyIPv6 set.
func AddrKey(a netip.Addr) []byte { return a.AsSlice() }

// IfNameKey returns the key of an interface name in a KeyIfName set: the
// name NUL-padded to 16 bytes, as the kernel compares it.
func IfNameKey(name string) []byte { return ifname(name) }

func (s Set) elems(keys [][]byte) ([]nftables.SetElement, error) {
	out := make([]nftables.SetElement, len(keys))
	for i, k := range keys {
		if len(k) != s.Key.Len() {
			return nil, fmt.Errorf("nft: set %s: key of %d bytes, want %d (%s)", s, len(k), s.Key.Len(), s.Key)
		}
		out[i].Key = k
	}
	return out, nil
}

// AddSet creates s with keys as its first elements if it does not exist;
// an existing set keeps its elements (keys are added to them).
func (b *Batch) AddSet(s Set, keys [][]byte) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		ls, err := s.lib()
		if err != nil {
			return err
		}
		el, err := s.elems(keys)
		if err != nil {
			return err
		}
		if err := c.AddSet(ls, el); err != nil {
			return fmt.Errorf("nft: set %s: %w", s, err)
		}
		return nil
	})
}

// DeleteSet deletes s, which no rule may reference any more.
func (b *Batch) DeleteSet(s Set) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		ls, err := s.lib()
		if err != nil {
			return err
		}
		c.DelSet(ls)
		return nil
	})
}

// FlushSet removes every element of s, in place: with AddElements in the
// same batch, rules referring to s see the old elements or the new ones,
// never an empty set.
func (b *Batch) FlushSet(s Set) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		ls, err := s.lib()
		if err != nil {
			return err
		}
		c.FlushSet(ls)
		return nil
	})
}

// AddElements adds keys to the existing set s, in place (rules referring
// to it see the change atomically; counters of other elements run on). A
// key already present is not an error.
func (b *Batch) AddElements(s Set, keys [][]byte) {
	b.elements(s, keys, (*nftables.Conn).SetAddElements)
}

// DeleteElements removes keys from s, in place. A key that is not in the
// set fails the commit (ENOENT).
func (b *Batch) DeleteElements(s Set, keys [][]byte) {
	b.elements(s, keys, (*nftables.Conn).SetDeleteElements)
}

// elements queues op (add or delete) of keys in s.
func (b *Batch) elements(s Set, keys [][]byte, op func(*nftables.Conn, *nftables.Set, []nftables.SetElement) error) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		ls, err := s.lib()
		if err != nil {
			return err
		}
		el, err := s.elems(keys)
		if err != nil {
			return err
		}
		if err := op(c, ls, el); err != nil {
			return fmt.Errorf("nft: set %s: %w", s, err)
		}
		return nil
	})
}

// Elements lists the elements of s with their counters.
func (c *Conn) Elements(s Set) (_ []Element, err error) {
	defer recovered("list set elements", &err)
	lc, err := c.lib()
	if err != nil {
		return nil, err
	}
	ls, err := s.lib()
	if err != nil {
		return nil, err
	}
	els, err := lc.GetSetElements(ls)
	if err != nil {
		return nil, fmt.Errorf("nft: elements of set %s: %w", s, err)
	}
	out := make([]Element, 0, len(els))
	for _, e := range els {
		x := Element{Key: e.Key}
		if e.Counter != nil {
			x.Packets, x.Bytes = e.Counter.Packets, e.Counter.Bytes
		}
		out = append(out, x)
	}
	return out, nil
}
