//go:build !linux

package wake

import "github.com/overlaynet/overlaynet/rtnl"

// Open fails with ErrNotSupported: packet sockets are Linux's.
func Open(ns *rtnl.NetNS, ifindex int32) (Link, error) { return nil, ErrNotSupported }
