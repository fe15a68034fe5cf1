package rtnl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// OpenNetNS opens the network namespace bound at path (a named namespace such
// as /var/run/netns/overns, or /proc/PID/ns/net).
func OpenNetNS(path string) (*NetNS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rtnl: open netns %s: %w", path, err)
	}
	return &NetNS{fd: fd, path: path}, nil
}

// CurrentNetNS opens the network namespace of the calling OS thread.
func CurrentNetNS() (*NetNS, error) {
	return OpenNetNS(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
}

// Close releases the handle. It does not delete a named namespace.
func (ns *NetNS) Close() error {
	if ns == nil || ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}

// Do runs fn with the calling goroutine locked to an OS thread that has
// switched into ns, then switches the thread back. Goroutines started by fn do
// not run in ns. If the thread cannot be switched back it is left locked, so
// the Go runtime discards it instead of reusing it in the wrong namespace.
func (ns *NetNS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := CurrentNetNS()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("rtnl: enter netns %s: %w", ns.path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig.fd, unix.CLONE_NEWNET); err != nil {
		// Keep the thread locked: it dies with this goroutine.
		return errors.Join(ferr, fmt.Errorf("rtnl: return from netns %s: %w", ns.path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// CreateNetNS creates a named network namespace the way `ip netns add` does:
// dir (DefaultNetNSDir if "") is made a shared mount point, and a new
// namespace is bind-mounted on dir/name, so `ip netns exec` (for the default
// dir) and `nsenter --net=dir/name` work on it. It fails with an error
// wrapping unix.EEXIST if the name is taken. The new namespace starts with
// only a loopback device, down.
func CreateNetNS(dir, name string) (*NetNS, error) {
	if err := ValidateNetNSName(name); err != nil {
		return nil, err
	}
	dir = netnsDir(dir)
	if err := prepareNetNSDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rtnl: create netns %s: %w", path, err)
	}
	unix.Close(fd)

	// Unshare on a thread of our own and never give it back to the runtime:
	// the goroutine exits locked, and the thread with it.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("rtnl: unshare netns for %s: %w", path, err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("rtnl: bind netns to %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return nil, err
	}
	ns, err := OpenNetNS(path)
	if err != nil {
		DeleteNetNS(dir, name)
		return nil, err
	}
	return ns, nil
}

// DeleteNetNS removes the named namespace dir/name the way `ip netns del`
// does: unmount and remove the file. The namespace itself lives on while a
// process or an open handle still uses it. It fails with an error wrapping
// fs.ErrNotExist if there is no such name.
func DeleteNetNS(dir, name string) error {
	if err := ValidateNetNSName(name); err != nil {
		return err
	}
	path := filepath.Join(netnsDir(dir), name)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("rtnl: delete netns: %w", err)
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("rtnl: unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("rtnl: delete netns: %w", err)
	}
	return nil
}

// prepareNetNSDir makes dir a shared mount point so that namespace bind
// mounts made in it propagate to other mount namespaces, as iproute2 does.
func prepareNetNSDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rtnl: netns dir: %w", err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then share it.
		if err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("rtnl: make %s a shared mount: %w", dir, err)
	}
	return nil
}
