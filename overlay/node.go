package overlay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// DefaultStateDir is where a node keeps its state when NodeOptions.StateDir
// is empty.
const DefaultStateDir = "/var/lib/overlayd"

// NodeOptions say where a node keeps things; several simulated nodes on one
// machine differ here.
type NodeOptions struct {
	// NetNSDir is the directory of named network namespaces (default
	// rtnl.DefaultNetNSDir).
	NetNSDir string
	// StateDir is where Create records the overlay and Attach the endpoints
	// (default DefaultStateDir).
	StateDir string
	// Registry is the shared store; required by Attach, Detach and Reset.
	Registry registry.Registry
	// Logger receives progress and clean-up reports; nil discards them.
	Logger *slog.Logger
	// BlockBits is the prefix length of the address blocks this node
	// claims for allocation (0: ipam.DefaultBlockBits). Every node of an
	// overlay must use the same.
	BlockBits int
	// WireGuardCommand is the command line of an encrypted overlay's
	// userspace WireGuard device process, before its flags (empty: this
	// program's `wireguard` command, os.Executable()).
	WireGuardCommand []string
}

// Node sets up and tears down one node's overlay. Its methods must be called
// from the node's "host" network namespace. A Node serialises its own
// operations, and Attach, Detach and Reset hold a lock file in the state
// directory, so that separate processes on one node do not interleave.
type Node struct {
	netnsDir string
	stateDir string
	reg      registry.Registry
	log      *slog.Logger
	mu       sync.Mutex

	// stepHook, when set (by tests), is called after each step of the
	// node's operations (create, attach); an error makes the operation
	// fail there and roll back.
	stepHook steps.Hook
	// dialer, when set (by tests), replaces dial: a fake kernel per
	// namespace name.
	dialer func(name string) (*rtnl.Conn, error)
	// blockBits is NodeOptions.BlockBits.
	blockBits int
	// wgCmd is NodeOptions.WireGuardCommand.
	wgCmd []string
}

// NewNode returns a Node using opts, with defaults filled in.
func NewNode(opts NodeOptions) *Node {
	n := &Node{netnsDir: opts.NetNSDir, stateDir: opts.StateDir, reg: opts.Registry, log: opts.Logger, blockBits: opts.BlockBits,
		wgCmd: opts.WireGuardCommand}
	if n.netnsDir == "" {
		n.netnsDir = rtnl.DefaultNetNSDir
	}
	if n.stateDir == "" {
		n.stateDir = DefaultStateDir
	}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return n
}

// NetNSDir returns the directory of named namespaces the node uses.
func (n *Node) NetNSDir() string { return n.netnsDir }

// StateDir returns the node's state directory.
func (n *Node) StateDir() string { return n.stateDir }

// Errors of a Node's operations.
var (
	// ErrNotCreated is returned by Attach, Detach and Status before Create
	// has recorded an overlay in the state directory.
	ErrNotCreated = errors.New("overlay: no overlay on this node: run create first")
	// ErrExists is wrapped by Attach when the endpoint name is taken.
	ErrExists = errors.New("overlay: endpoint already exists")
	// ErrUnknownEndpoint is wrapped by Detach for a name not attached.
	ErrUnknownEndpoint = errors.New("overlay: no such endpoint")
	// ErrNoRegistry is returned by operations that need a Registry when
	// NodeOptions.Registry is nil.
	ErrNoRegistry = errors.New("overlay: no registry configured")
	// ErrNetNSNotFound is wrapped by Attach (and CheckNetNS) when the
	// container's network namespace path does not exist or is not a
	// network namespace.
	ErrNetNSNotFound = errors.New("overlay: no such container network namespace")
	// ErrOwnNetNS is wrapped by Attach (and CheckNetNS) when the
	// container's network namespace is the caller's own, the node's.
	ErrOwnNetNS = errors.New("overlay: not a container's network namespace")
	// ErrInterfaceExists is wrapped by Attach when the container already
	// has an interface of the requested name.
	ErrInterfaceExists = errors.New("overlay: interface name taken in the container")
)

// runner returns the step runner of one operation of this node (op:
// "create", "attach"), logging to log, with j (if not nil) keeping its
// record of intent.
func (n *Node) runner(ctx context.Context, op string, j steps.Journal, log *slog.Logger) *steps.Runner {
	return steps.New(ctx, steps.Options{Op: "overlay: " + op, Log: log, Hook: n.stepHook, Journal: j})
}

// Overlay returns the overlay recorded in the state directory by Create
// (without asking the kernel), or ErrNotCreated.
func (n *Node) Overlay() (*Overlay, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, err := n.loadOverlayState()
	if err != nil {
		return nil, err
	}
	return &st.Overlay, nil
}

// EndpointsChanged returns a value that changes whenever an endpoint is
// recorded in or removed from the state directory (the modification time of
// its endpoints directory; zero while there is none), so that a caller
// polling for new endpoints reads them only when the set changed.
func (n *Node) EndpointsChanged() time.Time {
	fi, err := os.Stat(filepath.Join(n.stateDir, endpointsDir))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Endpoints returns the endpoints recorded in the state directory, sorted by
// name (without asking the kernel).
func (n *Node) Endpoints() ([]Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sts, err := n.listEndpoints()
	eps := make([]Endpoint, 0, len(sts))
	for _, st := range sts {
		eps = append(eps, st.Endpoint)
	}
	return eps, err
}
