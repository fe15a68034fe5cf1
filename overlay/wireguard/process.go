package wireguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/overlaynet/overlaynet/internal/filelock"
	"golang.org/x/sys/unix"
)

// Files of a userspace device process in its directory (ProcessOptions.Dir).
const (
	// ProcessLockFile is held (flock) by the device process while it runs,
	// with its pid inside.
	ProcessLockFile = "device.lock"
	// ProcessLogFile receives the device process's output.
	ProcessLogFile = "device.log"
	// maxLogSize is the size from which the log is started again when a
	// process starts (the previous one is kept as device.log.1).
	maxLogSize = 1 << 20
)

// ProcessOptions say how to start a userspace device process.
type ProcessOptions struct {
	// Command is the device process's command line before its own flags:
	// `overlayd wireguard` (the running binary: os.Executable), or a test
	// binary's equivalent.
	Command []string
	// Name is the device's interface name; its UAPI socket is
	// UAPISocket(Name), which no other device of the machine may have.
	Name string
	// MTU is the device's MTU.
	MTU uint32
	// Dir is the node's WireGuard directory: the process's lock and log.
	Dir string
	// Ready bounds the wait for the device to answer on its UAPI socket
	// (10 s when zero).
	Ready time.Duration
}

// Args returns the flags of the device process after Command.
func (o ProcessOptions) Args() []string {
	return []string{"--name", o.Name, "--mtu", strconv.FormatUint(uint64(o.MTU), 10), "--dir", o.Dir}
}

// Process is a started device process.
type Process struct {
	// Pid is its process id.
	Pid int
	// Exited is closed once it exited and was reaped by this process.
	Exited <-chan struct{}
}

// StartProcess starts the device process in the caller's network
// namespace, in a session of its own (no signal of the caller's terminal or
// process group reaches it, and it outlives the caller), its output
// appended to Dir/device.log, and waits until its device answers on the
// UAPI socket. The caller reaps it (Exited) while it lives; a caller that
// exits first leaves it to the system. A process that exits before it is
// ready is an error quoting the end of its log.
func StartProcess(o ProcessOptions) (*Process, error) {
	if len(o.Command) == 0 {
		return nil, errors.New("wireguard: no command for the device process")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("wireguard: %w", err)
	}
	logPath := filepath.Join(o.Dir, ProcessLogFile)
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLogSize {
		os.Rename(logPath, logPath+".1")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wireguard: device log: %w", err)
	}
	defer logf.Close()
	start, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(o.Command[0], append(append([]string{}, o.Command[1:]...), o.Args()...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wireguard: start the device process: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p := &Process{Pid: cmd.Process.Pid, Exited: exited}
	wait := o.Ready
	if wait == 0 {
		wait = 10 * time.Second
	}
	u := &UAPI{Timeout: time.Second}
	deadline := time.Now().Add(wait)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("wireguard: the device process %s exited before its device was up: %s",
				o.Name, logTail(logPath, start))
		default:
		}
		if _, err := u.Device(o.Name); err == nil {
			if pid, held, _ := filelock.PidHeld(filepath.Join(o.Dir, ProcessLockFile)); held && pid == p.Pid {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("wireguard: the device process %s did not answer on %s within %v: %s",
				o.Name, UAPISocket(o.Name), wait, logTail(logPath, start))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logTail returns the last lines the log got since offset start.
func logTail(path string, start int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < start {
		return "(no log)"
	}
	b = bytes.TrimSpace(b[start:])
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(nothing logged)"
	}
	return string(b)
}

// ProcessRunning reports whether a device process holds the lock in dir,
// and its pid.
func ProcessRunning(dir string) (pid int, running bool, err error) {
	pid, running, err = filelock.PidHeld(filepath.Join(dir, ProcessLockFile))
	if err != nil {
		return 0, false, fmt.Errorf("wireguard: device lock: %w", err)
	}
	return pid, running, nil
}

// StopProcess stops the device process holding the lock in dir, if one
// does (SIGTERM, then SIGKILL after wait: see filelock.StopHolder), and
// returns its pid (0: none ran). Its device goes with it.
func StopProcess(dir string, wait time.Duration) (int, error) {
	pid, err := filelock.StopHolder(filepath.Join(dir, ProcessLockFile), wait)
	if err != nil {
		return pid, fmt.Errorf("wireguard: stop the device process: %w", err)
	}
	return pid, nil
}

// WatchProcess returns a channel closed when the process pid exits (or
// ctx ends), for a process that is not the caller's child too (a pidfd,
// polled). It fails for a process that is gone already.
func WatchProcess(ctx context.Context, pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("wireguard: watch pid %d: %w", pid, err)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for ctx.Err() == nil {
			n, err := unix.Poll(fds, 200)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				return
			}
		}
	}()
	return ch, nil
}

// CountersFile, in a userspace device's directory, holds what the device
// process rejected (Counters, JSON), rewritten at most once a second
// while it changes.
const CountersFile = "device.counters"

// Counters are what a userspace device rejected since its process
// started.
type Counters struct {
	// InvalidHandshakes counts handshake messages that did not
	// authenticate: a stranger's key, a mac1 made for another key,
	// garbage.
	InvalidHandshakes uint64 `json:"invalid_handshakes"`
	// InvalidSource counts packets of a peer from an inner source it may
	// not use.
	InvalidSource uint64 `json:"invalid_source"`
}

// ReadCounters reads dir's CountersFile; none is zero counts.
func ReadCounters(dir string) (Counters, error) {
	var c Counters
	b, err := os.ReadFile(filepath.Join(dir, CountersFile))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("wireguard: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Counters{}, fmt.Errorf("wireguard: %s: %w", CountersFile, err)
	}
	return c, nil
}

// WriteCounters replaces dir's CountersFile with c (a rename).
func WriteCounters(dir string, c Counters) error {
	b, _ := json.Marshal(c)
	tmp := filepath.Join(dir, "."+CountersFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("wireguard: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, CountersFile)); err != nil {
		return fmt.Errorf("wireguard: %w", err)
	}
	return nil
}
