//go:build !linux

package rtnl

import (
	"fmt"
	"runtime"
)

// notSupported is what everything that needs the kernel returns here.
func notSupported() error {
	return fmt.Errorf("%w (GOOS=%s)", ErrNotSupported, runtime.GOOS)
}

// Dial fails with ErrNotSupported: netlink sockets need Linux. NewConn over
// a Transport works here.
func Dial(*Config) (*Conn, error) { return nil, notSupported() }
