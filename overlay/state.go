package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/egress"
)

// State directory layout.
const (
	overlayStateFile = "overlay.json"
	endpointsDir     = "endpoints"
	stateVersion     = 1
)

// overlayState is what StateDir/overlay.json holds: the overlay and which of
// its parts Create made (Reset removes only those).
type overlayState struct {
	Version int      `json:"version"`
	Overlay Overlay  `json:"overlay"`
	Created Creation `json:"created"`
	// Egress is what egress.Setup made and changed (nil without egress).
	Egress *egress.State `json:"egress,omitempty"`
}

// Creation records which parts of the overlay this package created (and
// therefore Reset deletes). Parts that existed before are left alone.
type Creation struct {
	// NetNS is true if Create made the overlay namespace.
	NetNS bool `json:"netns"`
	// Bridge is true if Create made the bridge.
	Bridge bool `json:"bridge"`
	// Vxlan is true if Create made the vxlan device.
	Vxlan bool `json:"vxlan"`
	// Address is true if Create put the gateway address on the bridge,
	// Address6 if it put the IPv6 gateway address there.
	Address  bool `json:"address"`
	Address6 bool `json:"address6,omitempty"`
}

// endpointState is what StateDir/endpoints/<name>.json holds.
type endpointState struct {
	Version  int      `json:"version"`
	Endpoint Endpoint `json:"endpoint"`
	// CreatedNetNS is true if Attach made the container namespace; Detach
	// and Reset then delete it, otherwise they only remove the veth pair.
	CreatedNetNS bool `json:"created_netns"`
	// Registered is true if Attach created the registry records (rather
	// than finding identical ones).
	Registered bool `json:"registered"`
}

func (n *Node) overlayStatePath() string { return filepath.Join(n.stateDir, overlayStateFile) }

func (n *Node) endpointStatePath(name string) string {
	return filepath.Join(n.stateDir, endpointsDir, name+".json")
}

// loadOverlayState reads overlay.json; ErrNotCreated if there is none.
func (n *Node) loadOverlayState() (*overlayState, error) {
	var st overlayState
	if err := readJSON(n.overlayStatePath(), &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotCreated
		}
		return nil, err
	}
	return &st, nil
}

func (n *Node) saveOverlayState(st *overlayState) error {
	st.Version = stateVersion
	return writeJSON(n.overlayStatePath(), st)
}

func (n *Node) loadEndpoint(name string) (*endpointState, error) {
	var st endpointState
	if err := readJSON(n.endpointStatePath(name), &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownEndpoint, name)
		}
		return nil, err
	}
	return &st, nil
}

func (n *Node) saveEndpoint(st *endpointState) error {
	st.Version = stateVersion
	return writeJSON(n.endpointStatePath(st.Endpoint.Name), st)
}

// removeOverlayState removes overlay.json; a missing one is not an error.
func (n *Node) removeOverlayState() error {
	err := os.Remove(n.overlayStatePath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("overlay: state: %w", err)
	}
	return nil
}

func (n *Node) removeEndpointState(name string) error {
	err := os.Remove(n.endpointStatePath(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("overlay: state: %w", err)
	}
	return nil
}

// listEndpoints returns every endpoint recorded in the state directory,
// sorted by name.
func (n *Node) listEndpoints() ([]*endpointState, error) {
	ents, err := os.ReadDir(filepath.Join(n.stateDir, endpointsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: state: %w", err)
	}
	var out []*endpointState
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := n.loadEndpoint(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint.Name < out[j].Endpoint.Name })
	return out, errors.Join(errs...)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("overlay: state: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("overlay: state: %s is malformed: %w", path, err)
	}
	return nil
}

// writeJSON writes v to path atomically and durably: a temporary file in
// the same directory, fsynced, then renamed over path, and the directory
// fsynced.
func writeJSON(path string, v any) error { return writeJSONAtomic(path, v, true) }

// writeJSONAtomic is writeJSON, without the fsyncs unless durable: still
// atomic, which is all that a process killed needs (the page cache
// outlives it); only a power loss may then lose the write.
func writeJSONAtomic(path string, v any, durable bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("overlay: state: %w", err)
	}
	b = append(b, '\n')
	return writeFileAtomic(path, b, durable)
}

func writeFileAtomic(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("overlay: state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("overlay: state: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil && durable {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("overlay: state: %w", werr)
	}
	if durable {
		syncDir(dir)
	}
	return nil
}

// syncDir fsyncs a directory so a new entry survives a crash (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
