package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// createFile, in the state directory, records a create under way: its
// configuration and the steps it set out to make. A create killed before
// it recorded the overlay leaves it; the next create finishes the job
// (what the dead one made counts as made by overlayd, which reset then
// removes), and a reset before that removes what it made.
const createFile = "creating.json"

// createRecord is what createFile holds.
type createRecord struct {
	Version int `json:"version"`
	// Config is the configuration the create was given.
	Config Config `json:"config"`
	// Intended are the steps it set out to make, in order (the last may
	// be half-made); Made those it made.
	Intended []string `json:"intended"`
	Made     []string `json:"made"`
	PID      int      `json:"pid"`
}

// created is what the record's steps may have made of the overlay.
func (r *createRecord) created() Creation {
	has := func(step string) bool { return slices.Contains(r.Intended, step) }
	return Creation{NetNS: has(stepOverlayNetNS), Bridge: has(stepBridge), Vxlan: has(stepVxlan), Address: has(stepGateway)}
}

// createJournal keeps createFile for one create (a steps.Journal): each
// step is recorded before it is made, atomically (a rename: a kill leaves
// the file whole); the file goes when the create ends, made or rolled
// back.
type createJournal struct {
	path string
	rec  createRecord
}

func (n *Node) newCreateJournal(cfg Config) *createJournal {
	return &createJournal{path: filepath.Join(n.stateDir, createFile), rec: createRecord{Version: stateVersion, Config: cfg, PID: os.Getpid()}}
}

func (j *createJournal) Intend(step string) error {
	j.rec.Intended = append(j.rec.Intended, step)
	return writeJSONAtomic(j.path, &j.rec, false)
}

func (j *createJournal) Made(step string) error {
	j.rec.Made = append(j.rec.Made, step)
	return writeJSONAtomic(j.path, &j.rec, false)
}

func (j *createJournal) Undone(string, error) {}

func (j *createJournal) End(error) { os.Remove(j.path) }

// loadCreateRecord reads a dead create's record (nil: none). It is read
// under the state lock, which a live create holds: one found is a dead
// create's.
func (n *Node) loadCreateRecord() (*createRecord, error) {
	var r createRecord
	if err := readJSON(filepath.Join(n.stateDir, createFile), &r); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &r, nil
}

// undoDeadCreate removes what a create killed before it recorded the
// overlay made (reset, with no overlay recorded): its vxlan, bridge or
// gateway address and namespace, as it set out to make them. Its tunnel is
// removeTunnel's.
func (n *Node) undoDeadCreate(rec *createRecord) error {
	ost := &overlayState{Overlay: Overlay{Config: rec.Config}, Created: rec.created()}
	if err := n.removeOverlay(ost); err != nil {
		return fmt.Errorf("overlay: reset: what a dead create made: %w", err)
	}
	n.log.Info("reset: removed what a create killed half-way made", "steps", rec.Intended, "pid", rec.PID)
	return os.Remove(filepath.Join(n.stateDir, createFile))
}
