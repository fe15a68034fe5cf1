package nft

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Table names a table: its family and name.
type Table struct {
	Family Family `json:"family"`
	Name   string `json:"name"`
}

// String returns "family name", as nft prints it.
func (t Table) String() string { return t.Family.String() + " " + t.Name }

func (t Table) lib() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamily(t.Family), Name: t.Name}
}

// Chain is a chain of a table. Base is nil for a regular chain (reached by
// jumps only).
type Chain struct {
	Table Table  `json:"table"`
	Name  string `json:"name"`
	Base  *Base  `json:"base,omitempty"`
}

// String returns "family table chain".
func (c Chain) String() string { return c.Table.String() + " " + c.Name }

// Base makes a chain a base chain: attached to a hook, seeing packets.
type Base struct {
	Type     ChainType `json:"type"`
	Hook     Hook      `json:"hook"`
	Priority int32     `json:"priority"`
	Policy   Policy    `json:"policy"`
	// Device is the device of a netdev-family chain. Chains does not read
	// it back (github.com/google/nftables does not decode NFTA_HOOK_DEV):
	// name netdev chains after their device.
	Device string `json:"device,omitempty"`
}

func (c Chain) lib() *nftables.Chain {
	ch := &nftables.Chain{Table: c.Table.lib(), Name: c.Name}
	if b := c.Base; b != nil {
		ch.Type = nftables.ChainType(b.Type)
		ch.Hooknum = nftables.ChainHookRef(nftables.ChainHook(b.Hook))
		ch.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(b.Priority))
		p := nftables.ChainPolicy(b.Policy)
		ch.Policy = &p
		ch.Device = b.Device
	}
	return ch
}

// Conn talks to nftables in one network namespace, pinned when it is
// dialled. Its methods may be called from several goroutines; each Batch is
// committed on its own socket.
type Conn struct {
	fd int // the namespace, held open
}

// Dial opens a connection to nftables in the network namespace whose file
// descriptor is netnsFD (duplicated; the caller keeps its own), or in the
// calling thread's namespace if netnsFD is negative.
func Dial(netnsFD int) (*Conn, error) {
	var fd int
	var err error
	if netnsFD >= 0 {
		fd, err = unix.FcntlInt(uintptr(netnsFD), unix.F_DUPFD_CLOEXEC, 0)
	} else {
		fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("nft: network namespace: %w", err)
	}
	return &Conn{fd: fd}, nil
}

// Close releases the connection.
func (c *Conn) Close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// lib returns a library connection whose socket is opened in c's namespace
// for each request and closed after it.
func (c *Conn) lib() (*nftables.Conn, error) {
	if c.fd < 0 {
		return nil, errors.New("nft: connection closed")
	}
	return nftables.New(nftables.WithNetNSFd(c.fd))
}

// recovered turns a panic in the library's decoding of the kernel's answer
// (data other tools wrote, not checked by the kernel) into an error. Call
// it deferred, with the named error result.
func recovered(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("nft: %s: the kernel's answer could not be decoded: %v", what, r)
	}
}

// TableExists reports whether t exists.
func (c *Conn) TableExists(t Table) (_ bool, err error) {
	defer recovered("list tables", &err)
	lc, err := c.lib()
	if err != nil {
		return false, err
	}
	tables, err := lc.ListTablesOfFamily(nftables.TableFamily(t.Family))
	if err != nil {
		return false, fmt.Errorf("nft: list %s tables: %w", t.Family, err)
	}
	for _, x := range tables {
		if x.Name == t.Name {
			return true, nil
		}
	}
	return false, nil
}

// Chains lists the chains of t (none if t does not exist).
func (c *Conn) Chains(t Table) ([]Chain, error) {
	all, err := c.ChainsOfFamily(t.Family)
	if err != nil {
		return nil, err
	}
	var out []Chain
	for _, ch := range all {
		if ch.Table == t {
			out = append(out, ch)
		}
	}
	return out, nil
}

// ChainsOfFamily lists the chains of every table of family f.
func (c *Conn) ChainsOfFamily(f Family) (_ []Chain, err error) {
	defer recovered("list chains", &err)
	lc, err := c.lib()
	if err != nil {
		return nil, err
	}
	all, err := lc.ListChainsOfTableFamily(nftables.TableFamily(f))
	if err != nil {
		return nil, fmt.Errorf("nft: list %s chains: %w", f, err)
	}
	var out []Chain
	for _, ch := range all {
		if ch.Table == nil {
			continue
		}
		x := Chain{Table: Table{Family: f, Name: ch.Table.Name}, Name: ch.Name}
		if ch.Hooknum != nil {
			x.Base = &Base{Type: ChainType(ch.Type), Hook: Hook(*ch.Hooknum), Device: ch.Device}
			if ch.Priority != nil {
				x.Base.Priority = int32(*ch.Priority)
			}
			if ch.Policy != nil {
				x.Base.Policy = Policy(*ch.Policy)
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// Chain returns the chain named name of t, or nil if there is none.
func (c *Conn) Chain(t Table, name string) (*Chain, error) {
	chains, err := c.Chains(t)
	if err != nil {
		return nil, err
	}
	for i := range chains {
		if chains[i].Name == name {
			return &chains[i], nil
		}
	}
	return nil, nil
}

// DeleteTable deletes t with everything in it; a table that does not
// exist is not an error. It refuses a table overlaynet does not own (see
// Table.Owned).
func (c *Conn) DeleteTable(t Table) error {
	if !t.Owned() {
		return fmt.Errorf("nft: refusing to delete table %s: not overlaynet's (its tables are named %s-*)", t, TablePrefix)
	}
	ok, err := c.TableExists(t)
	if err != nil || !ok {
		return err
	}
	b := c.Begin()
	b.DeleteTable(t)
	err = b.Commit()
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// Batch collects changes to commit as one nftables transaction.
type Batch struct {
	c   *Conn
	ops []func(*nftables.Conn) error
}

// Begin starts a batch. Nothing is sent before Commit.
func (c *Conn) Begin() *Batch { return &Batch{c: c} }

// Len returns the number of changes in b.
func (b *Batch) Len() int { return len(b.ops) }

// AddTable creates t if it does not exist (an existing one is kept as is).
func (b *Batch) AddTable(t Table) {
	b.ops = append(b.ops, func(c *nftables.Conn) error { c.AddTable(t.lib()); return nil })
}

// DeleteTable deletes t and everything in it; the commit fails with ENOENT
// if t does not exist, and at once if t is not overlaynet's (Table.Owned).
func (b *Batch) DeleteTable(t Table) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		if !t.Owned() {
			return fmt.Errorf("nft: refusing to delete table %s: not overlaynet's", t)
		}
		c.DelTable(t.lib())
		return nil
	})
}

// AddChain creates ch if it does not exist. An existing chain keeps its
// rules; an existing base chain with another hook or type fails the commit.
func (b *Batch) AddChain(ch Chain) {
	b.ops = append(b.ops, func(c *nftables.Conn) error { c.AddChain(ch.lib()); return nil })
}

// DeleteChain deletes ch, which must have no rules and no references.
func (b *Batch) DeleteChain(ch Chain) {
	b.ops = append(b.ops, func(c *nftables.Conn) error { c.DelChain(ch.lib()); return nil })
}

// Commit sends the batch as one transaction: every change is applied, or
// (on any error) none.
func (b *Batch) Commit() (err error) {
	defer recovered("commit", &err)
	if len(b.ops) == 0 {
		return nil
	}
	lc, err := b.c.lib()
	if err != nil {
		return err
	}
	for _, op := range b.ops {
		if err := op(lc); err != nil {
			return err // lc and what it queued are dropped unsent
		}
	}
	b.ops = nil
	if err := lc.Flush(); err != nil {
		return fmt.Errorf("nft: commit: %w", err)
	}
	return nil
}
