// Package userspace runs a WireGuard device in userspace: the process
// `overlayd wireguard` is, on kernels without WireGuard. It holds the
// device's lock (wireguard.ProcessLockFile, with its pid), makes the TUN
// device, runs golang.zx2c4.com/wireguard on it and serves the UAPI
// protocol on wireguard.UAPISocket(name), until it is signalled or its TUN
// device is deleted. Everything else (key, port, peers, address, up) is
// configured from outside, over the socket and rtnetlink: the process
// holds no state of its own, so a new one configured the same way is the
// same device.
package userspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/filelock"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// Options configure Run.
type Options struct {
	// Name is the TUN device's name and the UAPI socket's.
	Name string
	// MTU is the TUN device's MTU.
	MTU uint32
	// Dir is the node's WireGuard directory, where the lock is held.
	Dir string
	// Logger receives the device's errors (and, at debug, its verbose
	// lines); nil discards.
	Logger *slog.Logger
}

// Counts are what the device rejected, counted from its log lines.
type Counts struct {
	// InvalidHandshakes counts handshake messages that did not
	// authenticate (an unknown key, or garbage).
	InvalidHandshakes atomic.Uint64
	// InvalidSource counts packets of a peer whose inner source is not
	// one of its allowed IPs.
	InvalidSource atomic.Uint64
	changed       atomic.Bool
}

// ErrRunning is returned by Run when another process holds the device's
// lock.
var ErrRunning = errors.New("userspace: a device process is already running for this node")

// Run runs the device until ctx ends (a signal: the device is closed and
// its socket removed) or the device closes (its TUN deleted). It returns
// nil on either.
func Run(ctx context.Context, o Options, counts *Counts) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if counts == nil {
		counts = &Counts{}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("userspace: %w", err)
	}
	release, ok, err := filelock.HoldPid(filepath.Join(o.Dir, wireguard.ProcessLockFile))
	if err != nil {
		return fmt.Errorf("userspace: device lock: %w", err)
	}
	if !ok {
		return ErrRunning
	}
	defer release()
	t, err := tun.CreateTUN(o.Name, int(o.MTU))
	if err != nil {
		return fmt.Errorf("userspace: create TUN %s: %w", o.Name, err)
	}
	dev := device.NewDevice(t, conn.NewDefaultBind(), deviceLogger(log, counts))
	defer dev.Close()
	f, err := ipc.UAPIOpen(o.Name)
	if err != nil {
		return fmt.Errorf("userspace: UAPI socket %s: %w", wireguard.UAPISocket(o.Name), err)
	}
	l, err := ipc.UAPIListen(o.Name, f)
	if err != nil {
		return fmt.Errorf("userspace: UAPI socket %s: %w", wireguard.UAPISocket(o.Name), err)
	}
	defer l.Close()
	go serveUAPI(l, dev)
	os.Remove(filepath.Join(o.Dir, wireguard.CountersFile)) // this process counts from zero
	go writeCounters(ctx, o.Dir, counts)
	log.Info("WireGuard device up", "device", o.Name, "mtu", o.MTU, "uapi", wireguard.UAPISocket(o.Name), "pid", os.Getpid())
	select {
	case <-ctx.Done():
		log.Info("WireGuard device stopping", "device", o.Name, "why", context.Cause(ctx))
	case <-dev.Wait():
		log.Info("WireGuard device closed (its TUN went)", "device", o.Name)
	}
	return nil
}

// writeCounters writes counts to the counters file once a second while
// they change, until ctx ends.
func writeCounters(ctx context.Context, dir string, counts *Counts) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if counts.changed.Swap(false) {
				wireguard.WriteCounters(dir, wireguard.Counters{
					InvalidHandshakes: counts.InvalidHandshakes.Load(), InvalidSource: counts.InvalidSource.Load()})
			}
		}
	}
}

// serveUAPI answers each connection of l with the device's UAPI protocol.
func serveUAPI(l net.Listener, dev *device.Device) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go dev.IpcHandle(c)
	}
}

// deviceLogger sends the device's errors to log, counts the rejections
// its lines report, and passes its other verbose lines to log at debug.
func deviceLogger(log *slog.Logger, counts *Counts) *device.Logger {
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if !counts.count(format) && debug {
				log.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) {
			if counts.count(format) {
				return // a stranger's junk: counted, not an error of the device
			}
			log.Error(fmt.Sprintf(format, args...))
		},
	}
}

// count counts the rejection a line of the device reports, by its format:
// a handshake message that does not authenticate (its mac1 made for
// another key, an unknown sender's key, garbage) or a message of no known
// type; a packet whose inner source its peer may not use. It reports
// whether the line was one.
func (c *Counts) count(format string) bool {
	for _, f := range []string{"invalid mac1", "Received invalid initiation", "Received invalid response",
		"Failed to decode initiation", "Failed to decode response", "Received message with unknown type",
		"Failed to decode cookie reply", "Could not decrypt invalid cookie"} {
		if strings.Contains(format, f) {
			c.InvalidHandshakes.Add(1)
			c.changed.Store(true)
			return true
		}
	}
	if strings.Contains(format, "disallowed source address") || strings.Contains(format, "invalid IP version") {
		c.InvalidSource.Add(1)
		c.changed.Store(true)
		return true
	}
	return false
}
