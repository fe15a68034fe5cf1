package rtnl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// nameMax is NAME_MAX: the longest file name, and so netns name, Linux takes.
const nameMax = 255

// DefaultNetNSDir is where iproute2 keeps named network namespaces.
const DefaultNetNSDir = "/var/run/netns"

// NetNS is an open handle on a network namespace (a file descriptor of an
// nsfs file). Close it when done.
type NetNS struct {
	fd   int
	path string
}

// ValidateNetNSName checks that name can name a network namespace file: not
// empty, no '/', not "." or "..", at most 255 bytes, no NUL.
func ValidateNetNSName(name string) error {
	switch {
	case name == "":
		return errors.New("rtnl: empty netns name")
	case name == "." || name == "..":
		return fmt.Errorf("rtnl: netns name %q is not allowed", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("rtnl: netns name %q contains '/' or NUL", name)
	case len(name) > nameMax:
		return fmt.Errorf("rtnl: netns name %q is %d bytes, longer than the kernel's %d", name, len(name), nameMax)
	}
	return nil
}

// OpenNamedNetNS opens the named namespace name in dir ("" means
// DefaultNetNSDir).
func OpenNamedNetNS(dir, name string) (*NetNS, error) {
	if err := ValidateNetNSName(name); err != nil {
		return nil, err
	}
	return OpenNetNS(filepath.Join(netnsDir(dir), name))
}

// Fd returns the namespace's file descriptor, for IFLA_NET_NS_FD.
func (ns *NetNS) Fd() int { return ns.fd }

// Path returns the path the namespace was opened from.
func (ns *NetNS) Path() string { return ns.path }

// ListNetNS returns the names of the named namespaces in dir.
func ListNetNS(dir string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rtnl: list netns: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// inNetNS runs fn in ns (Do), or on the calling thread when ns is nil.
func inNetNS(ns *NetNS, fn func() error) error {
	if ns == nil {
		return fn()
	}
	return ns.Do(fn)
}

func netnsDir(dir string) string {
	if dir == "" {
		return DefaultNetNSDir
	}
	return dir
}
