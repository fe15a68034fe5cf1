package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// intentsDir holds, in the state directory, one record of intent per
// endpoint operation under way, or killed: intents/<name>.json. An
// operation writes it (atomically, fsynced) before each of its steps and
// removes it once it is over; a record found by whoever holds the state
// lock is a dead operation's, to be finished or undone (see recover.go).
const intentsDir = "intents"

// Operation names an operation of the node that keeps a record of intent.
type Operation string

// Operations with a record of intent.
const (
	// OpAttach is Attach; a dead one is undone.
	OpAttach Operation = "attach"
	// OpDetach is Detach; a dead one is finished.
	OpDetach Operation = "detach"
)

func (o Operation) String() string { return string(o) }

// intent is what intents/<name>.json holds: the operation, the steps it
// intended (in order; Made once made), and what undoing them needs.
type intent struct {
	Version int       `json:"version"`
	Op      Operation `json:"op"`
	// PID is the process that wrote it, Started when the operation began.
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Endpoint is the endpoint as far as the operation knew it (its Name
	// always; its IP and MAC once allocated).
	Endpoint Endpoint `json:"endpoint"`
	// OverlayNetNS is the overlay namespace holding the host veth.
	OverlayNetNS string       `json:"overlay_netns"`
	Steps        []intentStep `json:"steps"`
	// NetNSID identifies the container namespace Attach made (its nsfs
	// device and inode), once made: only that namespace is deleted.
	NetNSID *netnsID `json:"netns_id,omitempty"`
	// IPExisted, IP6Existed and MACExisted say the registry held the
	// endpoint's IPv4, IPv6 and MAC records before Attach registered them:
	// those are not removed.
	IPExisted  bool `json:"ip_existed,omitempty"`
	IP6Existed bool `json:"ip6_existed,omitempty"`
	MACExisted bool `json:"mac_existed,omitempty"`
}

// own returns the parts of the endpoint's records that its attach made:
// each record without its IP if the IP's record existed before, without
// its VTEP if the MAC's did.
func (in *intent) own() []registry.Record {
	recs := in.Endpoint.Records()
	for i := range recs {
		existed := in.IPExisted
		if recs[i].IP.Is6() {
			existed = in.IP6Existed
		}
		if existed {
			recs[i].IP = netip.Addr{}
		}
		if in.MACExisted {
			recs[i].VTEP = netip.Addr{}
		}
	}
	return recs
}

// intentStep is one step of an intent.
type intentStep struct {
	Name string `json:"name"`
	Made bool   `json:"made"`
}

// netnsID identifies a network namespace: the device and inode of its
// nsfs file.
type netnsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

// intended reports whether the operation intended step.
func (in *intent) intended(step string) bool {
	return slices.ContainsFunc(in.Steps, func(s intentStep) bool { return s.Name == step })
}

func (n *Node) intentPath(name string) string {
	return filepath.Join(n.stateDir, intentsDir, name+".json")
}

// loadIntent reads name's record of intent; nil, nil if there is none.
func (n *Node) loadIntent(name string) (*intent, error) {
	var in intent
	if err := readJSON(n.intentPath(name), &in); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &in, nil
}

// removeIntent removes name's record of intent (and fsyncs the directory:
// a finished operation must not come back as a dead one).
func (n *Node) removeIntent(name string) error {
	path := n.intentPath(name)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("overlay: state: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// listIntents returns the names with a record of intent, sorted.
func (n *Node) listIntents() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(n.stateDir, intentsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: state: %w", err)
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// journal keeps an operation's record of intent (a steps.Journal): written
// before each step, and again once a step made something recovery must
// know of (the endpoint's address, the namespace's identity); removed when
// the operation ends, unless a step could not be undone (the record then
// stays for whoever comes next).
//
// Every write is atomic (a rename): a process killed at any point leaves
// the record as it was before or after the write, which is what recovery
// from a kill needs (the page cache outlives the process). The first write
// is also durable (fsynced, with its directory), as is the removal, and the
// writes before durableSteps. A power loss may lose the others: it takes
// the kernel's part of the operation with it (veth, addresses, routes,
// rules, a namespace bound in /run), and what outlives it (an allocation,
// store records) no endpoint owns unless the endpoint's state was written:
// Sweep removes it.
type journal struct {
	n   *Node
	rec *intent
	// durableSteps are the steps whose record is fsynced before them.
	durableSteps map[string]bool
	// dirty says rec changed since it was written, durable that the change
	// must be fsynced; written that it was written at all; undoFailed that
	// a rollback step failed.
	dirty, durable, written, undoFailed bool
}

var _ steps.Journal = (*journal)(nil)

// newJournal starts the record of op on endpoint e (its Name at least);
// the records of durableSteps are fsynced before them.
func (n *Node) newJournal(op Operation, e Endpoint, overlayNetNS string, durableSteps ...string) *journal {
	j := &journal{n: n, rec: &intent{Version: stateVersion, Op: op, PID: os.Getpid(), Started: time.Now().UTC(),
		Endpoint: e, OverlayNetNS: overlayNetNS}, durableSteps: map[string]bool{}}
	for _, s := range durableSteps {
		j.durableSteps[s] = true
	}
	return j
}

// update changes the record with fn; it is written before the next step
// or once the current one is made, durably if durable.
func (j *journal) update(durable bool, fn func(*intent)) {
	fn(j.rec)
	j.dirty = true
	j.durable = j.durable || durable
}

func (j *journal) save(durable bool) error {
	durable = durable || j.durable || !j.written
	if err := writeJSONAtomic(j.n.intentPath(j.rec.Endpoint.Name), j.rec, durable); err != nil {
		return err
	}
	j.dirty, j.durable, j.written = false, false, true
	return nil
}

// Intend records step before it is made.
func (j *journal) Intend(step string) error {
	j.rec.Steps = append(j.rec.Steps, intentStep{Name: step})
	return j.save(j.durableSteps[step])
}

// Made marks step made (for Status: the undo does not depend on it).
func (j *journal) Made(step string) error {
	for i := range j.rec.Steps {
		if j.rec.Steps[i].Name == step {
			j.rec.Steps[i].Made = true
		}
	}
	return j.save(false)
}

// Undone notes a failed undo: the record then outlives the operation.
func (j *journal) Undone(step string, err error) {
	if err != nil {
		j.undoFailed = true
	}
}

// End removes the record, unless a step could not be undone.
func (j *journal) End(err error) {
	if !j.written {
		return
	}
	if err != nil && j.undoFailed {
		j.n.log.Warn("rollback incomplete: the record of intent stays for the next attach, detach or overlayd run to undo",
			"endpoint", j.rec.Endpoint.Name, "op", j.rec.Op, "err", err)
		return
	}
	if rerr := j.n.removeIntent(j.rec.Endpoint.Name); rerr != nil {
		j.n.log.Error("record of intent not removed", "endpoint", j.rec.Endpoint.Name, "err", rerr)
	}
}
