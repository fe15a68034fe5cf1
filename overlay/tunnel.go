package overlay

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/internal/links"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Tunnel is the WireGuard side of a node of an encrypted overlay, as
// Create made it (and STATE_DIR/wireguard/tunnel.json records it, from its
// first step on).
type Tunnel struct {
	// Provider runs the device: the kernel or a userspace process.
	Provider wireguard.Provider `json:"provider,omitzero"`
	// Device is the WireGuard device's name, in the node's namespace.
	Device string `json:"device"`
	// Address is the node's tunnel address (its VTEP) with the tunnel
	// subnet's prefix length, on Device.
	Address netip.Prefix `json:"address,omitzero"`
	// Endpoint is the node's underlay address and WireGuard port, as
	// published.
	Endpoint netip.AddrPort `json:"endpoint,omitzero"`
	// Owner is the node's identity in the store's member records.
	Owner string `json:"owner"`
	// PublicKey is the node's current public key.
	PublicKey wireguard.Key `json:"public_key,omitzero"`
	// MTU is the device's: the underlay's less WireGuard's overhead.
	MTU uint32 `json:"mtu"`
	// LinkCreated is true when Create made the kernel device (Reset
	// deletes only that).
	LinkCreated bool `json:"link_created,omitempty"`
}

// Files of the node's WireGuard directory, STATE_DIR/wireguard.
const (
	wireguardDir   = "wireguard"
	tunnelFile     = "tunnel.json"
	privateKeyFile = "private.key"
	nextKeyFile    = "next.key"
	ownerFile      = "owner"
)

func (n *Node) wireguardDir() string { return filepath.Join(n.stateDir, wireguardDir) }

func (n *Node) wgPath(name string) string { return filepath.Join(n.wireguardDir(), name) }

// loadTunnel reads STATE_DIR/wireguard/tunnel.json; nil when there is none.
func (n *Node) loadTunnel() (*Tunnel, error) {
	var t Tunnel
	if err := readJSON(n.wgPath(tunnelFile), &t); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return &t, nil
}

// saveTunnel records t in STATE_DIR/wireguard/tunnel.json (atomic, durable).
func (n *Node) saveTunnel(t *Tunnel) error {
	if err := os.MkdirAll(n.wireguardDir(), 0o700); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	return writeJSON(n.wgPath(tunnelFile), t)
}

// nodeOwner returns the node's identity in member records, made once
// (16 random bytes, hex) and kept in STATE_DIR/wireguard/owner.
func (n *Node) nodeOwner() (owner string, made bool, err error) {
	path := n.wgPath(ownerFile)
	if b, err := os.ReadFile(path); err == nil {
		if o := strings.TrimSpace(string(b)); o != "" {
			return o, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("overlay: node identity: %w", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, fmt.Errorf("overlay: node identity: %w", err)
	}
	owner = hex.EncodeToString(b[:])
	if err := os.MkdirAll(n.wireguardDir(), 0o700); err != nil {
		return "", false, fmt.Errorf("overlay: %w", err)
	}
	if err := writeFileAtomic(path, []byte(owner+"\n"), true); err != nil {
		return "", false, err
	}
	return owner, true, nil
}

// nodeKey returns the node's private key, made once (crypto/rand) and
// kept in STATE_DIR/wireguard/private.key (mode 0600); made reports a key
// made by this call.
func (n *Node) nodeKey() (k wireguard.PrivateKey, made bool, err error) {
	path := n.wgPath(privateKeyFile)
	k, err = wireguard.ReadKeyFile(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = wireguard.GenerateKey(); err != nil {
		return k, false, err
	}
	if err := wireguard.WriteKeyFile(path, k); err != nil {
		return k, false, err
	}
	return k, true, nil
}

// wgClient returns the client of t's provider, in the calling namespace.
func wgClient(p wireguard.Provider) (wireguard.Client, error) {
	if p == wireguard.ProviderKernel {
		return wireguard.DialKernel()
	}
	return &wireguard.UAPI{}, nil
}

// wgCommand is the device process's command line: NodeOptions'
// WireGuardCommand, else this program's `wireguard` command.
func (n *Node) wgCommand() ([]string, error) {
	if len(n.wgCmd) > 0 {
		return n.wgCmd, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("overlay: the WireGuard device process is this program: %w", err)
	}
	return []string{exe, "wireguard"}, nil
}

// deviceState says how a tunnel device was found by ensureDevice.
type deviceState struct {
	// made: the device was made now (a process started, a link created);
	// its peers are none.
	made bool
	// pid is the userspace device process (0 for the kernel).
	pid int
	// exited is closed when a process this call started exits (nil
	// otherwise).
	exited <-chan struct{}
}

// ensureDevice brings t's device up as recorded, in the calling ("host")
// namespace of host: running (the userspace process started if none holds
// its lock; the kernel link made if missing), with key and port (set only
// if they differ: setting them expires every session), MTU, address and
// up. A device already so is not touched.
func (n *Node) ensureDevice(host *rtnl.Conn, t *Tunnel, key wireguard.PrivateKey, port uint16) (deviceState, error) {
	var ds deviceState
	switch t.Provider {
	case wireguard.ProviderUserspace:
		pid, running, err := wireguard.ProcessRunning(n.wireguardDir())
		if err != nil {
			return ds, err
		}
		ds.pid = pid
		if !running {
			if err := checkUAPIFree(t.Device); err != nil {
				return ds, err
			}
			cmd, err := n.wgCommand()
			if err != nil {
				return ds, err
			}
			p, err := wireguard.StartProcess(wireguard.ProcessOptions{Command: cmd, Name: t.Device, MTU: t.MTU, Dir: n.wireguardDir()})
			if err != nil {
				return ds, err
			}
			ds = deviceState{made: true, pid: p.Pid, exited: p.Exited}
			n.log.Info("WireGuard device process started", "device", t.Device, "pid", p.Pid)
		}
	case wireguard.ProviderKernel:
		l, err := links.Find(host, t.Device)
		if err != nil {
			return ds, err
		}
		if l == nil {
			if _, err := wireguard.Choose(host, t.Device, t.MTU, wireguard.ProviderKernel); err != nil {
				return ds, err
			}
			ds.made = true
		}
	default:
		return ds, fmt.Errorf("overlay: WireGuard device %s has no provider recorded", t.Device)
	}
	if err := configureKey(t, key, port); err != nil {
		return ds, err
	}
	return ds, linkUp(host, t)
}

// configureKey gives t's device key and port unless it has them.
func configureKey(t *Tunnel, key wireguard.PrivateKey, port uint16) error {
	c, err := wgClient(t.Provider)
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.Device(t.Device)
	if err != nil {
		return err
	}
	var cfg wireguard.Config
	if !d.PrivateKey.Equal(key) {
		cfg.PrivateKey = &key
	}
	if d.ListenPort != port {
		cfg.ListenPort = port
	}
	if cfg.IsEmpty() {
		return nil
	}
	return c.Configure(t.Device, cfg)
}

// linkUp gives t's device its MTU and address and brings it up, each only
// if needed.
func linkUp(host *rtnl.Conn, t *Tunnel) error {
	l, err := host.LinkByName(t.Device)
	if err != nil {
		return fmt.Errorf("overlay: WireGuard device %s: %w", t.Device, err)
	}
	if l.MTU != t.MTU {
		if err := host.LinkSetMTU(l.Index, t.MTU); err != nil {
			return fmt.Errorf("overlay: WireGuard device %s MTU %d: %w", t.Device, t.MTU, err)
		}
	}
	family := uint8(unix.AF_INET)
	if t.Address.Addr().Is6() {
		family = unix.AF_INET6
	}
	addrs, err := host.AddressList(family, l.Index)
	if err != nil {
		return fmt.Errorf("overlay: WireGuard device %s addresses: %w", t.Device, err)
	}
	has := false
	for _, a := range addrs {
		has = has || a.Prefix() == t.Address
	}
	if !has {
		if err := host.AddressAdd(l.Index, t.Address); err != nil {
			return fmt.Errorf("overlay: add %s to %s: %w", t.Address, t.Device, err)
		}
	}
	if l.Flags&rtnl.LinkUp == 0 {
		if err := host.LinkSetUp(l.Index); err != nil {
			return fmt.Errorf("overlay: set %s up: %w", t.Device, err)
		}
	}
	return nil
}

// checkUAPIFree refuses a userspace device name whose UAPI socket another
// live device of the machine answers on: they would take over each
// other's socket (one directory for every namespace).
func checkUAPIFree(name string) error {
	if _, err := os.Stat(wireguard.UAPISocket(name)); err != nil {
		return nil
	}
	u := &wireguard.UAPI{Timeout: time.Second}
	if _, err := u.Device(name); err == nil {
		return fmt.Errorf("overlay: another WireGuard device of this machine is named %s (its UAPI socket %s answers): give this node another device name",
			name, wireguard.UAPISocket(name))
	}
	return nil
}

// stopDevice removes t's device: the userspace process stopped (its TUN
// goes with it), or the kernel link deleted if Create made it. A device
// already gone is no error.
func (n *Node) stopDevice(host *rtnl.Conn, t *Tunnel) error {
	if _, err := wireguard.StopProcess(n.wireguardDir(), 10*time.Second); err != nil {
		return err
	}
	if t.Provider == wireguard.ProviderKernel && t.LinkCreated && host != nil {
		if err := links.Delete(host, t.Device); err != nil {
			return fmt.Errorf("overlay: delete WireGuard device %s: %w", t.Device, err)
		}
	}
	return nil
}
