package overlay

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// nsGetNSType is ioctl_ns(2)'s NS_GET_NSTYPE, _IO(0xb7, 0x3): the kind
// (CLONE_NEW*) of the namespace a file refers to.
const nsGetNSType = 0xb703

// CheckNetNS checks that path is a container's network namespace, as
// Attach does with AttachRequest.NetNSPath: a path that does not exist or
// is not a network namespace is an error wrapping ErrNetNSNotFound, the
// calling thread's own namespace (the node's) one wrapping ErrOwnNetNS.
func CheckNetNS(path string) error {
	ns, err := openContainerNetNS(path)
	if err != nil {
		return err
	}
	return ns.Close()
}

// openContainerNetNS opens the container network namespace at path,
// refusing what CheckNetNS refuses.
func openContainerNetNS(path string) (*rtnl.NetNS, error) {
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNetNSNotFound, err)
	}
	if err := checkContainerNetNS(ns); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

func checkContainerNetNS(ns *rtnl.NetNS) error {
	if t, err := unix.IoctlRetInt(ns.Fd(), nsGetNSType); err != nil || t != unix.CLONE_NEWNET {
		return fmt.Errorf("%w: %s is not a network namespace", ErrNetNSNotFound, ns.Path())
	}
	var st, own unix.Stat_t
	if err := unix.Fstat(ns.Fd(), &st); err != nil {
		return fmt.Errorf("overlay: container netns %s: %w", ns.Path(), err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &own); err == nil && st.Dev == own.Dev && st.Ino == own.Ino {
		return fmt.Errorf("%w: %s is this process's own network namespace", ErrOwnNetNS, ns.Path())
	}
	return nil
}

// createNetNS creates the named namespace dir/name as step of r, undone by
// deleting it; r closes the handle. made, if set, is called with the new
// namespace within the step (its failure deletes the namespace again).
func createNetNS(r *steps.Runner, step, dir, name string, made func(*rtnl.NetNS) error) (*rtnl.NetNS, error) {
	var ns *rtnl.NetNS
	err := r.Do(step, func() error {
		var err error
		if ns, err = rtnl.CreateNetNS(dir, name); err != nil {
			return fmt.Errorf("overlay: create netns %s: %w", name, err)
		}
		if made != nil {
			if err := made(ns); err != nil {
				ns.Close()
				return errors.Join(err, deleteNetNS(dir, name))
			}
		}
		r.CloseLater(ns.Close)
		return nil
	}, func() error { return deleteNetNS(dir, name) })
	return ns, err
}

// deleteNetNS deletes the named namespace; a missing one is not an error.
func deleteNetNS(dir, name string) error {
	err := rtnl.DeleteNetNS(dir, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// dial opens an rtnetlink connection in the named namespace name of this
// node. The socket stays bound to the namespace; no handle on it is kept.
// A missing namespace is an error wrapping os.ErrNotExist.
func (n *Node) dial(name string) (*rtnl.Conn, error) {
	if n.dialer != nil {
		return n.dialer(name)
	}
	ns, err := rtnl.OpenNamedNetNS(n.netnsDir, name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return rtnl.Dial(&rtnl.Config{NetNS: ns})
}

// dialEndpoint opens an rtnetlink connection in e's container namespace; a
// missing namespace is an error wrapping os.ErrNotExist.
func (n *Node) dialEndpoint(e Endpoint) (*rtnl.Conn, error) {
	if e.NetNS == "" {
		return n.dial(e.Name)
	}
	ns, err := rtnl.OpenNetNS(e.NetNS)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return rtnl.Dial(&rtnl.Config{NetNS: ns})
}
